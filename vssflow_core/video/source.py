"""The small interface every frame source offers: where its frames are in time, and upright frames on request.

Readers (decord, PyAV) and in-memory frames all subclass :class:`FrameSource`, so the sampler never needs to know
where frames come from.
"""

from __future__ import annotations

import abc
from typing import Iterable, Iterator

import numpy as np
import torch

from ..progress import check_interrupted
from .timeline import is_constant_rate
from .transform import upright


class FrameSource(abc.ABC):
    """A sequence of frames with presentation timestamps.

    Subclasses fill in the attributes in ``__init__`` and implement :meth:`_decode`.
    """

    name: str  # the file path or a description, for messages
    backend: str  # "decord", "pyav" or "memory"
    timestamps: np.ndarray  # float64 [F] seconds, presentation order, first frame at 0
    end_time: float  # when the last frame stops being shown (the decoded duration), seconds
    average_fps: float  # the container's average frame rate (the official index rule's ``raw_fps``)
    rotation: int  # display rotation, degrees counter-clockwise, applied by :meth:`iter_frames`
    width: int  # upright frame size
    height: int

    @property
    def num_frames(self) -> int:
        return int(self.timestamps.size)

    @property
    def duration(self) -> float:
        return self.end_time

    @property
    def constant_rate(self) -> bool:
        return is_constant_rate(self.timestamps, self.average_fps)

    @abc.abstractmethod
    def _decode(self, indices: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(index, uint8 [H, W, 3])`` as stored (not rotated) for each of the sorted, unique ``indices``."""

    def iter_frames(self, indices: Iterable[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """Upright ``uint8 [H, W, 3]`` frames for the given indices, one at a time, in increasing index order.

        Frames are produced lazily so a caller can shrink each one before the next is decoded.
        """
        wanted = sorted({int(i) for i in indices if 0 <= int(i) < self.num_frames})
        if not wanted:
            return
        for index, frame in self._decode(wanted):
            check_interrupted()  # per frame: every reader decodes through here
            yield index, upright(frame, self.rotation)

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing to release
        """Release decoder resources (no-op by default)."""

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, frames={self.num_frames}, fps={self.average_fps:.4g}, "
            f"duration={self.end_time:.3f}s, size={self.width}x{self.height}, rotation={self.rotation})"
        )


def rgb_uint8(array: np.ndarray) -> torch.Tensor:
    """A decoded ``[H, W, C]`` numpy picture as a ``uint8 [H, W, 3]`` tensor (alpha dropped, grey expanded)."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if t.ndim == 2:
        t = t.unsqueeze(-1)
    if t.shape[-1] == 1:
        t = t.expand(-1, -1, 3)
    return t[..., :3].contiguous()
