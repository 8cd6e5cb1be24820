"""Measurements on synthetic clips: sound onsets, onset F1 against the ground truth, mouth opening read off the
pictures, and the speech loudness envelope — what the held-out evaluation compares, and what the tests use to check
that the written files say what the manifest says."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .scenes import loudness_envelope

__all__ = ["audio_onsets", "decode_clip", "loudness_envelope", "mouth_opening", "onset_f1", "pearson"]


def audio_onsets(audio: np.ndarray, rate: int, hop: float = 0.005, window: float = 0.02, rise_db: float = 12.0,
                 floor_db: float = 30.0, min_separation: float = 0.08) -> np.ndarray:
    """Onset times (seconds) of a mono waveform: where the short-time level jumps by ``rise_db`` over the quietest of
    the previous 30 ms, within ``floor_db`` of the loudest frame; onsets closer than ``min_separation`` merge."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    h, w = max(1, int(hop * rate)), max(1, int(window * rate))
    if x.size < w:
        return np.zeros(0)
    starts = np.arange(0, x.size - w + 1, h)
    level = np.array([10 * np.log10(np.mean(x[s:s + w] ** 2) + 1e-12) for s in starts])
    look = max(1, int(round(0.03 / hop)))
    onsets: list[float] = []
    top = level.max()
    for i in range(1, len(level)):
        before = level[max(0, i - look):i].min()
        if level[i] - before >= rise_db and level[i] >= top - floor_db:
            t = (starts[i] + w) / rate - window / 2  # where the new sound entered the window, roughly
            if not onsets or t - onsets[-1] >= min_separation:
                onsets.append(t)
    return np.asarray(onsets)


def onset_f1(detected: Sequence[float], reference: Sequence[float], tolerance: float = 0.1) -> dict[str, float]:
    """Precision, recall and F1 of onsets matched one-to-one within ``tolerance`` seconds (greedy, nearest first)."""
    det, ref = sorted(float(t) for t in detected), sorted(float(t) for t in reference)
    pairs = sorted((abs(d - r), i, j) for i, d in enumerate(det) for j, r in enumerate(ref) if abs(d - r) <= tolerance)
    used_d, used_r = set(), set()
    for _, i, j in pairs:
        if i not in used_d and j not in used_r:
            used_d.add(i)
            used_r.add(j)
    hits = len(used_d)
    precision = hits / len(det) if det else (1.0 if not ref else 0.0)
    recall = hits / len(ref) if ref else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "matched": hits}


def mouth_opening(frames: np.ndarray, box: Sequence[float], color: Sequence[int],
                  tolerance: float = 40.0) -> np.ndarray:
    """Pixels of the mouth's colour inside ``box`` (x0, y0, x1, y1) in every frame ``[F, H, W, 3]``."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    region = frames[:, max(0, y0):y1, max(0, x0):x1].astype(np.float32)
    distance = np.linalg.norm(region - np.asarray(color, dtype=np.float32), axis=-1)
    return (distance < tolerance).sum(axis=(1, 2)).astype(np.float64)


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def decode_clip(path) -> tuple[np.ndarray, np.ndarray, int]:
    """Every picture (uint8 ``[F, H, W, 3]``), the mono soundtrack and its rate of a video file."""
    import av

    from ..media.audio_io import read_audio

    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    audio, rate = read_audio(path)
    return frames, audio.mean(axis=0), rate
