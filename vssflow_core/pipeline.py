"""Video (+ transcript, + speaker reference, + lip features) -> 16 kHz waveform: the one entry the CLI and nodes share.

The stages follow the official in-the-wild inference (``infer.py``, spec sections 2, 8.4 and 9.5):

1. :meth:`PipelineComponents.encode_video <vssflow_core.components.PipelineComponents.encode_video>`: CLIP CLS
   features at 10 fps ``[1, 100, D]`` and Synchformer features at 25 fps ``[1, 30, 8, D]`` per 10 s window (black
   frames past the end of a shorter clip, as the official extractors pad), plus the clip's duration and its
   :class:`~vssflow_core.windows.WindowPlan`;
2. :func:`~vssflow_core.text.track.phoneme_frame_ids`: the transcript's phoneme ids stretched over the speech window
   (all zeros = no speech), on the video's whole timeline;
3. :meth:`VSSFlowPipeline.speaker_embedding`: RawNet3 of a reference utterance (zeros without one);
   :meth:`VSSFlowPipeline.lip_features`: precomputed AV-HuBERT features (zeros without, as ``infer.py`` feeds);
4. :meth:`VSSFlowPipeline.conditions` then :meth:`VSSFlowPipeline.sample`: the guided flow from N(0, I) to a packed
   latent ``[B, 128, 250]`` (dopri5, atol = rtol = 1e-5, w = 3 by default), one seeded generator per batch item;
5. :meth:`PipelineComponents.decode <vssflow_core.components.PipelineComponents.decode>`: unpack -> VAE decoder ->
   log-mel -> HiFi-GAN -> exactly ``round(duration * 16000)`` samples.

A :class:`VSSFlowPipeline` is a network and its :class:`~vssflow_core.components.PipelineComponents`;
:mod:`vssflow_core.loading` finds and loads both, so a graph can load each once and pair them.

The model generates a 10 s window; shorter clips are generated in that window and trimmed, longer ones in
overlapping windows joined into one track (:mod:`vssflow_core.windows`); :meth:`VSSFlowPipeline.generate` streams
them, reading, sampling and decoding one window at a time.  Videos over the configured maximum length are refused
(:class:`~vssflow_core.windows.VideoTooLongError`).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import torch

from .components import PipelineComponents, check_compatible
from .config import WINDOWS, WindowConfig
from .encoders.lip import fit_lip_length, load_lip_features, validate_lip_features, zero_lip_features
from .flow.guidance import CachedGuidedVelocity, GuidedVelocity
from .flow.edit import AudioEdit, WindowEdit
from .flow.settings import SamplerSettings, SamplingStats
from .loading import load_components, load_network, resolve_checkpoint
from .model.compile import CompiledOrEager
from .model.vssflow import Conditions, VSSFlow
from .progress import check_interrupted
from .results import GeneratedAudio, ProgressCallback, SampledLatent, SamplingProgress, VisualFeatures
from .text import silent_frame_ids
from .line_windows import speech_lines, speech_plan, window_voices
from .speech_only import gate_outside_lines, speech_only_visuals
from .text.speech import SpeechTrack, one_line_track, voice_key
from .video import as_frame_source
from .windows import AudioJoiner, KnownFrames, WindowPlan, window_plan, window_progress, window_seed

__all__ = ["VSSFlowPipeline"]

log = logging.getLogger(__name__)


class _NetworkInItsDtype:
    """Runs the network in its own dtype (e.g. bfloat16) while the ODE state stays float32: dopri5's step control at
    atol = rtol = 1e-5 is meaningless on a bfloat16 state (8 bits of mantissa)."""

    def __init__(self, model: VSSFlow):
        self.model = model
        self.latent_channels = model.latent_channels
        self.dtype = next(model.parameters()).dtype

    def __call__(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.dtype:
            return self.model(x, t, context)
        return self.model(x.to(self.dtype), t.to(self.dtype), context.to(self.dtype)).float()


def _expand(x: torch.Tensor, batch: int) -> torch.Tensor:
    if x.shape[0] == batch:
        return x
    if x.shape[0] != 1:
        raise ValueError(f"cannot use a batch of {x.shape[0]} for a batch of {batch}")
    return x.expand(batch, *x.shape[1:])


class VSSFlowPipeline:
    """The VSSFlow network and its frozen helpers (:class:`~vssflow_core.components.PipelineComponents`), with the
    stages that need the network as methods.

    The VSSFlow network runs in its own dtype (float32 or bfloat16); the ODE state, the VAE and the vocoder stay in
    float32.
    """

    def __init__(self, model: VSSFlow, components: PipelineComponents):
        """Pair a network with components loaded on their own (no copies are made); raises
        :class:`~vssflow_core.components.PipelineConfigError` when they do not fit together."""
        check_compatible(components, model)
        self.model = model.eval().requires_grad_(False)
        self.components = components
        # what sampling uses when no settings are given: the checkpoint's recommendation (a distilled student's
        # solver and steps, carried by load_network), else the official defaults
        self.default_settings: SamplerSettings = getattr(model, "recommended_sampler", None) or SamplerSettings()

    @classmethod
    def load(cls, checkpoint: str | os.PathLike | None = None, *, dtype: torch.dtype = torch.float32,
             head_dim: int | None = None, **options: Any) -> "VSSFlowPipeline":
        """The network from ``checkpoint`` (:func:`~vssflow_core.loading.load_network`, in ``dtype``: float32 or
        bfloat16) and the components that go with it (:func:`~vssflow_core.loading.load_components`, which takes
        ``options``: ``models_dir``, a path per component, ``speaker``, ``download``, ``verify``, ``device`` and
        ``encoder_dtype``)."""
        where = {key: options[key] for key in ("models_dir", "download", "verify") if key in options}
        checkpoint = resolve_checkpoint(checkpoint, **where)
        model = load_network(checkpoint, device=options.get("device"), dtype=dtype, head_dim=head_dim, **where)
        return cls(model, load_components(checkpoint, **options))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ---------------------------------------------------------------------------------------------------- stages

    def speaker_embedding(self, reference: Any = None, sample_rate: int | None = None) -> torch.Tensor:
        """RawNet3 embedding ``[speaker_dim]`` of a reference utterance: a path, a ``(waveform, sample_rate)`` pair, a
        ComfyUI AUDIO dict, or a waveform with ``sample_rate``.  None gives zeros (the model's "no reference"), and so
        does a reference the loaded components cannot use (no RawNet3, as in the demo), with a logged warning: a
        workflow wired for a voice still runs, in the neutral voice."""
        if reference is not None and not self.components.has_speaker_encoder:
            log.warning("the speaker reference is ignored: the loaded components have no RawNet3 speaker encoder (the "
                        "demo model has none), so the speech is in the model's neutral voice; to imitate the "
                        "reference, load RawNet3 (python -m vssflow_core download rawnet3)")
            reference = None
        if reference is None:
            return torch.zeros(self.model.cfg.speaker_dim, device=self.device)
        return self.components.speaker_embedding(reference, sample_rate).to(self.device)

    def lip_features(self, lip: Any = None, plan: WindowPlan | None = None) -> torch.Tensor:
        """Lip features ``[frames, lip_dim]`` on the latent grid of ``plan``'s timeline (None: one window): None gives
        zeros (as the official in-the-wild inference); a ``.npy`` / ``.safetensors`` path or an array
        ``[frames, lip_dim]`` at 25 fps is cropped or zero-padded."""
        length = (self.components.sequence if plan is None else plan.timeline).latent_length
        dim = self.model.cfg.lip_dim
        if lip is None:
            return zero_lip_features(length, dim)
        if isinstance(lip, (str, os.PathLike)):
            return load_lip_features(lip, num_frames=length, dim=dim)
        return fit_lip_length(validate_lip_features(lip, dim=dim), length)

    @torch.inference_mode()
    def conditions(
        self,
        visual: VisualFeatures,
        phone_ids: torch.Tensor | None = None,
        speaker: torch.Tensor | None = None,
        lip: torch.Tensor | None = None,
        batch_size: int = 1,
    ) -> Conditions:
        """Project and align every condition of one window for ``batch_size`` samples of the same clip."""
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if visual.windows != 1:
            raise ValueError(f"the visual features hold {visual.windows} windows; condition one at a time "
                             f"(visual.window(k)), or sample them all with sample_windows")
        return self._conditions(visual.clip, visual.synch, phone_ids, speaker, lip, batch_size)

    def _conditions(self, clip: torch.Tensor, synch: torch.Tensor, phone_ids: torch.Tensor | None,
                    speaker: torch.Tensor | None, lip: torch.Tensor | None, batch_size: int) -> Conditions:
        length = self.components.sequence.latent_length
        device = self.device
        phone_ids = silent_frame_ids(self.components.sequence) if phone_ids is None else phone_ids
        speaker = torch.zeros(self.model.cfg.speaker_dim) if speaker is None else speaker
        lip = zero_lip_features(length, self.model.cfg.lip_dim) if lip is None else lip

        def batched(x: torch.Tensor, unbatched_ndim: int) -> torch.Tensor:
            x = x.to(device)
            return _expand(x[None] if x.ndim == unbatched_ndim else x, batch_size)

        return self.model.prepare_conditions(
            clip=batched(clip, 2),
            synch=batched(synch, 3),
            phone_ids=batched(phone_ids, 1),
            lip=batched(lip, 2),
            speaker=batched(speaker, 1),
            latent_length=length,
        )

    def initial_noise(self, batch_size: int, seed: int) -> tuple[torch.Tensor, list[int]]:
        """Noise ``[B, latent_channels, L]`` with item ``i`` drawn from its own CPU generator seeded ``seed + i`` (as
        ``infer.py`` seeds samples), so an item's audio does not depend on the batch size or the device."""
        seeds = [(int(seed) + i) % 2**64 for i in range(batch_size)]
        shape = (self.model.latent_channels, self.components.sequence.latent_length)
        noise = torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds])
        return noise.to(self.device), seeds

    @torch.inference_mode()
    def sample(self, conditions: Conditions, *, seed: int = 0, settings: SamplerSettings | None = None,
               callback: ProgressCallback | None = None, known: KnownFrames | None = None,
               edit: WindowEdit | None = None) -> SampledLatent:
        """Integrate the guided flow from noise (t = 0) to a packed latent (t = 1) as ``settings`` say.

        ``callback`` is called after every accepted step with a :class:`~vssflow_core.results.SamplingProgress`;
        anything it raises stops sampling and propagates (that is how a caller cancels).

        ``known``: leading latent frames already generated (the previous window's end); they are held on the flow
        path to their value and the rest is generated to continue them (:class:`~vssflow_core.windows.KnownFrames`).
        ``edit``: this window of an existing track (:class:`~vssflow_core.flow.edit.WindowEdit`): the frames outside
        its ranges are held to it too, and the flow starts at ``1 - strength`` from its path point (strength 0: the
        encoded track itself, nothing integrated).  ``settings`` None: :attr:`default_settings` (the checkpoint's
        recommended sampler, else the official one).
        """
        settings = settings if settings is not None else self.default_settings
        ode = settings.make_solver()
        noise, seeds = self.initial_noise(conditions.batch_size, seed)
        held = known if edit is None or edit.held is None else (edit.held if known is None
                                                                 else known.merged(edit.held))
        start, t_start = (noise, 0.0) if edit is None else edit.start(noise, held)
        if t_start >= 1.0:  # strength 0: the track as encoded (a continuation's frames still win where held)
            stats = SamplingStats(seeds=tuple(seeds), solver=settings.solver, steps=0, evaluations=0)
            return SampledLatent(latent=start.float(), stats=stats)
        x = torch.cat([start, conditions.latent_cond.float()], dim=1)
        velocity = self._guided_velocity(conditions, settings)
        field = velocity if held is None else held.constrain(velocity, noise)

        on_step = None
        if callback is not None:
            def on_step(step: int, total: int | None, t: float) -> None:
                callback(SamplingProgress(step=step, total_steps=total, t=t, evaluations=velocity.evaluations))

        solution = ode.solve(field, x, t_start, 1.0, callback=on_step)
        stats = SamplingStats(seeds=tuple(seeds), solver=settings.solver, steps=solution.steps,
                              evaluations=solution.evaluations)
        return SampledLatent(latent=solution.x[:, : self.model.latent_channels].float(), stats=stats)

    def _guided_velocity(self, conditions: Conditions, settings: SamplerSettings) -> GuidedVelocity:
        batched, scale = settings.batched_guidance, settings.guidance_scale
        if settings.cache:
            forward = CompiledOrEager(self.model.latent_velocity) if settings.compile else None
            return CachedGuidedVelocity(self.model, conditions, scale, batched=batched, latent_velocity=forward)
        network = _NetworkInItsDtype(self.model)
        if settings.compile:
            network = CompiledOrEager(network)
        return GuidedVelocity(network, conditions, scale, latent_channels=self.model.latent_channels, batched=batched)

    # ---------------------------------------------------------------------------------------------------- windows

    @torch.inference_mode()
    def sample_windows(
        self,
        visual: VisualFeatures,
        phone_ids: torch.Tensor | None = None,
        speaker: torch.Tensor | None = None,
        lip: torch.Tensor | None = None,
        *,
        batch_size: int = 1,
        seed: int = 0,
        settings: SamplerSettings | None = None,
        callback: ProgressCallback | None = None,
        speech_mask: torch.Tensor | None = None,
        edit: AudioEdit | None = None,
    ) -> SampledLatent:
        """Sample every window of ``visual`` (see :meth:`sample`), each continuing the one before it or on its own,
        by the plan's seam strategy.

        ``speaker`` is one embedding ``[speaker_dim]`` or one per window ``[windows, speaker_dim]``
        (:meth:`window_speakers`); ``speech_mask`` ``[T]`` (the speech track's lines on the timeline) drops the scene
        conditions outside the lines (:func:`~vssflow_core.speech_only.speech_only_visuals`); ``edit`` an existing
        track to regenerate ranges of or to start from (:class:`~vssflow_core.flow.edit.AudioEdit`; decode with the
        same ``edit``).

        ``phone_ids`` ``[T]`` and ``lip`` ``[T, lip_dim]`` lie on the plan's timeline (``T =
        plan.timeline.latent_length``, as :func:`~vssflow_core.text.track.phoneme_frame_ids` and
        :meth:`lip_features` give them).  The latent is ``[B, windows, 128, L]``, or ``[B, 128, L]`` for one window.
        """
        plan = visual.plan
        windows = _WindowSampler(self, plan, phone_ids, speaker, lip, batch_size, seed, settings, callback,
                                 speech_mask, edit)
        latents = [windows.sample(k, visual.clip[k:k + 1], visual.synch[k:k + 1]) for k in range(plan.count)]
        latent = latents[0] if plan.count == 1 else torch.stack(latents, dim=1)
        return SampledLatent(latent=latent, stats=windows.stats, plan=plan)

    def speech_conditions(self, plan: WindowPlan, track: SpeechTrack, voices: Mapping[str, Any] | None = None,
                          speaker: Any = None, speech_only: bool = False
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """What a speech track gives the sampler on a window plan: the phoneme ids on the timeline, one speaker
        embedding per window, and the speech-only mask (None: with the picture's sound effects).  The plan must keep
        every line inside one window (:func:`~vssflow_core.line_windows.check_line_plan`): a plan made without the
        track is refused with the lines it cuts."""
        from .line_windows import LinePlanError, check_line_plan

        voices = {**dict(track.references), **dict(voices or {})}
        lines = [(s, e if e is not None else plan.duration, v) for s, e, v in speech_lines(track, voices)]
        try:
            if any(line.cue is not None for line in track.lines):  # the one-line form may fall where it falls
                check_line_plan(plan, lines)
        except LinePlanError as exc:
            raise LinePlanError(f"{exc}; plan the windows with the speech track (give it to the Visual Encoder, or "
                                "make the plan with vssflow_core.line_windows.speech_plan)") from None
        mask = track.speech_mask_on(plan) if speech_only else None
        return track.frame_ids_on(plan), self.window_speakers(plan, track, voices, speaker), mask

    def window_speakers(self, plan: WindowPlan, track: SpeechTrack, voices: Mapping[str, Any] | None = None,
                        speaker: Any = None) -> torch.Tensor:
        """One speaker embedding per window ``[windows, speaker_dim]``: the reference of the voice whose lines the
        window generates (``voices``: name -> reference), else ``speaker`` (zeros without one)."""
        default = self.speaker_embedding(speaker)
        embeddings = {voice_key(name): self.speaker_embedding(ref) for name, ref in (voices or {}).items()}
        per_window = window_voices(plan, speech_lines(track, embeddings))
        return torch.stack([embeddings[v] if v is not None else default for v in per_window])

    # ---------------------------------------------------------------------------------------------------- all at once

    def generate(
        self,
        video: Any,
        transcript: str | None = None,
        *,
        speech_start: float | None = None,
        speech_end: float | None = None,
        speaker: Any = None,
        lip: Any = None,
        fps: float | None = None,
        batch_size: int = 1,
        seed: int = 0,
        settings: SamplerSettings | None = None,
        callback: ProgressCallback | None = None,
        max_duration: float | None = None,
        windows: WindowConfig = WINDOWS,
        plan: WindowPlan | None = None,
        speech: SpeechTrack | None = None,
        voices: Mapping[str, Any] | None = None,
        speech_only: bool = False,
        edit: AudioEdit | None = None,
    ) -> GeneratedAudio:
        """Every stage in order, for a video of any length up to ``max_duration`` seconds (None: the configured
        maximum).  Cheap checks (length, transcript, lip file, speaker) run before the expensive encoders; then each
        window is read, encoded, sampled, decoded and joined before the next one is read, so memory holds one window's
        frames, features and audio (plus the output track) whatever the video's length.

        ``video`` may be a frame source the caller opened (it is left open); ``plan`` the window plan the caller
        already made for it (:func:`~vssflow_core.windows.window_plan`; then ``windows`` and ``max_duration`` are
        the plan's), else it is made here once the duration is known, and every stage takes it.

        The speech is ``transcript`` over ``[speech_start, speech_end]``, or ``speech``, a track of several lines
        (:mod:`vssflow_core.text.speech`) whose voices name the references in ``voices`` (name -> reference, as
        ``speaker`` takes it; ``speaker`` is then the voice of lines without a named one).  The windows are placed so
        that no seam cuts a line and each window speaks in one voice (:mod:`vssflow_core.line_windows`).
        ``speech_only`` gives the speech without the picture's sound effects: the track is silenced outside the
        lines (:func:`~vssflow_core.speech_only.gate_outside_lines`; measured against dropping the scene conditions
        in the README).  ``edit``: an existing track of the clip to regenerate ranges of (kept
        sample for sample elsewhere) or to start from (:class:`~vssflow_core.flow.edit.AudioEdit`)."""
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        sequence = self.components.sequence
        if plan is not None and plan.sequence != sequence:
            raise ValueError("the window plan was made for other time axes than the loaded components'; make it with "
                             "the components' sequence configuration")
        if speech is not None and transcript is not None and transcript.strip():
            raise ValueError("give the speech either as a transcript or as a speech track of lines, not both")
        references = {**dict(speech.references if speech is not None else ()), **dict(voices or {})}
        if speech is not None:
            speech.check_voices(references)
        elif references:
            raise ValueError("voice references name the voices of a speech track's lines; give the lines (speech=) "
                             "or a single speaker reference (speaker=)")
        source, owned = as_frame_source(video, fps=fps)
        try:
            duration = window_plan(source.end_time, sequence, windows, max_duration).duration if plan is None \
                else plan.duration
            track = speech if speech is not None else one_line_track(transcript, speech_start, speech_end, duration,
                                                                     sequence=sequence, windows=windows)
            plan = plan or speech_plan(duration, track, references, sequence, windows, max_duration)
            phone_ids = track.frame_ids_on(plan)
            lip_features = self.lip_features(lip, plan)
            _, speakers, mask = self.speech_conditions(plan, track, references, speaker)
            sampler = _WindowSampler(self, plan, phone_ids, speakers, lip_features, batch_size, seed, settings,
                                     callback, mask, edit)
            joiner = AudioJoiner(plan, batch_size)
            for k, start in enumerate(plan.starts):
                check_interrupted()  # between windows too (each stage also checks inside its own loops)
                latent = sampler.sample(k, *self.components.encode_window(source, start))
                level = 1.0 if edit is None else edit.level(self.components.vae, plan, k)
                joiner.add(k, self.components.decode_window(latent) * level)
        finally:
            if owned:
                source.close()
        waveform = joiner.result() if edit is None else edit.compose(joiner.result())
        if speech_only:
            waveform = gate_outside_lines(waveform, [line.interval(plan.duration) for line in track.lines],
                                          self.components.sample_rate)
        return GeneratedAudio(waveform=waveform, sample_rate=self.components.sample_rate, duration=plan.duration,
                              stats=sampler.stats)


class _WindowSampler:
    """Samples the windows of one plan in order, each from the conditions of its stretch of the timeline;
    :attr:`stats` totals them as they go (it is also what the progress of the next window starts from)."""

    def __init__(self, pipe: VSSFlowPipeline, plan: WindowPlan, phone_ids: torch.Tensor | None,
                 speaker: torch.Tensor | None, lip: torch.Tensor | None, batch_size: int, seed: int,
                 settings: SamplerSettings, callback: ProgressCallback | None,
                 speech_mask: torch.Tensor | None = None, edit: AudioEdit | None = None):
        timeline = plan.timeline.latent_length
        self.phone_ids = silent_frame_ids(plan.timeline) if phone_ids is None else phone_ids
        self.lip = zero_lip_features(timeline, pipe.model.cfg.lip_dim) if lip is None else lip
        for name, track in (("phoneme ids", self.phone_ids), ("lip features", self.lip)):
            if track.shape[0] != timeline:
                raise ValueError(f"{name} cover {track.shape[0]} latent frames, the {plan.count} window(s) of a "
                                 f"{plan.duration:.2f} s clip need {timeline}; make them for this clip's duration")
        self.pipe, self.plan, self.speaker, self.batch_size, self.seed = pipe, plan, speaker, batch_size, seed
        self.settings = settings if settings is not None else pipe.default_settings
        self.callback, self.speech_mask = callback, speech_mask
        if edit is not None and edit.samples != plan.samples:
            raise ValueError(f"the track to edit lasts {edit.samples / plan.sequence.sample_rate:.2f} s, the clip "
                             f"{plan.duration:.2f} s; prepare it for this clip (AudioEdit.prepare)")
        self.edit = edit
        if speaker is not None and speaker.dim() == 2 and speaker.shape[0] != plan.count:
            raise ValueError(f"{speaker.shape[0]} speaker embeddings for {plan.count} windows; give one, or one per "
                             "window")
        self.stats: SamplingStats | None = None
        self.previous: torch.Tensor | None = None

    def sample(self, k: int, clip: torch.Tensor, synch: torch.Tensor) -> torch.Tensor:
        """Window ``k``'s latent ``[B, 128, L]`` from its CLIP ``[1, 100, D]`` and Synchformer ``[1, 30, 8, D]``
        features (windows come in order: each may continue the one before)."""
        plan = self.plan
        if self.speech_mask is not None:  # speech alone: what drives the sound effects as the unconditional inputs
            clip, synch = speech_only_visuals(clip, synch, plan.window_slice(self.speech_mask, k),
                                              plan.sequence.latent_rate)
        speaker = self.speaker[k] if self.speaker is not None and self.speaker.dim() == 2 else self.speaker
        conditions = self.pipe._conditions(clip, synch, plan.window_slice(self.phone_ids, k), speaker,
                                           plan.window_slice(self.lip, k), self.batch_size)
        known = None
        if self.previous is not None and plan.windows.seam == "continue":
            known = KnownFrames.from_previous(self.previous, plan, k)
        before = self.stats or SamplingStats()
        progress = window_progress(self.callback, k, plan.count, before.steps, before.evaluations)
        edit = None if self.edit is None else self.edit.window(self.pipe.components, plan, k)
        sampled = self.pipe.sample(conditions, seed=window_seed(self.seed, k), settings=self.settings,
                                   callback=progress, known=known, edit=edit)
        self.stats = sampled.stats if self.stats is None else self.stats + sampled.stats
        self.previous = sampled.latent
        return sampled.latent
