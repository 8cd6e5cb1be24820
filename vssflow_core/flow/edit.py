"""Editing instead of regenerating: new audio only inside time ranges of an existing track (flow inpainting), and
generation that starts from an existing track (audio-to-audio).

Both work on the encoded input: the track, cut per generation window and encoded by the codec to a latent.

* **Held frames** (:class:`HeldFrames`, :class:`HeldVelocity`).  Latent frames outside the ranges are held on the
  CondOT probability path to the encoded input, ``x_t = (1 - t) * noise + t * known``, at every solver stage: their
  velocity is replaced by the path's constant velocity ``known - noise``, which every solver integrates exactly
  (a Runge-Kutta step integrates a constant exactly; dopri5's error estimate there is zero), so the held frames are
  on the path at every time whatever the solver, and the guided field generates the rest to fit them.  The window
  seams of long videos are the same thing: a window's leading frames are held to the previous window's latent
  (:class:`vssflow_core.windows.KnownFrames` is a :class:`HeldFrames`); with a range to regenerate both hold at
  once (:meth:`HeldFrames.merged`).
* **Strength** (:func:`start_state`).  The flow starts at ``t0 = 1 - strength`` from the path point of the encoded
  input, ``(1 - t0) * noise + t0 * latent``, with the seeded noise.  Strength 1 starts from the noise itself at
  t = 0 (a fresh generation with the same seed, bit for bit); strength 0 is the encoded input, decoded as the codec
  reproduces it.
* **The waveform** (:meth:`AudioEdit.compose`).  Outside the ranges the output *is* the input track, sample for
  sample; inside, the decoded generation, brought back to the input's level (the codec peak-normalises what it
  encodes) and crossfaded linearly over ``crossfade_sec`` just inside each range's edges.

Ranges are checked before anything is loaded (:func:`check_ranges`): reversed, outside the clip, not a number, or
shorter than their crossfades, each gets an error naming the range and what to do.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import torch

from ..config import SEQUENCE, SequenceConfig

if TYPE_CHECKING:
    from ..windows import WindowPlan

__all__ = [
    "DEFAULT_CROSSFADE_SEC",
    "AudioEdit",
    "HeldFrames",
    "HeldVelocity",
    "TimeRange",
    "WindowEdit",
    "check_ranges",
    "parse_ranges",
    "start_state",
]

DEFAULT_CROSSFADE_SEC = 0.03  # a few tens of ms: long enough not to click, short enough to keep the edit tight
RANGE_TOLERANCE_SEC = 1e-3  # a range may end this far past the clip's end (timestamp rounding)
SILENT_PEAK = 1e-3  # -60 dBFS: a window this quiet has no level to match; its generation keeps the model's level


# --------------------------------------------------------------------------------------------------------------------
# Time ranges
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    start: float  # seconds
    end: float

    def __str__(self) -> str:
        return f"{self.start:g}-{self.end:g} s"


_RANGE = re.compile(r"^\s*([^\s,]+?)\s*(?:-|–|:|\.\.|to)\s*([^\s,]+)\s*$")


def parse_ranges(ranges: str | Sequence[Any] | None) -> tuple[TimeRange, ...]:
    """Ranges from what a user types: ``"2.0-3.5"``, ``"2-3.5, 5-6"`` (or ``;`` / new lines between them), a list
    of such strings, or ``(start, end)`` pairs.  Only the syntax is checked here; :func:`check_ranges` checks them
    against the clip."""
    if ranges is None:
        return ()
    if isinstance(ranges, str):
        items: list[Any] = [part for part in re.split(r"[,;\n]", ranges) if part.strip()]
    else:
        items = list(ranges)
    parsed = []
    for item in items:
        if isinstance(item, TimeRange):
            parsed.append(item)
            continue
        if isinstance(item, str):
            match = _RANGE.match(item)
            if not match:
                raise ValueError(f"cannot read the time range {item.strip()!r}; write START-END in seconds, e.g. "
                                 "2.0-3.5 (several: 2-3.5,5-6)")
            first, second = match.groups()
        else:
            try:
                first, second = item
            except (TypeError, ValueError):
                raise ValueError(f"a time range is a START-END string or a (start, end) pair, got {item!r}") from None
        try:
            start, end = float(first), float(second)
        except (TypeError, ValueError):
            raise ValueError(f"the time range {first}-{second} holds something that is not a number of seconds") \
                from None
        parsed.append(TimeRange(start, end))
    return tuple(parsed)


def check_ranges(ranges: Iterable[TimeRange], duration: float,
                 crossfade_sec: float = DEFAULT_CROSSFADE_SEC) -> tuple[TimeRange, ...]:
    """The ranges sorted, overlapping ones merged, each end cut to the clip; ``ValueError`` naming the range for
    one that is not a number, reversed or empty, outside the clip, or shorter than its crossfades."""
    checked = []
    for r in ranges:
        if not (math.isfinite(r.start) and math.isfinite(r.end)):
            raise ValueError(f"the time range {r} is not a pair of finite numbers of seconds; write START-END, e.g. "
                             "2.0-3.5")
        if r.end <= r.start:
            raise ValueError(f"the time range {r} ends before it starts; write START-END with START < END")
        if r.start < 0 or r.start >= duration or r.end > duration + RANGE_TOLERANCE_SEC:
            raise ValueError(f"the time range {r} lies outside the clip (0-{duration:.2f} s); give a range inside it")
        checked.append(TimeRange(float(r.start), min(float(r.end), duration)))
    checked.sort(key=lambda r: r.start)
    merged: list[TimeRange] = []
    for r in checked:
        if merged and r.start <= merged[-1].end:
            merged[-1] = TimeRange(merged[-1].start, max(merged[-1].end, r.end))
        else:
            merged.append(r)
    for r in merged:
        fades = (r.start > 0) + (r.end < duration)
        if r.end - r.start < fades * crossfade_sec:
            raise ValueError(f"the time range {r} is shorter than its crossfades ({fades} x {crossfade_sec * 1000:g} "
                             "ms); widen the range or shorten the crossfade")
    return tuple(merged)


# --------------------------------------------------------------------------------------------------------------------
# Held frames: inpainting along the flow path
# --------------------------------------------------------------------------------------------------------------------


class HeldVelocity:
    """A velocity field whose held frames move at the constant velocity ``known - noise`` of the CondOT path.

    Started on the path (at ``noise`` for t = 0, at :func:`start_state` otherwise), those frames stay on it at every
    solver stage and end on ``known`` at t = 1; the network sees them at every step and generates the other frames
    to fit them.  ``known`` is ``[B or 1, C, frames]``; ``keep`` a boolean ``[L]`` of the held frames (None: the
    first ``frames`` frames, the continuation of a previous window).
    """

    def __init__(self, velocity: Any, noise: torch.Tensor, known: torch.Tensor, keep: torch.Tensor | None = None):
        self.velocity = velocity
        length, self.channels = noise.shape[-1], known.shape[1]
        if keep is None:
            keep = torch.arange(length, device=noise.device) < known.shape[-1]
            known = torch.nn.functional.pad(known, (0, length - known.shape[-1]))
        self.keep = keep.to(device=noise.device, dtype=torch.bool).view(1, 1, length)
        target = known.to(noise) - noise[:, :self.channels]
        self.target = torch.where(self.keep, target, torch.zeros_like(target)).contiguous()

    @property
    def evaluations(self) -> int:
        return self.velocity.evaluations

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        v = self.velocity(t, x)
        v[:, :self.channels] = torch.where(self.keep, self.target, v[:, :self.channels])
        return v


@dataclass
class HeldFrames:
    """Latent frames of one window held on the flow path: values ``[B or 1, C, L]`` (only the kept frames are
    read) and the boolean ``keep`` ``[L]``."""

    latent: torch.Tensor
    keep: torch.Tensor

    @classmethod
    def leading(cls, frames: torch.Tensor, length: int) -> "HeldFrames":
        """The first ``frames.shape[-1]`` frames of a window of ``length`` (a continued window's shared frames)."""
        keep = torch.arange(length) < frames.shape[-1]
        return cls(torch.nn.functional.pad(frames, (0, length - frames.shape[-1])), keep)

    def merged(self, other: "HeldFrames | None") -> "HeldFrames":
        """Both sets held; where both hold a frame, this one's value wins."""
        if other is None:
            return self
        keep = self.keep.to(other.keep.device) | other.keep
        mine = self.keep.to(other.latent.device).view(1, 1, -1)
        latent = torch.where(mine, self.latent.to(other.latent), other.latent)
        return HeldFrames(latent, keep)

    def constrain(self, velocity: Any, noise: torch.Tensor) -> HeldVelocity:
        return HeldVelocity(velocity, noise, self.latent, self.keep)


def start_state(noise: torch.Tensor, latent: torch.Tensor | None, strength: float,
                held: HeldFrames | None = None) -> tuple[torch.Tensor, float]:
    """``(x_t0, t0)``: where the flow starts for ``strength`` in [0, 1].

    ``t0 = 1 - strength``; the state is the path point ``(1 - t0) * noise + t0 * data`` of the encoded input
    ``latent`` (``[B or 1, C, L]``), and of the held frames' own values where they are held.  Strength 1 returns
    ``noise`` itself at t = 0.
    """
    if strength >= 1.0 or latent is None:
        return noise, 0.0
    t0 = 1.0 - float(strength)
    data = latent.to(noise).expand_as(noise)
    if held is not None:
        data = torch.where(held.keep.to(noise.device).view(1, 1, -1), held.latent.to(noise).expand_as(noise), data)
    return (1 - t0) * noise + t0 * data, t0


# --------------------------------------------------------------------------------------------------------------------
# The edit of one track
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class WindowEdit:
    """What the sampler of one window needs: the encoded input, the frames held to it and where the flow starts."""

    latent: torch.Tensor  # [1, C, L] the encoded input of this window
    held: HeldFrames | None  # the frames outside the ranges (None: regenerate the whole window)
    strength: float
    scale: float  # the input's level over the codec's: generated audio times this matches the kept audio

    def start(self, noise: torch.Tensor, held: HeldFrames | None) -> tuple[torch.Tensor, float]:
        """See :func:`start_state`; ``held`` is every frame held (this edit's merged with a continuation)."""
        return start_state(noise, self.latent, self.strength, held)


@dataclass(frozen=True)
class AudioEdit:
    """An existing track to edit: regenerate only ``ranges`` (none: the whole clip), starting the flow at
    ``1 - strength`` from the track (1: from noise alone)."""

    audio: torch.Tensor  # [samples] mono float32 at the model's rate, exactly the clip's length
    ranges: tuple[TimeRange, ...] = ()
    strength: float = 1.0
    crossfade_sec: float = DEFAULT_CROSSFADE_SEC
    sequence: SequenceConfig = SEQUENCE
    # False: the ranges are generated knowing nothing of the track around them and only crossfaded in (the baseline
    # that bench/range_edges.py compares inpainting with)
    held: bool = True

    @classmethod
    def prepare(cls, audio: Any, duration: float, *, sample_rate: int | None = None,
                ranges: str | Sequence[Any] | None = None, strength: float = 1.0,
                crossfade_sec: float = DEFAULT_CROSSFADE_SEC, sequence: SequenceConfig = SEQUENCE,
                held: bool = True) -> "AudioEdit":
        """Check everything and bring the track to the clip: ``audio`` is a path (any audio file, or a video's own
        sound), a ``(waveform, rate)`` pair, a ComfyUI AUDIO dict, or a waveform with ``sample_rate``; channels are
        averaged, the rate converted, and the track cut or padded with silence to ``duration`` seconds."""
        strength, crossfade_sec = float(strength), float(crossfade_sec)
        if not 0.0 <= strength <= 1.0:  # also refuses NaN
            raise ValueError(f"strength must be between 0 (keep the input) and 1 (generate afresh), got {strength}")
        if not (math.isfinite(crossfade_sec) and 0 <= crossfade_sec <= 1.0):
            raise ValueError(f"the crossfade must be between 0 and 1000 ms, got {crossfade_sec * 1000:g} ms")
        checked = check_ranges(parse_ranges(ranges), duration, crossfade_sec)
        waveform = _mono_at_rate(audio, sample_rate, sequence.sample_rate)
        samples = round(duration * sequence.sample_rate)
        waveform = torch.nn.functional.pad(waveform[:samples], (0, max(0, samples - waveform.shape[-1])))
        return cls(waveform.float().contiguous(), checked, strength, crossfade_sec, sequence, held)

    @property
    def samples(self) -> int:
        return self.audio.shape[-1]

    def generated_weight(self) -> torch.Tensor:
        """How much of the generation goes into each output sample ``[samples]``: 1 inside the ranges, 0 outside,
        linear ramps of ``crossfade_sec`` just inside each range edge (none at the clip's own ends)."""
        if not self.ranges:
            return torch.ones(self.samples)
        rate = self.sequence.sample_rate
        t = (torch.arange(self.samples, dtype=torch.float64) + 0.5) / rate
        weight = torch.zeros(self.samples, dtype=torch.float64)
        fade = self.crossfade_sec
        for r in self.ranges:
            inside = (t >= r.start) & (t < r.end)
            w = torch.ones_like(t)
            if fade > 0 and r.start > 0:
                w = torch.minimum(w, (t - r.start) / fade)
            if fade > 0 and r.end < self.samples / rate:
                w = torch.minimum(w, (r.end - t) / fade)
            weight = torch.where(inside, w.clamp(0, 1), weight)
        return weight.float()

    def keep_frames(self, plan: "WindowPlan", k: int) -> torch.Tensor | None:
        """Boolean ``[L]``: the latent frames of window ``k`` that touch no range and lie inside the clip (held to the
        input); None when the whole clip is regenerated."""
        if not self.ranges or not self.held:
            return None
        seq = plan.sequence
        first = plan.starts[k] + torch.arange(seq.latent_length, dtype=torch.float64) / seq.latent_rate
        last = first + 1 / seq.latent_rate
        keep = last <= plan.duration + 1e-9
        for r in self.ranges:
            keep &= (last <= r.start) | (first >= r.end)
        return keep

    def window_audio(self, plan: "WindowPlan", k: int) -> torch.Tensor:
        """The track's samples of window ``k`` ``[window samples]``, silence past the clip's end."""
        rate = plan.sequence.sample_rate
        origin, length = round(plan.starts[k] * rate), plan.sequence.num_samples
        piece = self.audio[origin:origin + length]
        return torch.nn.functional.pad(piece, (0, length - piece.shape[-1]))

    def window(self, components: Any, plan: "WindowPlan", k: int) -> WindowEdit:
        """Encode window ``k`` of the track with ``components``' codec (a :class:`PipelineComponents`)."""
        waveform = self.window_audio(plan, k)
        latent = components.encode_audio(waveform[None])[0]  # the posterior's mean, as training encodes
        keep = self.keep_frames(plan, k)
        held = None if keep is None else HeldFrames(latent, keep)
        return WindowEdit(latent, held, self.strength, self.level(components.vae, plan, k))

    def level(self, codec: Any, plan: "WindowPlan", k: int) -> float:
        """The factor that brings window ``k``'s decoded generation to the track's level: the codec encodes the
        track peak-normalised, so its generation comes out at the codec's peak.  Only a range edit matches levels
        (the kept track is heard next to it); audio-to-audio keeps the model's level at every strength."""
        if not self.ranges:
            return 1.0
        waveform = self.window_audio(plan, k)
        peak = float((waveform - waveform.mean()).abs().max())
        from ..components import codec_mel_config

        codec_peak = codec_mel_config(codec).peak_amplitude  # what the front-end scales peaks to
        return peak / codec_peak if peak > SILENT_PEAK else 1.0

    def compose(self, generated: torch.Tensor) -> torch.Tensor:
        """The output ``[B, samples]``: the track where nothing is regenerated (exactly), the generation inside
        the ranges, crossfaded at their edges."""
        if not self.ranges:
            return generated
        weight = self.generated_weight()
        kept = self.audio.to(generated).expand_as(generated)
        mixed = kept * (1 - weight) + generated * weight
        return torch.where(weight > 0, mixed, kept)


def _mono_at_rate(audio: Any, sample_rate: int | None, rate: int) -> torch.Tensor:
    """``[samples]`` float32 on the CPU at ``rate``, from the forms a track arrives in."""
    if isinstance(audio, (str, os.PathLike)):
        from ..media.audio_io import read_audio

        waveform, sample_rate = read_audio(audio)
    elif isinstance(audio, Mapping) and "waveform" in audio:  # ComfyUI AUDIO: [B, C, T], the first item
        waveform, sample_rate = audio["waveform"][0], int(audio["sample_rate"])
    elif isinstance(audio, tuple) and len(audio) == 2:
        waveform, sample_rate = audio[0], int(audio[1])
    else:
        waveform = audio
        if sample_rate is None:
            raise ValueError("a track given as a waveform needs its sample rate")
    x = torch.as_tensor(waveform).detach().float().cpu()
    if x.ndim == 2:
        x = x.mean(dim=0) if x.shape[0] <= x.shape[1] else x.mean(dim=1)
    if x.ndim != 1 or x.numel() == 0:
        raise ValueError(f"the track to edit must be a non-empty waveform [samples] or [channels, samples], got "
                         f"shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("the track to edit holds NaN or infinite samples")
    if int(sample_rate) != rate:
        from ..codec.resample import resample

        x = resample(x.double(), int(sample_rate), rate).float()
    return x
