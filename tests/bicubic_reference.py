"""An independent reference for the encoders' resize: PIL's separable bicubic resampling (a = -0.5, support widened
by the scale factor when shrinking, weights normalised per output pixel; antialiased torchvision does the same),
written out with numpy as one matrix per axis."""

from __future__ import annotations

import numpy as np


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1, np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def resample_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] weights that resize one axis."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 2.0 * filter_scale
    matrix = np.zeros((out_size, in_size))
    for i in range(out_size):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), in_size)
        taps = np.arange(lo, hi)
        w = _cubic((taps - centre + 0.5) / filter_scale)
        matrix[i, lo:hi] = w / w.sum()
    return matrix
