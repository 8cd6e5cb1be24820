"""Which source frame goes with each instant of a resampled frame sequence.

Pure index arithmetic (numpy only): no decoding happens here, so every rule can be tested exhaustively.

Times are seconds measured from the first frame of the source (its timestamp is 0).  Three rules exist because the
official VSSFlow pipeline uses two different ones and variable-frame-rate video needs a time-based one:

``official``
    ``round(start*src_fps + i*src_fps/fps)``, the CLIP extractor's index rule (``feature/extract_clip.py``:
    ``round(i*raw_fps/10)`` with Python's round-half-to-even) on frame *indices*.  Exact for constant-rate video only:
    it assumes frame ``k`` is at ``k/src_fps``.  For frame rates that are multiples of the target rate it picks the
    frame shown at each instant; otherwise it picks the nearest frame, which may be one frame later than the one shown.
``shown``
    The frame on screen at each instant: the last frame whose timestamp is ``<= t``.  Correct for any frame timing,
    including variable frame rate.
``fps_filter``
    What FFmpeg's ``fps`` filter outputs (the Synchformer extractor decodes through torio with ``frame_rate=25``, which
    inserts that filter): output ``k`` is the last frame whose timestamp is ``< t_k + 0.5/fps`` (timestamps are rounded
    to the output grid, ties away from zero), and output ``k`` exists while ``t_k + 0.5/fps <= end``.

``auto`` picks ``official`` for constant-rate sources and ``shown`` otherwise.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np

Rule = Literal["auto", "official", "shown", "fps_filter"]
RULES: tuple[str, ...] = ("auto", "official", "shown", "fps_filter")

# Slack for comparing float timestamps: decord returns float32 seconds (about 1 us resolution at 10 s) and container
# time bases do not divide 1/10 s evenly.  10 us is far below any real frame period (1 ms even at 1000 fps).
TIME_EPS = 1e-5

# A source counts as constant-rate when every frame interval is within this fraction of the nominal period; container
# time bases quantise intervals by far less (1/15360 s against 1/30 s), while a real rate change is a large step.
CFR_TOLERANCE = 0.1


def check_rate(fps: float, what: str = "target frame rate") -> float:
    """``fps`` as a float, or ``InvalidFrameRateError`` when it cannot place frames in time."""
    from .errors import InvalidFrameRateError

    try:
        value = float(fps)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise InvalidFrameRateError(f"{what} {fps!r} is not a number; give frames per second, e.g. 25.") from exc
    if not math.isfinite(value) or value <= 0:
        raise InvalidFrameRateError(f"{what} is {fps!r}; it must be a positive number of frames per second, e.g. 25.")
    return value


def window_count(duration: float, fps: float) -> int:
    """Frames in a window of ``duration`` seconds at ``fps`` (the official ``int(duration * rate)``)."""
    # The epsilon keeps 0.3*10 = 2.9999999999999996 from losing a frame.
    return max(0, int(math.floor(duration * fps + 1e-9)))


def target_instants(fps: float, start: float, count: int) -> np.ndarray:
    """``start + i/fps`` for ``i < count``, in seconds."""
    return start + np.arange(count, dtype=np.float64) / fps


def is_constant_rate(timestamps: np.ndarray, fps: float) -> bool:
    """True when frame ``k`` sits at ``k/fps`` for every frame, to within :data:`CFR_TOLERANCE` of a period."""
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.size < 2:
        return True
    period = 1.0 / fps
    return bool(np.all(np.abs(np.diff(ts) - period) <= CFR_TOLERANCE * period)) and bool(
        abs(ts[-1] - ts[0] - (ts.size - 1) * period) <= max(CFR_TOLERANCE * period, 1e-3 * ts[-1])
    )


def official_indices(num_frames: int, source_fps: float, fps: float, count: int, start: float = 0.0) -> np.ndarray:
    """The CLIP extractor's index rule; ``-1`` where the index falls past the last frame (the official code drops those
    and pads with black frames at the end)."""
    # 0.0 for start=0, and x + 0.0 == x exactly, so the values below are bit-identical to the official expression.
    offset = start * source_fps
    # Python's round (half to even) on the very expression the official code evaluates, so that ties resolve
    # identically (25 fps source at 10 fps: 2.5 -> 2 but 7.5 -> 8).
    idx = np.array([round(offset + i * source_fps / fps) for i in range(count)], dtype=np.int64)
    idx[(idx < 0) | (idx >= num_frames)] = -1
    return idx


def shown_indices(timestamps: np.ndarray, end: float, instants: np.ndarray) -> np.ndarray:
    """Last frame with timestamp ``<= t`` for each instant; ``-1`` at or after ``end`` (the source has ended)."""
    ts = np.asarray(timestamps, dtype=np.float64)
    idx = np.searchsorted(ts, instants + TIME_EPS, side="right").astype(np.int64) - 1
    idx[(instants >= end - TIME_EPS) | (instants < -TIME_EPS)] = -1
    return idx


def fps_filter_indices(timestamps: np.ndarray, end: float, instants: np.ndarray, fps: float) -> np.ndarray:
    """FFmpeg ``fps`` filter selection (see module docstring); ``-1`` past its end-of-stream cut-off."""
    ts = np.asarray(timestamps, dtype=np.float64)
    cut = instants + 0.5 / fps
    idx = np.searchsorted(ts, cut - TIME_EPS, side="left").astype(np.int64) - 1
    idx[(cut > end + TIME_EPS) | (instants < -TIME_EPS)] = -1
    idx[idx < 0] = -1
    return idx


def resolve_rule(rule: str, constant_rate: bool) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown sampling rule {rule!r}; choose one of {', '.join(RULES)}")
    if rule == "auto":
        return "official" if constant_rate else "shown"
    return rule


def select_frames(
    timestamps: Sequence[float] | np.ndarray,
    end: float,
    fps: float,
    *,
    source_fps: float,
    start: float = 0.0,
    count: int | None = None,
    rule: str = "auto",
) -> tuple[np.ndarray, np.ndarray, str]:
    """Source frame index for each target instant.

    Returns ``(indices, instants, rule_used)``; ``indices[i] == -1`` where instant ``i`` is past the end of the source.
    ``count=None`` covers the source from ``start`` to its end (no padding needed).
    """
    fps = check_rate(fps)
    source_fps = check_rate(source_fps, "source frame rate")
    if start < 0 or not math.isfinite(start):
        raise ValueError(f"start must be a non-negative number of seconds, got {start!r}")
    ts = np.asarray(timestamps, dtype=np.float64)
    used = resolve_rule(rule, is_constant_rate(ts, source_fps))

    def pick(n: int) -> tuple[np.ndarray, np.ndarray]:
        instants = target_instants(fps, start, n)
        if used == "official":
            return official_indices(ts.size, source_fps, fps, n, start), instants
        if used == "shown":
            return shown_indices(ts, end, instants), instants
        return fps_filter_indices(ts, end, instants, fps), instants

    if count is not None:
        idx, instants = pick(count)
        return idx, instants, used
    # Whole remaining source: take a generous upper bound, then cut at the first instant past the end (each rule's
    # valid instants form a prefix because the chosen index never decreases).
    upper = max(0, math.ceil((end - start) * fps)) + 2
    idx, instants = pick(upper)
    real = int(np.argmax(idx < 0)) if np.any(idx < 0) else upper
    return idx[:real], instants[:real], used
