"""Video (+ transcript, + speaker reference, + lip features) -> 16 kHz waveform: the one entry the CLI and nodes share.

The stages follow the official in-the-wild inference (``infer.py``, spec sections 2, 8.4 and 9.5), each a method a
node can call on its own:

1. :meth:`VSSFlowPipeline.encode_video`: CLIP CLS features at 10 fps ``[1, 100, D]`` and Synchformer features at
   25 fps ``[1, 30, 8, D]`` per 10 s window (black frames past the end of a shorter clip, as the official
   extractors pad), plus the clip's duration and its :class:`~vssflow_core.windows.WindowPlan`;
2. :func:`phoneme_frame_ids`: the transcript's phoneme ids stretched over the speech window (all zeros = no speech),
   on the video's whole timeline; :func:`phoneme_track` prepares them before the clip is known (the window's end can
   stay "the end of the clip");
3. :meth:`VSSFlowPipeline.speaker_embedding`: RawNet3 of a reference utterance (zeros without one);
   :meth:`VSSFlowPipeline.lip_features`: precomputed AV-HuBERT features (zeros without, as ``infer.py`` feeds);
4. :meth:`VSSFlowPipeline.conditions` then :meth:`VSSFlowPipeline.sample`: the guided flow from N(0, I) to a packed
   latent ``[B, 128, 250]`` (dopri5, atol = rtol = 1e-5, w = 3 by default), one seeded generator per batch item;
5. :meth:`VSSFlowPipeline.decode`: unpack -> VAE decoder -> log-mel -> HiFi-GAN -> exactly
   ``round(duration * 16000)`` samples.

The frozen helpers (CLIP, Synchformer, VAE, vocoder, RawNet3) form a :class:`PipelineComponents`, loadable and usable
without the network (encode a video, decode a latent); :func:`load_network` loads the network alone and
:meth:`VSSFlowPipeline.from_components` pairs the two, so a graph can load each once and share them.

The model generates a 10 s window; shorter clips are generated in that window and trimmed, longer ones in
overlapping windows joined into one track (:mod:`vssflow_core.windows`); :meth:`VSSFlowPipeline.generate` streams
them, reading, sampling and decoding one window at a time.  Videos over the configured maximum length are refused
(:class:`~vssflow_core.windows.VideoTooLongError`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .codec.vae import MelVAE, VAEConfig, load_vae, unpack_latent
from .codec.vocoder import HifiGanVocoder, VocoderConfig, load_vocoder
from .config import SEQUENCE, WINDOWS, SequenceConfig, WindowConfig
from .devices import module_device, module_dtype, resolve_dtype
from .encoders.clip import CLIPVisualEncoder, load_clip_visual
from .encoders.lip import fit_lip_length, load_lip_features, validate_lip_features, zero_lip_features
from .encoders.rawnet3 import RawNet3, load_rawnet3
from .encoders.speaker import speaker_embedding as rawnet3_speaker_embedding
from .encoders.synchformer import SynchformerVisualEncoder, load_synchformer
from .flow.guidance import OFFICIAL_GUIDANCE_SCALE, CachedGuidedVelocity, GuidedVelocity
from .flow.schedules import check_schedule
from .flow.solvers import (DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER, OFFICIAL_ATOL, OFFICIAL_RTOL,
                           OFFICIAL_SOLVER, SOLVER_NAMES, make_solver)
from .model.vssflow import Conditions, VSSFlow
from .text import silent_frame_ids, stretch_ids, tokens_to_ids, transcript_to_tokens
from .text.phonemes import Mode, check_speech_rate, check_speech_window
from .video import FrameSource, as_frame_source, clip_frames, synchformer_frames
from .windows import (AudioJoiner, KnownFrames, VideoTooLongError, WindowPlan, check_duration, plan_windows,
                      window_progress, window_seed)

__all__ = [
    "DEMO",
    "DURATION_TOLERANCE_SEC",
    "OFFICIAL_ATOL",
    "OFFICIAL_GUIDANCE_SCALE",
    "OFFICIAL_RTOL",
    "OFFICIAL_SOLVER",
    "DEFAULT_SOLVER",
    "DEFAULT_SCHEDULE",
    "ClipTooLongError",
    "GeneratedAudio",
    "PhonemeTrack",
    "PipelineComponents",
    "PipelineConfigError",
    "ProgressCallback",
    "SampledLatent",
    "SamplingProgress",
    "VSSFlowPipeline",
    "VideoTooLongError",
    "VisualFeatures",
    "WindowPlan",
    "check_duration",
    "component_path",
    "default_device",
    "load_network",
    "resolve_checkpoint",
    "phoneme_frame_ids",
    "phoneme_track",
]

log = logging.getLogger(__name__)

DURATION_TOLERANCE_SEC = WINDOWS.tolerance_sec  # a clip this much longer than a window still takes one window
ClipTooLongError = VideoTooLongError  # its former name


class PipelineConfigError(ValueError):
    """The loaded components do not fit together (widths, rates or window lengths differ)."""


# --------------------------------------------------------------------------------------------------------------------
# Stage results
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class VisualFeatures:
    """What the frozen visual encoders say about one clip, window by window (one window for a clip of 10 s or less).

    The first axis of ``clip`` and ``synch`` is the window: ``[1, ...]`` is the single window of a short clip.
    """

    clip: torch.Tensor  # [windows, 100, clip_dim] CLIP CLS tokens at 10 fps (black frames past the clip's end)
    synch: torch.Tensor  # [windows, 30, 8, synch_dim] Synchformer tokens, 24 per second
    duration: float  # seconds of the clip, what the output is cut to
    source_fps: float  # the source's average frame rate, for reference
    plan: WindowPlan | None = None  # where the windows lie; None: the one window at 0

    def __post_init__(self) -> None:
        if self.plan is None:
            self.plan = WindowPlan(self.duration, (0.0,))
        if self.clip.shape[0] != self.plan.count or self.synch.shape[0] != self.plan.count:
            raise ValueError(f"visual features of {self.clip.shape[0]} window(s) for a plan of {self.plan.count}")

    @property
    def windows(self) -> int:
        return self.plan.count

    def window(self, k: int) -> "VisualFeatures":
        """The features of window ``k`` alone (what :meth:`VSSFlowPipeline.conditions` takes)."""
        return VisualFeatures(clip=self.clip[k:k + 1], synch=self.synch[k:k + 1], duration=self.duration,
                              source_fps=self.source_fps)


@dataclass(frozen=True)
class SamplingProgress:
    """Handed to the progress callback after every accepted solver step."""

    step: int  # accepted steps so far
    total_steps: int | None  # fixed-step solvers: their step count; dopri5: None (it adapts)
    t: float  # flow time reached: 0 is noise, 1 is done, so it is also the fraction of the work
    evaluations: int  # guided-velocity evaluations so far (each one network pass over [uncond ; cond] by default)


ProgressCallback = Callable[[SamplingProgress], None]


@dataclass
class SampledLatent:
    latent: torch.Tensor  # [B, latent_channels, L] packed VAE latent, float32; [B, windows, latent_channels, L]
    seeds: list[int]  # the seed of every batch item (in the first window)
    solver: str
    steps: int  # accepted solver steps (over all windows)
    evaluations: int  # guided-velocity evaluations (each one network pass over [uncond ; cond] by default)
    plan: WindowPlan | None = None  # the windows of a windowed latent


@dataclass
class GeneratedAudio:
    waveform: torch.Tensor  # [B, samples] float32 on the CPU, in [-1, 1]
    sample_rate: int
    duration: float
    seeds: list[int] = field(default_factory=list)
    solver: str = DEFAULT_SOLVER
    steps: int = 0
    evaluations: int = 0

    def as_comfy_audio(self) -> dict[str, Any]:
        """ComfyUI's AUDIO value: ``{"waveform": [B, channels=1, samples], "sample_rate": int}``."""
        return {"waveform": self.waveform.unsqueeze(1), "sample_rate": self.sample_rate}


# --------------------------------------------------------------------------------------------------------------------
# Model-free stages (usable before any weights are loaded)
# --------------------------------------------------------------------------------------------------------------------


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class PhonemeTrack:
    """A transcript as phonemes, placed on the clip's time axis.

    ``end`` None means "the end of the clip": it is fixed only when the clip's duration is known (:meth:`frame_ids`),
    so a transcript can be prepared before, or independently of, the video.  No ids means a clip without speech.
    """

    tokens: tuple[str, ...] = ()  # with <blank> at both ends; punctuation kept (it maps to <blank>)
    ids: tuple[int, ...] = ()  # one id per token
    start: float = 0.0  # seconds
    end: float | None = None  # seconds, None = the end of the clip

    @property
    def silent(self) -> bool:
        return not self.ids

    def window(self, duration: float | None = None, sequence: SequenceConfig = SEQUENCE,
               windows: WindowConfig = WINDOWS) -> tuple[float, float]:
        """``(start, end)`` in seconds, checked, for a clip of ``duration`` seconds.  With the clip unknown, "the end
        of the clip" reads as one window and the end may be anywhere up to the longest video allowed (the sampler
        checks it against the real clip).  Raises ``ValueError`` when the speech would lie outside the clip."""
        if duration is None:
            limit, default_end = windows.max_duration_sec, sequence.duration_sec
        else:
            limit = default_end = check_duration(duration, windows, max_duration=math.inf)
        end = default_end if self.end is None else float(self.end)
        if end > limit + 1e-6:
            where = "the end of the clip" if duration is not None else "the longest video allowed"
            raise ValueError(f"the speech window ends at {end:g} s, after {where} ({limit:.2f} s); move the speech "
                             f"window inside the video")
        check_speech_window(float(self.start), end, dataclasses.replace(sequence, duration_sec=max(limit, end)))
        return float(self.start), end

    def frame_ids(self, duration: float | None = None, sequence: SequenceConfig = SEQUENCE,
                  windows: WindowConfig = WINDOWS) -> torch.Tensor:
        """Per-latent-frame phoneme ids (int64) over the whole timeline of a clip of ``duration`` seconds
        (:attr:`WindowPlan.timeline`: ``[250]`` for a clip of one window, cut per window with
        :meth:`WindowPlan.window_slice`); all zeros when silent."""
        timeline = sequence if duration is None else plan_windows(duration, sequence, windows).timeline
        if self.silent:
            return silent_frame_ids(timeline)
        start, end = self.window(duration, sequence, windows)
        check_speech_rate(len(self.ids), start, end, sequence)
        return stretch_ids(self.ids, start, end, timeline)


def phoneme_track(
    transcript: str | None,
    speech_start: float | None = None,
    speech_end: float | None = None,
    duration: float | None = None,
    mode: Mode = "auto",
    sequence: SequenceConfig = SEQUENCE,
) -> PhonemeTrack:
    """The transcript (English text or ARPAbet, see ``mode``) as a :class:`PhonemeTrack`.

    No transcript (None, or only white space) gives a silent track.  The speech window is checked before any G2P
    work, against the clip when ``duration`` is known and against the longest video allowed otherwise;
    ``speech_end`` None stays "the end of the clip".  A transcript with more phonemes than the window has frames is
    refused as soon as the window is known.
    """
    if transcript is None or not transcript.strip():
        return PhonemeTrack()
    track = PhonemeTrack(start=0.0 if speech_start is None else float(speech_start),
                         end=None if speech_end is None else float(speech_end))
    start, end = track.window(duration, sequence)  # a bad window fails fast and cheaply
    tokens = transcript_to_tokens(transcript, mode)
    ids = tuple(tokens_to_ids(tokens))
    if duration is not None or track.end is not None:
        check_speech_rate(len(ids), start, end, sequence)
    return PhonemeTrack(tokens=tuple(tokens), ids=ids, start=track.start, end=track.end)


def phoneme_frame_ids(
    transcript: str | None,
    speech_start: float | None = None,
    speech_end: float | None = None,
    duration: float | None = None,
    sequence: SequenceConfig = SEQUENCE,
    windows: WindowConfig = WINDOWS,
) -> torch.Tensor:
    """Per-latent-frame phoneme ids (int64) over the timeline of a clip of ``duration`` seconds (see
    :meth:`PhonemeTrack.frame_ids`; ``[250]`` for a clip of one window).

    No transcript (None, or only white space) means a clip without speech: all ids are 0, as VGGSound clips were
    trained.  Otherwise the phonemes are stretched over ``[speech_start, speech_end]`` (default: the whole clip,
    which is what training did: the utterance's duration was the clip's) and the window must lie inside the clip.
    """
    track = phoneme_track(transcript, speech_start, speech_end, duration, sequence=sequence)
    return track.frame_ids(duration, sequence, windows)


def component_path(component: str, path: str | os.PathLike) -> Path:
    """The path to load a component from, given the weights file a user picked.

    A VAE or vocoder weights file with the diffusers/transformers name (``diffusion_pytorch_model.*``,
    ``model.safetensors``, ``pytorch_model.bin``) next to a ``config.json`` stands for its folder, so the loader reads
    the exact configuration instead of inferring it from tensor shapes.  Anything else is the file itself.
    """
    path = Path(path).expanduser()
    names = {"vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
             "vocoder": ("model.safetensors", "pytorch_model.bin")}.get(component, ())
    if path.name in names and (path.parent / "config.json").is_file():
        return path.parent
    return path


# --------------------------------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------------------------------


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


class PipelineComponents:
    """The frozen helpers around the network: CLIP and Synchformer (video in), the VAE and vocoder (audio out), and
    optionally RawNet3 (speaker reference).  They need no VSSFlow network, so a graph can load them once, encode a
    video and decode a latent with them, and pair them with any network of matching widths.

    The encoders run in bfloat16 where the hardware multiplies it natively (their cost is of the order of the
    sampler's; features stay within 1% of float32), everything else in float32.
    """

    def __init__(
        self,
        clip: CLIPVisualEncoder,
        synchformer: SynchformerVisualEncoder,
        vae: MelVAE,
        vocoder: HifiGanVocoder,
        rawnet3: RawNet3 | None = None,
        *,
        sequence: SequenceConfig = SEQUENCE,
    ):
        self.clip = clip.eval().requires_grad_(False)
        self.synchformer = synchformer.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.vocoder = vocoder.eval().requires_grad_(False)
        self.rawnet3 = None if rawnet3 is None else rawnet3.eval().requires_grad_(False)
        self.sequence = sequence
        problems = self._problems()
        if problems:
            raise PipelineConfigError("the loaded components do not fit together: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        seq, problems = self.sequence, []
        if self.synchformer.config.num_frames != seq.synch_segment_frames:
            problems.append(f"Synchformer takes {self.synchformer.config.num_frames}-frame segments, the window is cut "
                            f"into {seq.synch_segment_frames}-frame segments")
        vae, voc = self.vae.config, self.vocoder.config
        if voc.model_in_dim % vae.downsample_factor:
            problems.append(f"{voc.model_in_dim} mel bins are not divisible by the VAE's {vae.downsample_factor}x")
        if vae.downsample_factor != seq.latent_downsample:
            problems.append(f"the VAE downsamples time {vae.downsample_factor}x, the latent rate needs "
                            f"{seq.latent_downsample}x")
        if voc.hop_length != seq.mel_hop_length or voc.sampling_rate != seq.sample_rate:
            problems.append(f"the vocoder makes {voc.hop_length} samples per frame at {voc.sampling_rate} Hz, the "
                            f"model needs {seq.mel_hop_length} at {seq.sample_rate} Hz")
        return problems

    @property
    def sample_rate(self) -> int:
        return self.sequence.sample_rate

    @property
    def has_speaker_encoder(self) -> bool:
        return self.rawnet3 is not None

    @property
    def latent_channels(self) -> int:
        """Channels of the packed latent the VAE and vocoder decode (VAE channels x mel bins / downsampling)."""
        vae, voc = self.vae.config, self.vocoder.config
        return vae.latent_channels * (voc.model_in_dim // vae.downsample_factor)

    def modules(self) -> dict[str, torch.nn.Module]:
        """The loaded modules by name (for moving them between devices)."""
        found = {"clip": self.clip, "synchformer": self.synchformer, "vae": self.vae, "vocoder": self.vocoder}
        if self.rawnet3 is not None:
            found["rawnet3"] = self.rawnet3
        return found

    @classmethod
    def load(
        cls,
        checkpoint: str | os.PathLike | None = None,
        *,
        models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        clip: str | os.PathLike | None = None,
        synchformer: str | os.PathLike | None = None,
        vae: str | os.PathLike | None = None,
        vocoder: str | os.PathLike | None = None,
        rawnet3: str | os.PathLike | None = None,
        speaker: bool | None = None,
        download: bool = False,
        verify: bool = True,
        device: torch.device | str | None = None,
        encoder_dtype: torch.dtype | str | None = "auto",
    ) -> "PipelineComponents":
        """Load the frozen components; see :meth:`VSSFlowPipeline.load` for where each is found.

        ``models_dir`` may be a list of folders: the first that holds a component wins, and downloads go to the first.
        ``encoder_dtype``: the dtype CLIP and Synchformer run in; ``"auto"`` is bfloat16 where the device multiplies
        bf16 in hardware (:func:`~vssflow_core.devices.has_native_bfloat16`), else float32.
        """
        from .demo import frontend_config, load_frontends
        from .weights.hub import MissingWeightsError

        device = torch.device(device) if device is not None else default_device()
        if (checkpoint is None and not download and clip is None and synchformer is None and vae is None
                and vocoder is None):
            # nothing chosen: the components of the network that load_network(None) would pick (full, else demo);
            # download=True asks for the public pretrained components, so it never falls back to the demo
            checkpoint = resolve_checkpoint(None, models_dir=models_dir, download=download, verify=verify,
                                            announce=False)
        elif checkpoint is not None:
            checkpoint = resolve_checkpoint(checkpoint)
        frontend = frontend_config(checkpoint)
        if frontend is not None:
            chosen = [name for name, path in (("clip", clip), ("synchformer", synchformer), ("vae", vae),
                                              ("vocoder", vocoder)) if path is not None]
            if chosen:
                raise PipelineConfigError(
                    f"{checkpoint} is a demo-model checkpoint, which works only with its built-in stand-ins; it "
                    f"cannot use the chosen {', '.join(chosen)} weights. Install a full VSSFlow checkpoint to use "
                    "them (python -m vssflow_core convert), or leave the components unset")
            return cls(*load_frontends(frontend, device))
        find = _component_finder(checkpoint, models_dir, download, verify)
        encoder_dtype = resolve_dtype(encoder_dtype, device)
        clip_model = _load_component("clip", load_clip_visual, find("clip", clip)[0], device=device,
                                     dtype=encoder_dtype)
        synch_model = _load_component("synchformer", load_synchformer, find("synchformer", synchformer)[0],
                                      device=device, dtype=encoder_dtype)
        vae_path, vae_config = find("vae", vae)
        vae_model = _load_component("vae", load_vae, vae_path,
                                    _read_config(vae_config, VAEConfig.from_diffusers_config), device=device)
        voc_path, voc_config = find("vocoder", vocoder)
        voc_model = _load_component("vocoder", load_vocoder, voc_path,
                                    _read_config(voc_config, VocoderConfig.from_transformers_config), device=device)
        speaker_model = None
        if rawnet3 is not None or speaker:
            speaker_model = _load_component("rawnet3", load_rawnet3, find("rawnet3", rawnet3)[0], device=device)
        elif speaker is None:
            try:
                speaker_path, _ = find("rawnet3", None)
            except MissingWeightsError:
                speaker_path = None  # optional: generation without a speaker reference does not need it
            if speaker_path is not None:
                speaker_model = _load_component("rawnet3", load_rawnet3, speaker_path, device=device)
        return cls(clip_model, synch_model, vae_model, voc_model, speaker_model)

    # ---------------------------------------------------------------------------------------------------- stages

    @torch.inference_mode()
    def encode_video(
        self,
        video: Any,
        *,
        fps: float | None = None,
        clip_batch_size: int = 32,
        synch_batch_size: int = 8,
        max_duration: float | None = None,
        windows: WindowConfig = WINDOWS,
    ) -> VisualFeatures:
        """CLIP and Synchformer features of a video, window by window (:func:`~vssflow_core.windows.plan_windows`):
        a path, a ComfyUI VIDEO / VideoComponents, a frame source, or frames ``[F, H, W, 3]`` (float 0..1 or uint8)
        with ``fps``.  Only the frames each window needs are decoded, one window at a time.

        Raises :class:`~vssflow_core.windows.VideoTooLongError` (before any encoding) past ``max_duration`` seconds
        (None: the configured maximum; ``math.inf``: no limit), and :class:`~vssflow_core.video.VideoError`
        subclasses for videos that cannot be read.
        """
        source, owned = as_frame_source(video, fps=fps)
        try:
            duration = check_duration(source.end_time, windows, max_duration)
            plan = plan_windows(duration, self.sequence, windows)
            encoded = [self.encode_window(source, start, clip_batch_size=clip_batch_size,
                                          synch_batch_size=synch_batch_size) for start in plan.starts]
        finally:
            if owned:
                source.close()
        return VisualFeatures(clip=torch.cat([clip for clip, _ in encoded]),
                              synch=torch.cat([synch for _, synch in encoded]), duration=duration,
                              source_fps=float(source.average_fps), plan=plan)

    @torch.inference_mode()
    def encode_window(self, source: FrameSource, start: float = 0.0, *, clip_batch_size: int = 32,
                      synch_batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP ``[1, 100, D]`` and Synchformer ``[1, 30, 8, D]`` features of the window starting ``start`` seconds
        into an open frame source (black frames past its end)."""
        window = self.sequence.duration_sec
        clip_in = clip_frames(source, start=start, duration=window, size=self.clip.config.input_resolution)
        clip = self.clip.encode_frames(clip_in.frames, batch_size=clip_batch_size, channels_last=True)
        del clip_in  # one window's frames at a time
        synch_in = synchformer_frames(source, start=start, duration=window, size=self.synchformer.config.img_size)
        synch = self.synchformer.encode_video(synch_in.frames, batch_size=synch_batch_size,
                                              num_frames=self.sequence.synch_frames, channels_last=True,
                                              sequence=self.sequence)
        return clip[None], synch[None]

    def speaker_embedding(self, reference: Any, sample_rate: int | None = None) -> torch.Tensor:
        """RawNet3 embedding of a reference utterance (a path, a ``(waveform, sample_rate)`` pair, a ComfyUI AUDIO
        dict, or a waveform with ``sample_rate``), on RawNet3's device."""
        if self.rawnet3 is None:
            raise ValueError("a speaker reference needs the RawNet3 speaker encoder, which was not loaded; load it "
                             "(python -m vssflow_core download rawnet3) or leave the reference out")
        waveform, rate = _reference_audio(reference, sample_rate)
        return rawnet3_speaker_embedding(self.rawnet3, waveform, rate)

    @torch.inference_mode()
    def decode(self, latent: torch.Tensor, duration: float | None = None,
               plan: WindowPlan | None = None) -> torch.Tensor:
        """Packed latent -> waveform ``[B, round(duration * 16000)]`` float32 on the CPU: exactly the clip's duration
        (the whole window when ``duration`` is None).

        ``latent`` is one window ``[B, 128, L]`` or the windows ``[B, windows, 128, L]`` of ``plan`` (default: the
        plan for ``duration``); windows are decoded one at a time and joined
        (:class:`~vssflow_core.windows.AudioJoiner`).
        """
        if plan is None:
            duration = self.sequence.duration_sec if duration is None else duration
            plan = plan_windows(check_duration(duration, max_duration=math.inf), self.sequence)
        windows = latent[:, None] if latent.ndim == 3 else latent
        if windows.ndim != 4 or windows.shape[1] != plan.count:
            raise ValueError(f"a latent of shape {tuple(latent.shape)} does not hold the {plan.count} window(s) of a "
                             f"{plan.duration:.2f} s clip; decode it with the duration it was sampled for")
        joiner = AudioJoiner(plan, windows.shape[0])
        for k in range(plan.count):
            joiner.add(k, self.decode_window(windows[:, k]))
        return joiner.result()

    @torch.inference_mode()
    def decode_window(self, latent: torch.Tensor) -> torch.Tensor:
        """One window's packed latent ``[B, 128, L]`` -> its whole waveform ``[B, samples]``, float32 on the CPU."""
        latent = unpack_latent(latent.to(module_device(self.vae), module_dtype(self.vae)),
                               self.vae.config.latent_channels)
        mel = self.vae.decode(latent)  # [B, 1, frames, mel bins]
        mel = mel[:, 0].to(module_device(self.vocoder), module_dtype(self.vocoder))
        return self.vocoder(mel).float().cpu()  # [B, frames * hop + overshoot]


def load_network(
    checkpoint: str | os.PathLike | None = None,
    *,
    models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    download: bool = False,
    verify: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    head_dim: int | None = None,
) -> VSSFlow:
    """The VSSFlow network from ``checkpoint`` (see :func:`resolve_checkpoint`)."""
    from .weights.checkpoint import load_vssflow

    device = torch.device(device) if device is not None else default_device()
    path = resolve_checkpoint(checkpoint, models_dir=models_dir, download=download, verify=verify)
    return load_vssflow(path, head_dim=head_dim, dtype=dtype, device=device)


DEMO = "demo"  # the checkpoint name that always means the shipped demo model


def resolve_checkpoint(
    checkpoint: str | os.PathLike | None = None,
    *,
    models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    download: bool = False,
    verify: bool = True,
    announce: bool = True,
) -> Path:
    """The checkpoint to load: ``checkpoint`` itself (a file or a converted folder); ``"demo"`` for the shipped demo
    model; None for the full model found in the models folder(s) or the Hugging Face cache, else the demo.

    Falling back to the demo is logged (``announce``), because the demo only knows synthetic scenes.
    """
    from .demo import DEMO_CHECKPOINT, demo_available
    from .weights.hub import MissingWeightsError

    if checkpoint is not None and str(checkpoint) != DEMO:
        return Path(checkpoint).expanduser()
    if checkpoint is None:
        try:
            return _component_finder(None, models_dir, download, verify)("vssflow", None)[0]
        except MissingWeightsError:
            if not demo_available():
                raise
            if announce:
                log.warning("no full VSSFlow checkpoint installed: using the demo model shipped with the package "
                            "(trained on synthetic scenes; see the README to install the full model)")
    if not demo_available():
        raise PipelineConfigError(f"the demo checkpoint is missing from {DEMO_CHECKPOINT}; reinstall the package")
    return DEMO_CHECKPOINT


class VSSFlowPipeline:
    """The loaded VSSFlow network and its frozen helpers (:class:`PipelineComponents`), with the generation stages as
    methods.

    The VSSFlow network runs in ``dtype`` (float32 or bfloat16); the encoders, VAE and vocoder stay in float32 (they
    are small, and their outputs are what the network was trained on).
    """

    def __init__(
        self,
        model: VSSFlow,
        clip: CLIPVisualEncoder,
        synchformer: SynchformerVisualEncoder,
        vae: MelVAE,
        vocoder: HifiGanVocoder,
        rawnet3: RawNet3 | None = None,
        *,
        sequence: SequenceConfig = SEQUENCE,
    ):
        self.components = PipelineComponents(clip, synchformer, vae, vocoder, rawnet3, sequence=sequence)
        self.model = model.eval().requires_grad_(False)
        self.clip, self.synchformer = self.components.clip, self.components.synchformer
        self.vae, self.vocoder, self.rawnet3 = self.components.vae, self.components.vocoder, self.components.rawnet3
        self.sequence = sequence
        self._check_compatible()

    @classmethod
    def from_components(cls, model: VSSFlow, components: PipelineComponents) -> "VSSFlowPipeline":
        """Pair a network with components loaded on their own (no copies are made)."""
        return cls(model, components.clip, components.synchformer, components.vae, components.vocoder,
                   components.rawnet3, sequence=components.sequence)

    # ---------------------------------------------------------------------------------------------------- properties

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def sample_rate(self) -> int:
        return self.sequence.sample_rate

    @property
    def has_speaker_encoder(self) -> bool:
        return self.rawnet3 is not None

    def _check_compatible(self) -> None:
        cfg = self.model.cfg
        problems = []
        if self.clip.config.width != cfg.clip_dim:
            problems.append(f"CLIP gives {self.clip.config.width}-d features, the network expects {cfg.clip_dim}")
        if self.synchformer.config.embed_dim != cfg.synch_dim:
            problems.append(f"Synchformer gives {self.synchformer.config.embed_dim}-d features, the network expects "
                            f"{cfg.synch_dim}")
        if self.rawnet3 is not None and self.rawnet3.config.n_out != cfg.speaker_dim:
            problems.append(f"RawNet3 gives {self.rawnet3.config.n_out}-d embeddings, the network expects "
                            f"{cfg.speaker_dim}")
        vae, voc = self.vae.config, self.vocoder.config
        if self.components.latent_channels != cfg.latent_channels:
            problems.append(f"the VAE packs {vae.latent_channels} x {voc.model_in_dim // vae.downsample_factor} latent "
                            f"channels, the network generates {cfg.latent_channels}")
        if problems:
            raise PipelineConfigError("the loaded components do not fit together: " + "; ".join(problems))

    # ---------------------------------------------------------------------------------------------------- loading

    @classmethod
    def load(
        cls,
        checkpoint: str | os.PathLike | None = None,
        *,
        models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        clip: str | os.PathLike | None = None,
        synchformer: str | os.PathLike | None = None,
        vae: str | os.PathLike | None = None,
        vocoder: str | os.PathLike | None = None,
        rawnet3: str | os.PathLike | None = None,
        speaker: bool | None = None,
        download: bool = False,
        verify: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        head_dim: int | None = None,
        encoder_dtype: torch.dtype | str | None = "auto",
    ) -> "VSSFlowPipeline":
        """Load every component.

        A component given as a path is loaded from it as is (its loader still checks keys and shapes strictly).
        One not given is taken from a folder written by ``python -m vssflow_core convert`` when ``checkpoint`` is
        such a folder and holds it, else found through :func:`vssflow_core.weights.hub.resolve` in ``models_dir``
        (default ``$VSSFLOW_MODELS_DIR``; a list of folders is searched in order) or the Hugging Face cache, checked
        against the registry unless ``verify=False``, and fetched first with ``download=True``.  Missing weights
        raise :class:`~vssflow_core.weights.hub.MissingWeightsError`, whose message says how to get them.

        ``speaker``: True requires the RawNet3 speaker encoder, False skips it, None loads it when it can be found.
        ``dtype`` is the network's (float32 or bfloat16); ``encoder_dtype`` that of CLIP and Synchformer (``"auto"``:
        bf16 where the device multiplies it natively, see :meth:`PipelineComponents.load`).
        """
        device = torch.device(device) if device is not None else default_device()
        checkpoint = resolve_checkpoint(checkpoint, models_dir=models_dir, download=download, verify=verify)
        model = load_network(checkpoint, models_dir=models_dir, download=download, verify=verify, device=device,
                             dtype=dtype, head_dim=head_dim)
        components = PipelineComponents.load(checkpoint, models_dir=models_dir, clip=clip, synchformer=synchformer,
                                             vae=vae, vocoder=vocoder, rawnet3=rawnet3, speaker=speaker,
                                             download=download, verify=verify, device=device,
                                             encoder_dtype=encoder_dtype)
        return cls.from_components(model, components)

    # ---------------------------------------------------------------------------------------------------- stages

    def encode_video(self, video: Any, *, fps: float | None = None, clip_batch_size: int = 32,
                     synch_batch_size: int = 8, max_duration: float | None = None,
                     windows: WindowConfig = WINDOWS) -> VisualFeatures:
        """See :meth:`PipelineComponents.encode_video`."""
        return self.components.encode_video(video, fps=fps, clip_batch_size=clip_batch_size,
                                            synch_batch_size=synch_batch_size, max_duration=max_duration,
                                            windows=windows)

    def phoneme_ids(self, transcript: str | None, speech_start: float | None = None,
                    speech_end: float | None = None, duration: float | None = None,
                    windows: WindowConfig = WINDOWS) -> torch.Tensor:
        """See :func:`phoneme_frame_ids`."""
        return phoneme_frame_ids(transcript, speech_start, speech_end, duration, self.sequence, windows)

    def speaker_embedding(self, reference: Any = None, sample_rate: int | None = None) -> torch.Tensor:
        """RawNet3 embedding ``[speaker_dim]`` of a reference utterance: a path, a ``(waveform, sample_rate)`` pair, a
        ComfyUI AUDIO dict, or a waveform with ``sample_rate``.  None gives zeros (the model's "no reference")."""
        if reference is None:
            return torch.zeros(self.model.cfg.speaker_dim, device=self.device)
        return self.components.speaker_embedding(reference, sample_rate).to(self.device)

    def lip_features(self, lip: Any = None, length: int | None = None) -> torch.Tensor:
        """Lip features ``[length, lip_dim]`` on the latent grid (default: one window; a longer clip needs its plan's
        ``timeline.latent_length``): None gives zeros (as the official in-the-wild inference); a ``.npy`` /
        ``.safetensors`` path or an array ``[frames, lip_dim]`` at 25 fps is cropped or zero-padded."""
        length = self.sequence.latent_length if length is None else length
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
        length = self.sequence.latent_length
        device = self.device
        phone_ids = silent_frame_ids(self.sequence) if phone_ids is None else phone_ids
        speaker = torch.zeros(self.model.cfg.speaker_dim) if speaker is None else speaker
        lip = zero_lip_features(length, self.model.cfg.lip_dim) if lip is None else lip

        def batched(x: torch.Tensor, unbatched_ndim: int) -> torch.Tensor:
            x = x.to(device)
            return _expand(x[None] if x.ndim == unbatched_ndim else x, batch_size)

        return self.model.prepare_conditions(
            clip=batched(visual.clip, 2),
            synch=batched(visual.synch, 3),
            phone_ids=batched(phone_ids, 1),
            lip=batched(lip, 2),
            speaker=batched(speaker, 1),
            latent_length=length,
        )

    def initial_noise(self, batch_size: int, seed: int) -> tuple[torch.Tensor, list[int]]:
        """Noise ``[B, latent_channels, L]`` with item ``i`` drawn from its own CPU generator seeded ``seed + i`` (as
        ``infer.py`` seeds samples), so an item's audio does not depend on the batch size or the device."""
        seeds = [(int(seed) + i) % 2**64 for i in range(batch_size)]
        shape = (self.model.latent_channels, self.sequence.latent_length)
        noise = torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds])
        return noise.to(self.device), seeds

    @torch.inference_mode()
    def sample(
        self,
        conditions: Conditions,
        *,
        seed: int = 0,
        solver: str = DEFAULT_SOLVER,
        steps: int = DEFAULT_FIXED_STEPS,
        schedule: str = DEFAULT_SCHEDULE,
        guidance_scale: float = OFFICIAL_GUIDANCE_SCALE,
        atol: float = OFFICIAL_ATOL,
        rtol: float = OFFICIAL_RTOL,
        callback: ProgressCallback | None = None,
        batched_guidance: bool = True,
        cache: bool = True,
        compile: bool = False,
        known: KnownFrames | None = None,
    ) -> SampledLatent:
        """Integrate the guided flow from noise (t = 0) to a packed latent (t = 1).

        ``solver``: dopri5 (official, adaptive: ``atol``/``rtol``) or euler / midpoint / heun / rk4 / ab2 (``steps``
        on the ``schedule``'s time grid: ``balanced`` or ``uniform``).
        ``callback`` is called after every accepted step with a :class:`SamplingProgress`; anything it raises stops
        sampling and propagates (that is how a caller cancels).

        The fast paths change the cost, not the field: ``batched_guidance`` runs the unconditional and conditional
        inputs as one batch, ``cache`` computes what is constant over the generation once
        (:class:`CachedGuidedVelocity`; with a bfloat16 network it also keeps the residual stream and time features
        in float32), ``compile`` runs the network through ``torch.compile`` (slow to start; falls back with a
        warning where it cannot compile).  ``cache=False, batched_guidance=False`` is the reference path: two plain
        passes per evaluation, as official.

        ``known``: leading latent frames already generated (the previous window's end); they are held on the flow
        path to their value and the rest is generated to continue them (:class:`~vssflow_core.windows.KnownFrames`).
        """
        if solver not in SOLVER_NAMES:
            raise ValueError(f"unknown solver '{solver}'; choose one of {', '.join(SOLVER_NAMES)}")
        if not math.isfinite(guidance_scale):
            raise ValueError(f"guidance scale must be a finite number, got {guidance_scale}")
        ode = make_solver(solver, steps=steps, atol=atol, rtol=rtol, schedule=schedule)
        noise, seeds = self.initial_noise(conditions.batch_size, seed)
        x = torch.cat([noise, conditions.latent_cond.float()], dim=1)
        velocity = self._guided_velocity(conditions, guidance_scale, batched_guidance, cache, compile)
        field = velocity if known is None else known.constrain(velocity, noise)

        on_step = None
        if callback is not None:
            def on_step(step: int, total: int | None, t: float) -> None:
                callback(SamplingProgress(step=step, total_steps=total, t=t, evaluations=velocity.evaluations))

        solution = ode.solve(field, x, 0.0, 1.0, callback=on_step)
        return SampledLatent(latent=solution.x[:, : self.model.latent_channels].float(), seeds=seeds, solver=solver,
                             steps=solution.steps, evaluations=solution.evaluations)

    def _guided_velocity(self, conditions: Conditions, guidance_scale: float, batched: bool, cache: bool,
                         compile: bool) -> GuidedVelocity:
        from .model.compile import CompiledOrEager

        if cache:
            forward = CompiledOrEager(self.model.latent_velocity) if compile else None
            return CachedGuidedVelocity(self.model, conditions, guidance_scale, batched=batched,
                                        latent_velocity=forward)
        network = _NetworkInItsDtype(self.model)
        if compile:
            network = CompiledOrEager(network)
        return GuidedVelocity(network, conditions, guidance_scale, latent_channels=self.model.latent_channels,
                              batched=batched)

    def decode(self, latent: torch.Tensor, duration: float | None = None,
               plan: WindowPlan | None = None) -> torch.Tensor:
        """See :meth:`PipelineComponents.decode`."""
        return self.components.decode(latent, duration, plan)

    def decode_window(self, latent: torch.Tensor) -> torch.Tensor:
        """See :meth:`PipelineComponents.decode_window`."""
        return self.components.decode_window(latent)

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
        callback: ProgressCallback | None = None,
        **sampling: Any,
    ) -> SampledLatent:
        """Sample every window of ``visual`` (see :meth:`sample` for ``sampling``), each continuing the one before it
        or on its own, by the plan's seam strategy.

        ``phone_ids`` ``[T]`` and ``lip`` ``[T, lip_dim]`` lie on the plan's timeline (``T =
        plan.timeline.latent_length``, as :meth:`phoneme_ids` and :meth:`lip_features` give them).  The latent is
        ``[B, windows, 128, L]``, or ``[B, 128, L]`` for one window.
        """
        plan = visual.plan
        windows = (visual.window(k) for k in range(plan.count))
        sampled = list(self._sample_each_window(plan, windows, phone_ids, speaker, lip, batch_size, seed, callback,
                                                sampling))
        latent = sampled[0].latent if plan.count == 1 else torch.stack([s.latent for s in sampled], dim=1)
        return SampledLatent(latent=latent, seeds=sampled[0].seeds, solver=sampled[0].solver,
                             steps=sum(s.steps for s in sampled), evaluations=sum(s.evaluations for s in sampled),
                             plan=plan)

    def _sample_each_window(self, plan: WindowPlan, visuals: Iterable[VisualFeatures], phone_ids: torch.Tensor | None,
                            speaker: torch.Tensor | None, lip: torch.Tensor | None, batch_size: int, seed: int,
                            callback: ProgressCallback | None, sampling: Mapping[str, Any]) -> Iterator[SampledLatent]:
        """Window by window, lazily (``visuals`` may encode each window only when it is needed)."""
        timeline = plan.timeline.latent_length
        phone_ids = silent_frame_ids(plan.timeline) if phone_ids is None else phone_ids
        lip = zero_lip_features(timeline, self.model.cfg.lip_dim) if lip is None else lip
        for name, track in (("phoneme ids", phone_ids), ("lip features", lip)):
            if track.shape[0] != timeline:
                raise ValueError(f"{name} cover {track.shape[0]} latent frames, the {plan.count} window(s) of a "
                                 f"{plan.duration:.2f} s clip need {timeline}; make them for this clip's duration")
        previous, steps, evaluations = None, 0, 0
        for k, visual in enumerate(visuals):
            conditions = self.conditions(visual, plan.window_slice(phone_ids, k), speaker, plan.window_slice(lip, k),
                                         batch_size)
            known = None
            if previous is not None and plan.windows.seam == "continue":
                known = KnownFrames.from_previous(previous, plan, k)
            sampled = self.sample(conditions, seed=window_seed(seed, k), known=known,
                                  callback=window_progress(callback, k, plan.count, steps, evaluations), **sampling)
            steps, evaluations, previous = steps + sampled.steps, evaluations + sampled.evaluations, sampled.latent
            yield sampled

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
        solver: str = DEFAULT_SOLVER,
        steps: int = DEFAULT_FIXED_STEPS,
        schedule: str = DEFAULT_SCHEDULE,
        guidance_scale: float = OFFICIAL_GUIDANCE_SCALE,
        atol: float = OFFICIAL_ATOL,
        rtol: float = OFFICIAL_RTOL,
        callback: ProgressCallback | None = None,
        max_duration: float | None = None,
        windows: WindowConfig = WINDOWS,
        **sampling: Any,
    ) -> GeneratedAudio:
        """Every stage in order, for a video of any length up to ``max_duration`` seconds (None: the configured
        maximum).  Cheap checks (length, transcript, lip file, speaker) run before the expensive encoders; then each
        window is read, encoded, sampled, decoded and joined before the next one is read, so memory holds one window's
        frames, features and audio (plus the output track) whatever the video's length.  Further keyword arguments
        go to :meth:`sample`."""
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if solver not in SOLVER_NAMES:
            raise ValueError(f"unknown solver '{solver}'; choose one of {', '.join(SOLVER_NAMES)}")
        check_schedule(schedule)
        source, owned = as_frame_source(video, fps=fps)
        try:
            duration = check_duration(source.end_time, windows, max_duration)
            plan = plan_windows(duration, self.sequence, windows)
            phone_ids = self.phoneme_ids(transcript, speech_start, speech_end, duration, windows)
            lip_features = self.lip_features(lip, plan.timeline.latent_length)
            speaker_vector = self.speaker_embedding(speaker)
            visuals = (VisualFeatures(*self.components.encode_window(source, start), duration=duration,
                                      source_fps=float(source.average_fps)) for start in plan.starts)
            joiner = AudioJoiner(plan, batch_size)
            sampling = {**sampling, "solver": solver, "steps": steps, "schedule": schedule,
                        "guidance_scale": guidance_scale, "atol": atol, "rtol": rtol}
            seeds, total_steps, evaluations = [], 0, 0
            for k, window in enumerate(self._sample_each_window(plan, visuals, phone_ids, speaker_vector, lip_features,
                                                                batch_size, seed, callback, sampling)):
                joiner.add(k, self.decode_window(window.latent))
                seeds = seeds or window.seeds
                total_steps, evaluations = total_steps + window.steps, evaluations + window.evaluations
        finally:
            if owned:
                source.close()
        return GeneratedAudio(waveform=joiner.result(), sample_rate=self.sample_rate, duration=duration, seeds=seeds,
                              solver=solver, steps=total_steps, evaluations=evaluations)


# --------------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------------


def _component_finder(
    checkpoint: str | os.PathLike | None,
    models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None,
    download: bool,
    verify: bool,
) -> Callable[[str, str | os.PathLike | None], tuple[Path, Path | None]]:
    """``find(component, given) -> (weights, config.json or None)``: the given path, else the converted checkpoint
    folder's file, else the models folder(s) or the hub cache through the weights registry."""
    from .weights.hub import resolve_any

    converted = _converted_folder_files(checkpoint)
    if models_dir is None or isinstance(models_dir, (str, os.PathLike)):
        folders: list[Any] = [models_dir]
    else:
        folders = list(models_dir)

    def find(component: str, given: str | os.PathLike | None) -> tuple[Path, Path | None]:
        if given is not None:
            return Path(given).expanduser(), None
        if component in converted:
            return converted[component], None
        found = resolve_any(component, folders, download=download, verify=verify)
        return found.weights, found.config

    return find


def _converted_folder_files(checkpoint: str | os.PathLike | None) -> dict[str, Path]:
    """Component files inside a folder written by ``python -m vssflow_core convert`` (the official checkpoint also
    carries the exact CLIP tower, VAE and vocoder it was trained with)."""
    if checkpoint is None or not Path(checkpoint).expanduser().is_dir():
        return {}
    from .convert import COMPONENT_FILES

    folder = Path(checkpoint).expanduser()
    return {name: folder / file for name, file in COMPONENT_FILES.items()
            if name != "vssflow" and (folder / file).is_file()}


def _load_component(component: str, loader: Callable[..., Any], path: Path, *args: Any, **kwargs: Any) -> Any:
    """``loader(path, ...)``, with "this file holds other weights" (the loaders' KeyError when the tensors they look
    for are absent) turned into a :class:`~vssflow_core.weights.checkpoint.CheckpointError` naming the file."""
    from .weights.checkpoint import CheckpointError

    try:
        return loader(path, *args, **kwargs)
    except KeyError as exc:
        reason = exc.args[0] if exc.args else exc
        raise CheckpointError(f"{path} does not hold {component} weights ({reason}); choose the {component} file, or "
                              f"let the weights registry find it (leave it out, or 'auto' in the loader node)") \
            from None


def _read_config(path: Path | None, parse: Callable[[Mapping[str, Any]], Any]) -> Any:
    if path is None:
        return None
    try:
        return parse(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise PipelineConfigError(f"cannot use the configuration {path}: {exc}") from None


def _reference_audio(reference: Any, sample_rate: int | None) -> tuple[torch.Tensor | np.ndarray, int]:
    """(waveform, rate) from the forms a speaker reference arrives in."""
    if isinstance(reference, (str, os.PathLike)):
        from .media.audio_io import read_audio

        return read_audio(reference)
    if isinstance(reference, Mapping) and "waveform" in reference:  # ComfyUI AUDIO: [B, C, T], first item used
        return reference["waveform"][0], int(reference["sample_rate"])
    if isinstance(reference, tuple) and len(reference) == 2:
        return reference[0], int(reference[1])
    if sample_rate is None:
        raise ValueError("a speaker reference given as a waveform needs its sample rate")
    return reference, int(sample_rate)
