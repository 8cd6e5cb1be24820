"""The tracks that are written: one gain for every file, the kept original ducked under the speech lines.

The WAV holds the generated track; the video's track is that same generated track, mixed over the video's own sound
when it is kept.  Both pass through one gain (:func:`~vssflow_core.media.loudness.delivery_gain`): measured on what
the video plays (the mix, or the generated track alone), bounded so that neither file's true peak exceeds the
ceiling, and applied, sample for sample in time, to both.  The user's ``generated_gain`` likewise applies to both
files (it used to lower only the video's track).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .loudness import Delivery, DeliveryReport, Ducking, delivery_gain, ducking_gain, true_peak

__all__ = ["DeliveredTracks", "prepare_tracks"]


@dataclass(frozen=True)
class DeliveredTracks:
    generated: np.ndarray  # float32 [1, samples] at ``sample_rate``: the WAV, and the video's track without a mix
    sample_rate: int
    mix: np.ndarray | None  # float32 [channels, samples] at ``mix_rate``: the video's track when the original is kept
    mix_rate: int
    report: DeliveryReport

    @property
    def video_track(self) -> tuple[np.ndarray, int]:
        """What goes into the video: the mix when there is one, else the generated track."""
        return (self.mix, self.mix_rate) if self.mix is not None else (self.generated, self.sample_rate)


def _resample(x: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    if rate == new_rate:
        return x
    from ..codec.resample import resample

    return resample(torch.from_numpy(np.ascontiguousarray(x)).double(), rate, new_rate).float().numpy()


def _fit(x: np.ndarray, samples: int) -> np.ndarray:
    if x.shape[-1] >= samples:
        return x[..., :samples]
    return np.pad(x, ((0, 0), (0, samples - x.shape[-1])))


def _gain_at(gain: np.ndarray, rate: int, samples: int, new_rate: int) -> np.ndarray:
    """The gain read at another rate's sample times (it is smooth: linear interpolation is exact enough)."""
    if rate == new_rate and gain.size == samples:
        return gain
    t_new = (np.arange(samples) + 0.5) / new_rate
    t = (np.arange(gain.size) + 0.5) / rate
    return np.interp(t_new, t, gain).astype(np.float32)


def prepare_tracks(generated, sample_rate: int, *, delivery: Delivery = Delivery(),
                   original: tuple[np.ndarray, int] | None = None, original_gain: float = 1.0,
                   generated_gain: float = 1.0, lines: Sequence[tuple[float, float]] = (),
                   ducking: Ducking | None = None) -> DeliveredTracks:
    """The delivered tracks for a generated waveform ``[samples]`` (or ``[1, samples]``).

    ``original``: the video's own sound ``([channels, samples], rate)`` to keep under the generation (it is mixed
    at its own rate, so its bandwidth is kept), lowered by ``ducking`` over the speech ``lines`` (seconds).
    """
    for name, value in (("original_gain", original_gain), ("generated_gain", generated_gain)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
    if hasattr(generated, "detach"):
        generated = generated.detach().cpu().float().numpy()
    gen = np.asarray(generated, dtype=np.float32).reshape(1, -1) * np.float32(generated_gain)
    if original is None:
        gain, report = delivery_gain(gen, sample_rate, delivery)
        return DeliveredTracks(gen * gain, sample_rate, None, sample_rate, report)

    kept, rate = original
    kept = np.asarray(kept, dtype=np.float32)
    samples = kept.shape[-1]
    gen_at_mix = _fit(_resample(gen, sample_rate, rate), samples)
    gen_at_mix = np.repeat(gen_at_mix, kept.shape[0], axis=0)
    under = np.float32(original_gain) * kept
    if ducking is not None and lines:
        under = under * ducking_gain(lines, samples, rate, ducking)
    mix = gen_at_mix + under
    gain, report = delivery_gain(mix, rate, delivery, also=[gen_at_mix])
    wav = gen * _gain_at(gain, rate, gen.shape[-1], sample_rate)
    mix = mix * gain
    # the gain read at the WAV's rate may let an inter-sample peak of the WAV a hair over: trim both alike
    highest = true_peak(wav, sample_rate)
    if highest > delivery.ceiling:
        trim = np.float32(delivery.ceiling / highest)
        wav, mix = wav * trim, mix * trim
    return DeliveredTracks(wav.astype(np.float32), sample_rate, mix.astype(np.float32), rate, report)
