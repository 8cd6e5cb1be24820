"""Videos of any length: where the 10 s generation windows go, how a window continues the one before it, and how
their audio is joined into one track of exactly the video's duration.

* :func:`check_duration` accepts any finite, positive duration up to the configured maximum
  (:class:`VideoTooLongError` above it, with the way to raise the limit).
* :func:`plan_windows` lays windows of ``SequenceConfig.duration_sec`` over the video: one window for a clip that fits
  (padded past its end, as the official code pads), else evenly spaced windows that overlap by at least
  ``WindowConfig.overlap_sec`` and start on ``WindowConfig.grid_sec``.  Everything time-dependent (CLIP and
  Synchformer frames, phoneme ids, lip features, noise) is cut per window from the video's own timeline, so speech
  that crosses a window boundary is split where it falls.
* Seam strategy ``"continue"``: while window ``k`` is sampled, the frames it shares with window ``k - 1`` are held on
  the straight CondOT path from their noise to the latent already generated (:class:`KnownFrames`), so the rest of
  the window is generated as a continuation of it; the audio is then crossfaded linearly over a short stretch in the
  middle of the overlap, away from both windows' edges.  Strategy ``"crossfade"``: windows are sampled on their own
  and crossfaded with equal power over ``overlap_sec`` in the middle of the overlap.  ``bench/seams.py`` measures
  both.
* :class:`AudioJoiner` adds each decoded window into the output as soon as it exists, so only one window's audio is
  ever held besides the output itself.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .config import SEQUENCE, WINDOWS, SequenceConfig, WindowConfig
from .flow.edit import HeldFrames, HeldVelocity

__all__ = [
    "SEAMS",
    "AudioJoiner",
    "ContinuedVelocity",
    "KnownFrames",
    "VideoTooLongError",
    "WindowPlan",
    "check_duration",
    "plan_windows",
    "window_plan",
    "window_progress",
    "window_seed",
]

SEAMS = ("continue", "crossfade")
# Window k > 0 draws its noise from seed + k * this (mod 2**64): far from the seeds seed + i of the batch items, and
# window 0 keeps exactly the noise of a single-window generation.
_SEED_STRIDE = 0x9E37_79B9_7F4A_7C15


class VideoTooLongError(ValueError):
    """The video is longer than the configured maximum length."""


def check_duration(duration: float, windows: WindowConfig = WINDOWS, max_duration: float | None = None) -> float:
    """``duration`` as a float when it can be generated; ``max_duration`` (seconds, None: ``windows``' limit,
    ``math.inf``: none) bounds it."""
    limit = windows.max_duration_sec if max_duration is None else float(max_duration)
    if not math.isfinite(duration) or duration <= 0:
        raise ValueError(f"the video has no usable duration ({duration} s); it needs at least one frame with a frame "
                         "rate")
    if not limit > 0:  # also catches NaN
        raise ValueError(f"the maximum video length must be a positive number of seconds, got {max_duration}")
    if duration > limit:
        minutes = f" ({limit / 60:g} min)" if limit >= 60 else ""
        raise VideoTooLongError(
            f"the video is {duration:.2f} s long, longer than the maximum of {limit:g} s{minutes} set for generation; "
            f"trim the video, or raise the limit (--max-duration on the command line, max_duration on the "
            f"VideoLoader node, max_duration= in Python)"
        )
    return float(duration)


def window_plan(duration: float, sequence: SequenceConfig = SEQUENCE, windows: WindowConfig = WINDOWS,
                max_duration: float | None = None) -> "WindowPlan":
    """The plan for a video of ``duration`` seconds once it is known, after :func:`check_duration` (``max_duration``
    as there): what every later stage takes instead of the duration."""
    return plan_windows(check_duration(duration, windows, max_duration), sequence, windows)


# --------------------------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowPlan:
    """Where the generation windows of one video lie, and how their audio is joined."""

    duration: float  # seconds of video = seconds of audio out
    starts: tuple[float, ...]  # seconds, one per window, on the grid
    sequence: SequenceConfig = SEQUENCE
    windows: WindowConfig = WINDOWS

    @property
    def count(self) -> int:
        return len(self.starts)

    @property
    def window_sec(self) -> float:
        return self.sequence.duration_sec

    @property
    def timeline(self) -> SequenceConfig:
        """The time axis every window lies on: from 0 to the end of the last window."""
        return dataclasses.replace(self.sequence, duration_sec=self.starts[-1] + self.window_sec)

    @property
    def samples(self) -> int:
        """Waveform samples of the output (exactly the video's duration)."""
        return round(self.duration * self.sequence.sample_rate)

    def start_frame(self, k: int) -> int:
        """Latent frame of the timeline where window ``k`` starts."""
        return round(self.starts[k] * self.sequence.latent_rate)

    def overlap_frames(self, k: int) -> int:
        """Latent frames window ``k`` shares with window ``k - 1`` (0 for the first)."""
        if k == 0:
            return 0
        return self.start_frame(k - 1) + self.sequence.latent_length - self.start_frame(k)

    def window_slice(self, track: torch.Tensor, k: int, dim: int = 0) -> torch.Tensor:
        """Window ``k``'s frames of a per-latent-frame track on :attr:`timeline` (phoneme ids, lip features)."""
        start = self.start_frame(k)
        return track.narrow(dim, start, self.sequence.latent_length)

    def fade(self, k: int) -> tuple[int, int]:
        """``(first sample, length)`` of the crossfade between windows ``k - 1`` and ``k``, on the output."""
        rate = self.sequence.sample_rate
        overlap_start, overlap_end = self.starts[k], self.starts[k - 1] + self.window_sec
        # In the middle of the overlap, away from both windows' edges.  No longer than the planned overlap: windows
        # are at least half a hop apart, so consecutive fades never meet, whatever the actual overlap.
        length = self.windows.overlap_sec if self.windows.seam == "crossfade" else self.windows.continue_fade_sec
        middle = 0.5 * (overlap_start + overlap_end)
        half = 0.5 * min(length, overlap_end - overlap_start)
        start, end = middle - half, middle + half
        first = round(start * rate)
        return first, max(1, round(end * rate) - first)

    def weights(self, k: int) -> torch.Tensor:
        """How much of window ``k``'s waveform goes into the output, sample by sample over the window: 0 before its
        fade-in and after its fade-out; fade-in plus fade-out is 1 (linear) or their squares are (equal power)."""
        rate = self.sequence.sample_rate
        origin = round(self.starts[k] * rate)
        weights = torch.ones(round(self.window_sec * rate))
        ramp_in, ramp_out = _ramps(self.windows.seam)
        if k > 0:
            first, length = self.fade(k)
            first -= origin
            x = (torch.arange(length, dtype=torch.float64) + 0.5) / length
            weights[:first] = 0
            weights[first:first + length] = ramp_in(x).float()
        if k + 1 < self.count:
            first, length = self.fade(k + 1)
            first -= origin
            x = (torch.arange(length, dtype=torch.float64) + 0.5) / length
            weights[first:first + length] *= ramp_out(x).float()
            weights[first + length:] = 0
        return weights


def _ramps(seam: str) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    if seam == "crossfade":  # independent windows: their powers add, so keep the power constant
        return (lambda x: torch.sin(0.5 * math.pi * x)), (lambda x: torch.cos(0.5 * math.pi * x))
    return (lambda x: x), (lambda x: 1 - x)  # near-identical signals: keep the amplitude constant


def _check_windows(sequence: SequenceConfig, windows: WindowConfig) -> None:
    if windows.seam not in SEAMS:
        raise ValueError(f"unknown seam strategy {windows.seam!r}; choose one of {', '.join(SEAMS)}")
    if not 0 < windows.overlap_sec < sequence.duration_sec - windows.grid_sec:
        raise ValueError(f"the window overlap must be between 0 and {sequence.duration_sec - windows.grid_sec:g} s, "
                         f"got {windows.overlap_sec}")
    for rate, what in ((sequence.clip_fps, "CLIP frame"), (sequence.latent_rate, "latent frame"),
                       (sequence.sample_rate, "sample")):
        if abs(windows.grid_sec * rate - round(windows.grid_sec * rate)) > 1e-6:
            raise ValueError(f"the window grid of {windows.grid_sec} s is not a whole number of {what}s")
    if windows.continue_fade_sec <= 0:
        raise ValueError(f"the continuation crossfade must be positive, got {windows.continue_fade_sec} s")


def plan_windows(duration: float, sequence: SequenceConfig = SEQUENCE, windows: WindowConfig = WINDOWS) -> WindowPlan:
    """The windows for a video of ``duration`` seconds (checked against nothing but the window arithmetic: call
    :func:`check_duration` first for the maximum length)."""
    _check_windows(sequence, windows)
    if not math.isfinite(duration) or duration <= 0:
        raise ValueError(f"the video has no usable duration ({duration} s)")
    window, grid = sequence.duration_sec, windows.grid_sec
    if duration <= window + windows.tolerance_sec:
        return WindowPlan(float(duration), (0.0,), sequence, windows)
    # In grid steps: the last window starts where it still covers the end (give or take a millisecond of timestamp
    # rounding, left silent); consecutive starts are at most `hop` apart.
    last = math.ceil((duration - window - 1e-3) / grid)
    hop = math.floor((window - windows.overlap_sec) / grid + 1e-9)
    gaps = math.ceil(last / hop)
    starts = tuple(round((k * last // gaps) * grid, 6) for k in range(gaps + 1))
    return WindowPlan(float(duration), starts, sequence, windows)


# --------------------------------------------------------------------------------------------------------------------
# Sampling a window as the continuation of the previous one
# --------------------------------------------------------------------------------------------------------------------


class KnownFrames(HeldFrames):
    """The leading frames of a window's latent that the previous window already generated, held on the flow path
    (the general case, any frames held to any latent, is :class:`~vssflow_core.flow.edit.HeldFrames`)."""

    @classmethod
    def from_previous(cls, previous: torch.Tensor, plan: WindowPlan, k: int) -> "KnownFrames":
        """The frames window ``k`` shares with the previous window's latent ``[B, C, L]``."""
        overlap = plan.overlap_frames(k)
        held = HeldFrames.leading(previous[..., previous.shape[-1] - overlap:], previous.shape[-1])
        return cls(held.latent, held.keep)


ContinuedVelocity = HeldVelocity  # its former name: the continuation is inpainting of the leading frames


def window_seed(seed: int, k: int) -> int:
    """The noise seed of window ``k`` (window 0 keeps ``seed``)."""
    return (int(seed) + k * _SEED_STRIDE) % 2**64


def window_progress(callback: Callable[[Any], None] | None, k: int, count: int, steps_before: int,
                    evaluations_before: int) -> Callable[[Any], None] | None:
    """A sampler callback for window ``k`` of ``count`` that reports progress over all windows: steps and evaluations
    run on from the windows before, and ``t`` covers ``[k / count, (k + 1) / count]``."""
    if callback is None or count == 1:
        return callback

    def report(progress: Any) -> None:
        total = None if progress.total_steps is None else progress.total_steps * count
        callback(dataclasses.replace(progress, step=steps_before + progress.step, total_steps=total,
                                     t=(k + progress.t) / count,
                                     evaluations=evaluations_before + progress.evaluations))

    return report


# --------------------------------------------------------------------------------------------------------------------
# Joining the audio
# --------------------------------------------------------------------------------------------------------------------


class AudioJoiner:
    """The output waveform ``[B, plan.samples]``, built window by window: each decoded window is weighted by
    :meth:`WindowPlan.weights` and added where it starts; past the last window's end (a clip a few milliseconds
    longer than one window) the output is silence."""

    def __init__(self, plan: WindowPlan, batch_size: int):
        self.plan = plan
        self.waveform = torch.zeros(batch_size, plan.samples)
        self.added: set[int] = set()

    def add(self, k: int, waveform: torch.Tensor) -> None:
        """Window ``k``'s decoded waveform ``[B, samples]`` (at least one window long; the rest is ignored)."""
        plan = self.plan
        weights = plan.weights(k)
        origin = round(plan.starts[k] * plan.sequence.sample_rate)
        length = max(0, min(weights.numel(), plan.samples - origin))
        if waveform.shape[-1] < length:
            raise ValueError(f"window {k} has {waveform.shape[-1]} samples, fewer than the {length} it covers")
        self.waveform[:, origin:origin + length] += waveform[:, :length].float().cpu() * weights[:length]
        self.added.add(k)

    def result(self) -> torch.Tensor:
        missing = sorted(set(range(self.plan.count)) - self.added)
        if missing:
            raise RuntimeError(f"windows {missing} were never added")
        return self.waveform
