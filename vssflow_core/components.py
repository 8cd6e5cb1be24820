"""The frozen helpers around the network (CLIP, Synchformer, the VAE, the vocoder, optionally RawNet3) and the
stages that need no network: encode a video window by window, embed a speaker reference, decode a latent to sound.
:func:`compatibility_problems` is the one check that the parts, and a network paired with them, fit together."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

import numpy as np
import torch

from .codec.mel import LogMelFrontend
from .codec.vae import MelVAE, pack_latent, unpack_latent
from .codec.vocoder import HifiGanVocoder
from .config import MEL, SEQUENCE, WINDOWS, MelConfig, SequenceConfig, WindowConfig
from .devices import module_device, module_dtype
from .encoders.clip import CLIPVisualEncoder
from .encoders.rawnet3 import RawNet3
from .encoders.speaker import speaker_embedding as rawnet3_speaker_embedding
from .encoders.synchformer import SynchformerVisualEncoder
from .media.audio_io import read_audio
from .model.vssflow import VSSFlow
from .results import VisualFeatures
from .video import FrameSource, as_frame_source, clip_frames, synchformer_frames
from .windows import AudioJoiner, WindowPlan, window_plan

__all__ = ["PipelineComponents", "PipelineConfigError", "check_compatible", "codec_mel_config",
           "compatibility_problems"]


class PipelineConfigError(ValueError):
    """The loaded components do not fit together (widths, rates or window lengths differ)."""


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
        vocoder: HifiGanVocoder | None,
        rawnet3: RawNet3 | None = None,
        *,
        sequence: SequenceConfig = SEQUENCE,
    ):
        self.clip = clip.eval().requires_grad_(False)
        self.synchformer = synchformer.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.vocoder = None if vocoder is None else vocoder.eval().requires_grad_(False)  # None: encode only
        self.rawnet3 = None if rawnet3 is None else rawnet3.eval().requires_grad_(False)
        self.sequence = sequence
        self._mel: LogMelFrontend | None = None  # made on first use: only training encodes audio
        check_compatible(self)

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
        found = {"clip": self.clip, "synchformer": self.synchformer, "vae": self.vae, "vocoder": self.vocoder,
                 "rawnet3": self.rawnet3}
        return {name: module for name, module in found.items() if module is not None}

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
        speech=None,
    ) -> VisualFeatures:
        """CLIP and Synchformer features of a video, window by window (:func:`~vssflow_core.windows.plan_windows`):
        a path, a ComfyUI VIDEO / VideoComponents, a frame source, or frames ``[F, H, W, 3]`` (float 0..1 or uint8)
        with ``fps``.  Only the frames each window needs are decoded, one window at a time.

        Raises :class:`~vssflow_core.windows.VideoTooLongError` (before any encoding) past ``max_duration`` seconds
        (None: the configured maximum; ``math.inf``: no limit), and :class:`~vssflow_core.video.VideoError`
        subclasses for videos that cannot be read.

        ``speech``: the clip's :class:`~vssflow_core.text.speech.SpeechTrack`, so the windows are placed where no
        seam cuts a line (:func:`~vssflow_core.line_windows.speech_plan`).
        """
        source, owned = as_frame_source(video, fps=fps)
        try:
            if speech is None:
                plan = window_plan(source.end_time, self.sequence, windows, max_duration)
            else:
                from .line_windows import speech_plan

                plan = speech_plan(source.end_time, speech, dict(speech.references), self.sequence, windows,
                                   max_duration)
            encoded = [self.encode_window(source, start, clip_batch_size=clip_batch_size,
                                          synch_batch_size=synch_batch_size) for start in plan.starts]
        finally:
            if owned:
                source.close()
        return VisualFeatures(clip=torch.cat([clip for clip, _ in encoded]),
                              synch=torch.cat([synch for _, synch in encoded]), duration=plan.duration,
                              source_fps=float(source.average_fps), plan=plan)

    @torch.inference_mode()
    def encode_window(self, source: FrameSource, start: float = 0.0, *, clip_batch_size: int = 32,
                      synch_batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP ``[1, 100, D]`` and Synchformer ``[1, 30, 8, D]`` features of the window starting ``start`` seconds
        into an open frame source (black frames past its end)."""
        window = self.sequence.duration_sec
        clip_in = clip_frames(source, start=start, duration=window, fps=self.sequence.clip_fps,
                              size=self.clip.config.input_resolution)
        clip = self.clip.encode_frames(clip_in.frames, batch_size=clip_batch_size, channels_last=True)
        del clip_in  # one window's frames at a time
        synch_in = synchformer_frames(source, start=start, duration=window, fps=self.sequence.synch_fps,
                                      size=self.synchformer.config.img_size)
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
        return rawnet3_speaker_embedding(self.rawnet3, waveform, rate, target_rate=self.sequence.sample_rate)

    @torch.inference_mode()
    def encode_audio(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Window-length waveforms ``[B, N]`` at the sample rate -> the VAE posterior's packed mean and standard
        deviation ``[B, latent_channels, L]`` (float32, on the CPU): what training learns to generate."""
        if self._mel is None:
            self._mel = LogMelFrontend(codec_mel_config(self.vae)).to(module_device(self.vae))
        mel = self._mel(waveforms.to(module_device(self.vae)).float(), self.sequence.mel_frames)
        posterior = self.vae.encode(mel)
        return pack_latent(posterior.mean).float().cpu(), pack_latent(posterior.std).float().cpu()

    @torch.inference_mode()
    def decode(self, latent: torch.Tensor, duration: float | None = None,
               plan: WindowPlan | None = None, edit: Any = None) -> torch.Tensor:
        """Packed latent -> waveform ``[B, round(duration * 16000)]`` float32 on the CPU: exactly the clip's duration
        (the whole window when ``duration`` is None).

        ``latent`` is one window ``[B, 128, L]`` or the windows ``[B, windows, 128, L]`` of ``plan`` (default: the
        plan for ``duration``); windows are decoded one at a time and joined
        (:class:`~vssflow_core.windows.AudioJoiner`).  ``edit``: the
        :class:`~vssflow_core.flow.edit.AudioEdit` the latent was sampled with (its kept track is put back).
        """
        if plan is None:
            duration = self.sequence.duration_sec if duration is None else duration
            plan = window_plan(duration, self.sequence, max_duration=math.inf)
        windows = latent[:, None] if latent.ndim == 3 else latent
        if windows.ndim != 4 or windows.shape[1] != plan.count:
            raise ValueError(f"a latent of shape {tuple(latent.shape)} does not hold the {plan.count} window(s) of a "
                             f"{plan.duration:.2f} s clip; decode it with the duration it was sampled for")
        joiner = AudioJoiner(plan, windows.shape[0])
        for k in range(plan.count):
            level = 1.0 if edit is None else edit.level(self.vae, plan, k)
            joiner.add(k, self.decode_window(windows[:, k]) * level)
        return joiner.result() if edit is None else edit.compose(joiner.result())

    @torch.inference_mode()
    def decode_window(self, latent: torch.Tensor) -> torch.Tensor:
        """One window's packed latent ``[B, 128, L]`` -> its whole waveform ``[B, samples]``, float32 on the CPU."""
        latent = unpack_latent(latent.to(module_device(self.vae), module_dtype(self.vae)),
                               self.vae.config.latent_channels)
        mel = self.vae.decode(latent)  # [B, 1, frames, mel bins]
        if self.vocoder is None:
            raise ValueError("these components were loaded to encode only, without a vocoder; load them with one to "
                             "decode a latent")
        mel = mel[:, 0].to(module_device(self.vocoder), module_dtype(self.vocoder))
        return self.vocoder(mel).float().cpu()  # [B, frames * hop + overshoot]


def codec_mel_config(codec: torch.nn.Module) -> MelConfig:
    """The log-mel front-end an audio codec was built for: the official one for the AudioLDM2 VAE, the codec's own
    (``mel_config``) for the demo's."""
    return getattr(codec, "mel_config", MEL)


def compatibility_problems(components: PipelineComponents, model: VSSFlow | None = None) -> list[str]:
    """What does not fit between the components (and the network ``model``, when given), in words; empty when all
    fit."""
    seq, problems = components.sequence, []
    synchformer, vae = components.synchformer.config, components.vae.config
    if synchformer.num_frames != seq.synch_segment_frames:
        problems.append(f"Synchformer takes {synchformer.num_frames}-frame segments, the window is cut "
                        f"into {seq.synch_segment_frames}-frame segments")
    if vae.downsample_factor != seq.latent_downsample:
        problems.append(f"the VAE downsamples time {vae.downsample_factor}x, the latent rate needs "
                        f"{seq.latent_downsample}x")
    if components.vocoder is None:
        return problems + ([] if model is None else ["no vocoder was loaded; generation needs one to decode"])
    voc = components.vocoder.config
    if voc.model_in_dim % vae.downsample_factor:
        problems.append(f"{voc.model_in_dim} mel bins are not divisible by the VAE's {vae.downsample_factor}x")
    if voc.hop_length != seq.mel_hop_length or voc.sampling_rate != seq.sample_rate:
        problems.append(f"the vocoder makes {voc.hop_length} samples per frame at {voc.sampling_rate} Hz, the "
                        f"model needs {seq.mel_hop_length} at {seq.sample_rate} Hz")
    if model is None:
        return problems
    cfg = model.cfg
    if components.clip.config.width != cfg.clip_dim:
        problems.append(f"CLIP gives {components.clip.config.width}-d features, the network expects {cfg.clip_dim}")
    if synchformer.embed_dim != cfg.synch_dim:
        problems.append(f"Synchformer gives {synchformer.embed_dim}-d features, the network expects {cfg.synch_dim}")
    if components.rawnet3 is not None and components.rawnet3.config.n_out != cfg.speaker_dim:
        problems.append(f"RawNet3 gives {components.rawnet3.config.n_out}-d embeddings, the network expects "
                        f"{cfg.speaker_dim}")
    if components.latent_channels != cfg.latent_channels:
        problems.append(f"the VAE packs {vae.latent_channels} x {voc.model_in_dim // vae.downsample_factor} latent "
                        f"channels, the network generates {cfg.latent_channels}")
    return problems


def check_compatible(components: PipelineComponents, model: VSSFlow | None = None) -> None:
    """Raise :class:`PipelineConfigError` naming every :func:`compatibility_problems`."""
    problems = compatibility_problems(components, model)
    if problems:
        raise PipelineConfigError("the loaded components do not fit together: " + "; ".join(problems))


def _reference_audio(reference: Any, sample_rate: int | None) -> tuple[torch.Tensor | np.ndarray, int]:
    """(waveform, rate) from the forms a speaker reference arrives in."""
    if isinstance(reference, (str, os.PathLike)):
        return read_audio(reference)
    if isinstance(reference, Mapping) and "waveform" in reference:  # ComfyUI AUDIO: [B, C, T], first item used
        return reference["waveform"][0], int(reference["sample_rate"])
    if isinstance(reference, tuple) and len(reference) == 2:
        return reference[0], int(reference[1])
    if sample_rate is None:
        raise ValueError("a speaker reference given as a waveform needs its sample rate")
    return reference, int(sample_rate)
