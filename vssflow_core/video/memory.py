"""Frames already in memory (a ComfyUI IMAGE batch, a ComfyUI VIDEO's components) as a :class:`FrameSource`.

Users who bring video from other nodes get the same frames as from the file: the same timeline, the same sampling
rules, the same ``uint8`` rounding before resizing (ComfyUI images are decoded ``uint8 / 255``, so ``x * 255`` rounds
back to the decoder's exact values).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .errors import InvalidFrameRateError, VideoError
from .source import FrameSource
from .timeline import check_rate


def _as_frames(frames: Any) -> torch.Tensor:
    t = frames if isinstance(frames, torch.Tensor) else torch.as_tensor(np.asarray(frames))
    if t.ndim == 3:  # a single picture
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise ValueError(f"frames must be [F, H, W, C] (ComfyUI IMAGE layout), got shape {tuple(t.shape)}")
    if t.shape[-1] not in (1, 3, 4) and t.shape[1] in (1, 3, 4):
        t = t.permute(0, 2, 3, 1)  # [F, C, H, W] given: move channels last
    if t.shape[-1] not in (1, 3, 4):
        raise ValueError(f"frames must have 1, 3 or 4 channels last, got shape {tuple(t.shape)}")
    return t


def _check_finite(frames: torch.Tensor, name: str) -> None:
    """Refuse NaN or infinite pixels (a failed upstream node) before any work; frame by frame, so a long batch is
    never copied whole."""
    if not frames.is_floating_point():
        return
    bad = [i for i in range(frames.shape[0]) if not bool(torch.isfinite(frames[i]).all())]
    if bad:
        raise VideoError(
            f"{name}: {len(bad)} of {frames.shape[0]} frames hold NaN or infinite values (first: frame {bad[0]}), so "
            f"they show no picture. The node that made them failed; fix its inputs or settings, or connect other "
            f"frames (values 0..1)."
        )


class InMemoryVideo(FrameSource):
    """``frames`` ``[F, H, W, C]`` (float 0..1 or uint8) placed in time by ``fps`` or by explicit ``timestamps``.

    With ``fps`` frame ``k`` is at ``k / fps`` (constant rate, so ``auto`` sampling uses the official index rule).
    With ``timestamps`` (seconds, one per frame, increasing) the frames keep their own timing; ``fps`` then only names
    the nominal rate and defaults to the average the timestamps imply.
    """

    backend = "memory"

    def __init__(
        self,
        frames: Any,
        fps: float | Fraction | None = None,
        *,
        timestamps: Sequence[float] | np.ndarray | None = None,
        name: str = "in-memory frames",
    ) -> None:
        self._frames = _as_frames(frames)
        self.name = name
        n = self._frames.shape[0]
        if n == 0:
            raise VideoError(f"{name}: the frame batch is empty; connect a node that outputs at least one frame.")
        _check_finite(self._frames, name)
        if timestamps is None:
            if fps is None:
                raise InvalidFrameRateError(
                    f"{name}: a frame rate is needed to place the frames in time; pass fps (e.g. the frame_rate of "
                    f"the VIDEO or the fps output of the loader node)."
                )
            rate = check_rate(fps, f"{name}: frame rate")
            self.timestamps = np.arange(n, dtype=np.float64) / rate
            self.average_fps = rate
            self.end_time = n / rate
        else:
            ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
            if ts.size != n:
                raise ValueError(f"{name}: {ts.size} timestamps given for {n} frames; give one per frame.")
            if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
                raise ValueError(f"{name}: timestamps must be finite and strictly increasing (seconds).")
            self.timestamps = ts - ts[0]
            if fps is not None:
                rate = check_rate(fps, f"{name}: frame rate")
            elif n >= 2:
                rate = (n - 1) / float(self.timestamps[-1])
            else:
                raise InvalidFrameRateError(f"{name}: one frame with a timestamp gives no frame rate; pass fps too.")
            self.average_fps = rate
            # The last frame lasts as long as the one before it (or one nominal period for a single frame).
            last = float(np.diff(self.timestamps)[-1]) if n >= 2 else 1.0 / rate
            self.end_time = float(self.timestamps[-1] + last)
        self.rotation = 0
        self.height, self.width = int(self._frames.shape[1]), int(self._frames.shape[2])

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
        for i in indices:
            frame = self._frames[i]
            if frame.dtype != torch.uint8:
                # Round to the 8-bit values a decoder would have produced, as the official code works on uint8.
                frame = (frame.detach().to(torch.float32) * 255.0).round_().clamp_(0, 255).to(torch.uint8)
            if frame.shape[-1] == 1:
                frame = frame.expand(-1, -1, 3)
            yield i, frame[..., :3].cpu().contiguous()


def from_components(obj: Any, name: str = "ComfyUI VIDEO") -> InMemoryVideo:
    """A ComfyUI ``VIDEO`` (anything with ``get_components()``) or ``VideoComponents`` (``images`` + ``frame_rate``)."""
    comps = obj.get_components() if hasattr(obj, "get_components") else obj
    images = getattr(comps, "images", None)
    rate = getattr(comps, "frame_rate", None)
    if images is None:
        raise TypeError(f"{type(obj).__name__} has no images; expected a ComfyUI VIDEO or VideoComponents")
    return InMemoryVideo(images, fps=rate, name=name)
