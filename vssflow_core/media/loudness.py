"""The delivered level: integrated loudness (ITU-R BS.1770 / EBU R128), true peak, a true-peak limiter, loudness
normalisation to a target, and ducking of a kept track under generated speech.

Measurement comes from maintained libraries, not our own filters: integrated loudness from ``pyloudnorm`` (BS.1770-4
K-weighting and gating), true peak from ``pyebur128`` (the reference libebur128's polyphase 4x oversampling below
96 kHz).  The limiter needs the inter-sample peak of every sample, not one number for the track, so it oversamples
4x with SciPy's polyphase resampler; the final level is then checked with ``pyebur128`` and trimmed if needed.

:func:`delivery_gain` returns one gain per sample.  Applying that one gain to every file written (the WAV and the
mp4's track alike) is what keeps them at the same level: it is computed on the programme that is heard (the mix,
when the video's own sound is kept) and keeps every other signal given under the ceiling too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "DEFAULT_TRUE_PEAK_DB",
    "LOUDNESS_PRESETS",
    "Delivery",
    "DeliveryReport",
    "Ducking",
    "delivery_gain",
    "deliver",
    "ducking_gain",
    "integrated_loudness",
    "loudness_target",
    "true_peak",
    "true_peak_db",
]

LOUDNESS_PRESETS = {"broadcast": -23.0, "streaming": -14.0}  # EBU R128; the common streaming-platform level
DEFAULT_TRUE_PEAK_DB = -1.0  # dBTP: the usual ceiling of both recommendations
LOUDNESS_RANGE = (-70.0, -1.0)  # LUFS a target may take (BS.1770's absolute gate is -70)
MAX_BOOST_DB = 40.0  # a near-silent track is not raised further than this (its noise would become the programme)
OVERSAMPLING = 4  # as libebur128 below 96 kHz
LIMITER_ATTACK_SEC = 0.005  # the gain reaches its value this long before a peak (look-ahead)
LIMITER_HOLD_SEC = 0.05  # and stays there this long after it before recovering over the attack time
LOUDNESS_TOLERANCE_LU = 0.05  # normalisation stops when this close to the target
_BLOCK_SEC = 0.4  # BS.1770 gating block: shorter tracks are measured padded with silence to one block


def _channels_first(waveform) -> np.ndarray:
    """``[samples]`` or ``[channels, samples]`` (numpy or torch) -> float64 ``[channels, samples]``."""
    if hasattr(waveform, "detach"):
        waveform = waveform.detach().cpu().double().numpy()
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"expected a waveform [samples] or [channels, samples], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("the waveform holds NaN or infinite samples; its loudness cannot be measured")
    return x


def integrated_loudness(waveform, sample_rate: int) -> float:
    """Integrated loudness in LUFS (``-inf`` for silence), BS.1770-4 through ``pyloudnorm``."""
    import pyloudnorm

    x = _channels_first(waveform)
    block = math.ceil(_BLOCK_SEC * sample_rate) + 1
    if x.shape[1] < block:
        x = np.pad(x, ((0, 0), (0, block - x.shape[1])))
    with np.errstate(divide="ignore"):
        return float(pyloudnorm.Meter(sample_rate).integrated_loudness(x.T))


def true_peak(waveform, sample_rate: int) -> float:
    """The largest true (inter-sample) peak over all channels, linear (1.0 is 0 dBTP), through ``pyebur128``."""
    import pyebur128

    x = _channels_first(waveform)
    channels = x.shape[0]
    if x.shape[1] == 0:
        return 0.0
    state = pyebur128.R128State(channels, int(sample_rate), pyebur128.MeasurementMode.MODE_TRUE_PEAK)
    state.add_frames(np.ascontiguousarray(x.T).reshape(-1), x.shape[1])
    return max(float(pyebur128.get_true_peak(state, c)) for c in range(channels))


def true_peak_db(waveform, sample_rate: int) -> float:
    peak = true_peak(waveform, sample_rate)
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def loudness_target(value: object) -> float | None:
    """A loudness target from what a user types: ``None`` / ``""`` / ``"off"`` (no normalisation), a preset name
    (``broadcast`` -23 LUFS, ``streaming`` -14 LUFS) or a number of LUFS."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "off", "none"):
            return None
        if text in LOUDNESS_PRESETS:
            return LOUDNESS_PRESETS[text]
        try:
            value = float(text.removesuffix("lufs").strip())
        except ValueError:
            raise ValueError(f"unknown loudness target {value!r}; give a number of LUFS (e.g. -14) or one of "
                             f"{', '.join(LOUDNESS_PRESETS)}, or off") from None
    target = float(value)  # type: ignore[arg-type]
    low, high = LOUDNESS_RANGE
    if not low <= target <= high:  # also refuses NaN
        raise ValueError(f"a loudness target must be between {low:g} and {high:g} LUFS, got {value}")
    return target


@dataclass(frozen=True)
class Delivery:
    """How the delivered track is levelled: an optional integrated-loudness target and a true-peak ceiling that is
    always enforced (the limiter runs by default, so nothing written ever clips)."""

    loudness: float | None = None  # LUFS; None: the level stays as generated (only the limiter acts)
    true_peak_db: float = DEFAULT_TRUE_PEAK_DB  # dBTP ceiling

    def __post_init__(self) -> None:
        object.__setattr__(self, "loudness", loudness_target(self.loudness))
        if not (-20.0 <= self.true_peak_db <= 0.0):
            raise ValueError(f"the true-peak ceiling must be between -20 and 0 dBTP, got {self.true_peak_db}")

    @property
    def ceiling(self) -> float:
        return 10 ** (self.true_peak_db / 20)


@dataclass(frozen=True)
class DeliveryReport:
    loudness_before: float  # LUFS of the programme as it came
    loudness_after: float  # LUFS delivered
    true_peak_after_db: float  # dBTP delivered (the largest over every signal given)
    limited_fraction: float  # share of samples the limiter lowered below the overall gain
    gain_db: float  # the overall (loudness) gain before limiting


def _oversampled_peaks(x: np.ndarray) -> np.ndarray:
    """Per sample, the largest absolute value of the 4x oversampled signal around it, over all channels."""
    from scipy.signal import resample_poly

    if x.shape[1] < 2:
        return np.abs(x).max(axis=0)
    up = np.abs(resample_poly(x, OVERSAMPLING, 1, axis=1))
    samples = x.shape[1]
    up = up[:, :samples * OVERSAMPLING].reshape(x.shape[0], samples, OVERSAMPLING).max(axis=2)
    return np.maximum(up.max(axis=0), np.abs(x).max(axis=0))


def _limiter_envelope(peaks: np.ndarray, ceiling: float, sample_rate: int) -> np.ndarray:
    """The smooth gain (at most 1) that keeps ``gain * peaks`` under ``ceiling`` at every sample.

    The gain needed at each sample is spread by a running minimum over [i - hold, i + attack] and then smoothed by
    a moving average over the attack: every sample of that average window saw the peak, so the gain at a peak is
    never above what it needs, and the gain moves over the attack time instead of jumping (no clicks).
    """
    from scipy.ndimage import minimum_filter1d

    needed = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    if needed.min() >= 1.0:
        return np.ones_like(needed)
    attack = max(1, round(LIMITER_ATTACK_SEC * sample_rate))
    hold = max(1, round(LIMITER_HOLD_SEC * sample_rate))
    size = attack + hold + 1
    # the minimum over [i - hold, i + attack]: a centred filter of that size over the padded gains, read shifted
    spread = minimum_filter1d(np.concatenate([np.ones(hold), needed, np.ones(attack)]), size, mode="nearest")
    held = spread[size // 2:size // 2 + needed.size]
    padded = np.concatenate([np.full(attack - 1, 1.0), held])
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    smooth = (cumulative[attack:] - cumulative[:-attack]) / attack
    return np.minimum(smooth, 1.0)


def delivery_gain(program, sample_rate: int, delivery: Delivery = Delivery(),
                  also: Iterable = ()) -> tuple[np.ndarray, DeliveryReport]:
    """One gain per sample for the delivered audio: brings ``program`` (``[samples]`` or ``[channels, samples]``)
    to ``delivery.loudness`` (when set) and keeps its true peak, and that of every signal in ``also`` (the same
    length: e.g. the generated track alone when the programme is a mix), at or under the ceiling."""
    program = _channels_first(program)
    others = [_channels_first(s) for s in also]
    for other in others:
        if other.shape[1] != program.shape[1]:
            raise ValueError(f"signals of {other.shape[1]} and {program.shape[1]} samples cannot share one gain")
    signals = [program, *others]
    before = integrated_loudness(program, sample_rate)
    peaks = np.max([_oversampled_peaks(s) for s in signals], axis=0)
    # the limiter aims a little under the ceiling: its gain varies, so the interpolated peaks move a hair
    aim = delivery.ceiling * 10 ** (-0.05 / 20)
    overall = 1.0
    if delivery.loudness is not None and math.isfinite(before):
        overall = 10 ** (min(delivery.loudness - before, MAX_BOOST_DB) / 20)
    gain = overall * _limiter_envelope(overall * peaks, aim, sample_rate)
    if delivery.loudness is not None and math.isfinite(before):
        for _ in range(6):  # limiting lowers the loudness: raise the overall gain by what is missing, limit again
            missing = delivery.loudness - integrated_loudness(program * gain, sample_rate)
            if abs(missing) <= LOUDNESS_TOLERANCE_LU or 20 * math.log10(overall) + missing > MAX_BOOST_DB:
                break
            overall *= 10 ** (missing / 20)
            gain = overall * _limiter_envelope(overall * peaks, aim, sample_rate)
    highest = max(true_peak(s * gain, sample_rate) for s in signals)
    if highest > delivery.ceiling:  # what the per-sample estimate missed: one last trim, never over the ceiling
        gain = gain * (delivery.ceiling / highest) * 10 ** (-0.01 / 20)
        highest = max(true_peak(s * gain, sample_rate) for s in signals)
    report = DeliveryReport(
        loudness_before=before,
        loudness_after=integrated_loudness(program * gain, sample_rate),
        true_peak_after_db=20 * math.log10(highest) if highest > 0 else -math.inf,
        limited_fraction=float(np.mean(gain < overall * (1 - 1e-6))),
        gain_db=20 * math.log10(overall),
    )
    return gain.astype(np.float32), report


def deliver(waveform, sample_rate: int, delivery: Delivery = Delivery()) -> tuple[np.ndarray, DeliveryReport]:
    """``waveform`` levelled by :func:`delivery_gain` (same shape as given, float32)."""
    x = _channels_first(waveform)
    gain, report = delivery_gain(x, sample_rate, delivery)
    out = (x * gain).astype(np.float32)
    return (out[0] if np.ndim(waveform) == 1 else out), report


@dataclass(frozen=True)
class Ducking:
    """How far and how fast a kept track is lowered under generated speech."""

    depth_db: float = 12.0  # how much lower the kept track is while a line is spoken
    attack_ms: float = 80.0  # it starts going down this long before a line, and is fully down when the line starts
    release_ms: float = 300.0  # it comes back up over this long after the line ends

    def __post_init__(self) -> None:
        for name in ("depth_db", "attack_ms", "release_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ducking {name.replace('_', ' ')} must be a number of at least 0, got {value}")


def ducking_gain(lines: Sequence[tuple[float, float]], samples: int, sample_rate: int,
                 ducking: Ducking = Ducking()) -> np.ndarray:
    """Gain ``[samples]`` for the kept track: ``-depth_db`` over each line ``(start, end)`` in seconds, 0 dB away
    from them, with ramps linear in dB over the attack before each line and the release after it."""
    t = (np.arange(samples) + 0.5) / sample_rate
    duck_db = np.zeros(samples)
    attack, release = ducking.attack_ms / 1000, ducking.release_ms / 1000
    for start, end in lines:
        start, end = float(start), float(end)
        if not (math.isfinite(start) and math.isfinite(end) and end >= start):
            raise ValueError(f"a speech line must have a finite start before its end, got {start}-{end}")
        depth = np.zeros(samples)
        depth[(t >= start) & (t <= end)] = 1.0
        if attack > 0:
            before = (t > start - attack) & (t < start)
            depth[before] = np.maximum(depth[before], 1 - (start - t[before]) / attack)
        if release > 0:
            after = (t > end) & (t < end + release)
            depth[after] = np.maximum(depth[after], 1 - (t[after] - end) / release)
        duck_db = np.maximum(duck_db, depth * ducking.depth_db)
    return (10 ** (-duck_db / 20)).astype(np.float32)
