"""Per-line measures of generated speech against its cues: where each line's speech starts and stops, how loud the
pauses are, and whether the loudness follows the mouth inside the lines.

* **onset / offset error** (ms): the generated level (RMS in 20 ms windows every 10 ms) is searched around each cue,
  from half the pause before it to half the pause after it (at most :data:`SEARCH_SEC` beyond the cue); the onset is
  the first time it stays above the clip's speech level minus :data:`THRESHOLD_DB` for 30 ms, the offset the last
  such time.  A line with no such stretch is *missed*.
* **pause level** (dB): mean power in the pauses between lines against the mean power inside the lines, each pause
  shrunk by :data:`MARGIN_SEC` at both ends (a released word is not a leak); **outside level**: the same over all
  frames outside the lines (before the first and after the last too), what a speech-only generation must keep low.
* **loudness vs mouth**: Pearson correlation, per video frame, inside the lines only.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..synthetic.analysis import loudness_envelope, pearson

HOP_SEC = 0.01
WINDOW_SEC = 0.02
THRESHOLD_DB = 20.0  # below the clip's speech level (95th percentile of the level inside the lines)
HOLD_SEC = 0.03
SEARCH_SEC = 0.5
MARGIN_SEC = 0.1


def level_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """Short-time level in dB, one value per :data:`HOP_SEC`, window centred on ``k * HOP_SEC``."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    hop, half = int(HOP_SEC * rate), int(WINDOW_SEC * rate / 2)
    centres = np.arange(0, x.size, hop)
    power = np.array([np.mean(x[max(0, c - half): c + half] ** 2) for c in centres])
    return 10 * np.log10(power + 1e-12)


def _mask(times: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    mask = np.zeros(times.shape, dtype=bool)
    for a, b in spans:
        if b > a:
            mask |= (times >= a) & (times < b)
    return mask


def _power_db(level: np.ndarray, mask: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(10 ** (level[mask] / 10)) + 1e-12)) if mask.any() else float("nan")


def line_scores(audio: np.ndarray, rate: int, lines: Sequence[tuple[float, float]], duration: float,
                mouth: Sequence[float] | None = None, fps: int = 25) -> dict[str, Any]:
    """Every measure of the module docstring for one clip; ``lines`` are the cues ``(start, end)`` in seconds."""
    lines = sorted((float(a), float(b)) for a, b in lines)
    level = level_db(audio, rate)
    times = np.arange(level.shape[0]) * HOP_SEC
    inside = _mask(times, lines)
    reference = float(np.percentile(level[inside], 95)) if inside.any() else float(level.max())
    loud = level >= reference - THRESHOLD_DB
    hold = max(1, int(round(HOLD_SEC / HOP_SEC)))
    sustained = np.array([loud[i:i + hold].all() for i in range(loud.shape[0])])
    onsets, offsets = [], []
    for i, (start, end) in enumerate(lines):
        before = lines[i - 1][1] if i else -np.inf
        after = lines[i + 1][0] if i + 1 < len(lines) else np.inf
        lo = max(0.0, start - SEARCH_SEC, (start + before) / 2)
        hi = min(duration, end + SEARCH_SEC, (end + after) / 2)
        found = np.flatnonzero(sustained & (times >= lo) & (times < hi))
        if found.size:
            onsets.append(1000 * (times[found[0]] - start))
            offsets.append(1000 * (times[found[-1]] + HOLD_SEC - end))
        else:
            onsets.append(float("nan"))
            offsets.append(float("nan"))
    pauses = [(a[1] + MARGIN_SEC, b[0] - MARGIN_SEC) for a, b in zip(lines, lines[1:])]
    outside = [(0.0, lines[0][0] - MARGIN_SEC), *pauses, (lines[-1][1] + MARGIN_SEC, duration)] if lines else []
    speech_db = _power_db(level, inside)
    out: dict[str, Any] = {
        "onset_error_ms": onsets, "offset_error_ms": offsets,
        "missed": int(np.isnan(onsets).sum()),
        "pause_db": _power_db(level, _mask(times, pauses)) - speech_db if pauses else float("nan"),
        "outside_db": _power_db(level, _mask(times, outside)) - speech_db,
    }
    if mouth is not None:
        mouth = np.asarray(mouth, dtype=np.float64)
        envelope = loudness_envelope(np.asarray(audio), rate, fps, mouth.shape[0])
        frames = _mask(np.arange(mouth.shape[0]) / fps, lines)
        out["corr_in_lines"] = pearson(envelope[frames], mouth[frames])
    return out


def summarize(scores: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Medians of the absolute onset and offset errors over all lines, means of the rest over clips."""
    onsets = np.abs([e for s in scores for e in s["onset_error_ms"]], dtype=np.float64)
    offsets = np.abs([e for s in scores for e in s["offset_error_ms"]], dtype=np.float64)
    out = {
        "lines": int(onsets.size),
        "missed_lines": int(sum(s["missed"] for s in scores)),
        "median_onset_error_ms": float(np.nanmedian(onsets)) if np.isfinite(onsets).any() else float("nan"),
        "median_offset_error_ms": float(np.nanmedian(offsets)) if np.isfinite(offsets).any() else float("nan"),
        "pause_db": float(np.nanmean([s["pause_db"] for s in scores])) if any(
            np.isfinite(s["pause_db"]) for s in scores) else float("nan"),
        "outside_db": float(np.nanmean([s["outside_db"] for s in scores])),
    }
    if all("corr_in_lines" in s for s in scores) and scores:
        out["corr_in_lines"] = float(np.mean([s["corr_in_lines"] for s in scores]))
    return out
