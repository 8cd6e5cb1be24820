"""What the generation stages hand on: visual features window by window, sampling progress, sampled latents and the
generated audio."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .flow.settings import SamplingStats
from .windows import WindowPlan

__all__ = ["GeneratedAudio", "ProgressCallback", "SampledLatent", "SamplingProgress", "VisualFeatures"]


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
    stats: SamplingStats  # over all windows
    plan: WindowPlan | None = None  # the windows of a windowed latent


@dataclass
class GeneratedAudio:
    waveform: torch.Tensor  # [B, samples] float32 on the CPU, in [-1, 1]
    sample_rate: int
    duration: float
    stats: SamplingStats  # over all windows

    def take(self, number: int) -> "GeneratedAudio":
        """Take ``number`` (1 to the batch size) alone, with its own seed: generated alone from that seed it comes out
        the same (dopri5 adapts its steps to the whole batch, so there within its tolerance)."""
        count = self.waveform.shape[0]
        if not 1 <= int(number) <= count:
            raise ValueError(f"there is no take {number}: this run made {count} take(s), numbered 1 to {count}")
        i = int(number) - 1
        stats = dataclasses.replace(self.stats, seeds=tuple(self.stats.seeds[i:i + 1]))
        return dataclasses.replace(self, waveform=self.waveform[i:i + 1], stats=stats)

    def as_comfy_audio(self) -> dict[str, Any]:
        """ComfyUI's AUDIO value: ``{"waveform": [B, channels=1, samples], "sample_rate": int}``."""
        return {"waveform": self.waveform.unsqueeze(1), "sample_rate": self.sample_rate}
