"""One entry point from "a video" to the frames an encoder expects: :func:`sample_frames`.

The window (``start``, ``duration``) is laid on the source's timeline, one instant every ``1/fps`` s; each instant gets
a source frame by one of the rules in :mod:`.timeline`; only those frames are decoded, and each is made upright and
resized before the next one is decoded, so a long or large video is never held at full resolution.  Instants past the
end of the source become black frames, as in the official extractors, and ``num_real`` says how many are real.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, Sequence

import numpy as np
import torch

from ..config import SEQUENCE
from .readers import as_frame_source
from .timeline import check_rate, select_frames, window_count
from .transform import RESIZE_MODES, normalize_size, output_size, resize_chw

# Input sizes of the frozen encoders (spec 7.1 and 7.2).
CLIP_IMAGE_SIZE = 224
SYNCHFORMER_IMAGE_SIZE = 224

Layout = Literal["NHWC", "NCHW"]


@dataclass
class VideoFrames:
    """Frames sampled at ``fps``, with where they came from."""

    frames: torch.Tensor  # [N, H, W, 3] or [N, 3, H, W]; uint8 0..255 or float32 0..1
    times: np.ndarray  # float64 [N] the sampling instants, seconds from the source's first frame
    source_indices: np.ndarray  # int64 [N] source frame used for each instant, -1 for padding
    source_times: np.ndarray  # float64 [N] that frame's timestamp, NaN for padding
    num_real: int  # frames taken from the source; the rest (at the end) are black padding
    source_fps: float  # the source's average frame rate
    duration: float  # the source's decoded duration, seconds
    fps: float  # the sampling rate
    rule: str  # the sampling rule used ("official", "shown" or "fps_filter")
    backend: str  # "decord", "pyav" or "memory"

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_padded(self) -> int:
        return len(self) - self.num_real

    @property
    def real_mask(self) -> torch.Tensor:
        """``bool [N]``, True for frames taken from the source."""
        return torch.from_numpy(self.source_indices >= 0)


def sample_frames(
    source: Any,
    fps: float,
    size: int | tuple[int, int] | None = None,
    *,
    resize: str = "stretch",
    start: float = 0.0,
    duration: float | None = None,
    rule: str = "auto",
    backend: str = "auto",
    source_fps: float | Fraction | None = None,
    timestamps: Sequence[float] | np.ndarray | None = None,
    layout: Layout = "NHWC",
    dtype: torch.dtype = torch.uint8,
    check_truncation: bool = True,
) -> VideoFrames:
    """Sample ``source`` at ``fps`` over ``[start, start + duration)``.

    source
        A video path, a ComfyUI VIDEO / VideoComponents, a frame batch ``[F, H, W, C]`` (float 0..1 or uint8, with
        ``source_fps`` or per-frame ``timestamps``), or an open :class:`~.source.FrameSource`.
    size, resize
        ``(W, H)`` or an int for square; ``"stretch"`` (CLIP: no crop, aspect not kept) or ``"short_side_center_crop"``
        (Synchformer).  ``None`` keeps the upright source size.
    duration
        Seconds; ``None`` runs to the end of the source (no padding).  With a duration the result always has
        ``int(duration * fps)`` frames, black past the end of the source.
    rule
        ``"auto"`` (official index rule for constant-rate sources, the frame shown at each instant otherwise),
        ``"official"``, ``"shown"`` or ``"fps_filter"``; see :mod:`.timeline`.
    backend
        For paths: ``"auto"`` (decord, then PyAV), ``"decord"`` or ``"pyav"``.
    """
    fps = check_rate(fps)
    if layout not in ("NHWC", "NCHW"):
        raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
    if dtype not in (torch.uint8, torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise ValueError(f"dtype must be torch.uint8 or a float type, got {dtype}")
    if duration is not None and (not math.isfinite(duration) or duration < 0):
        raise ValueError(f"duration must be a non-negative number of seconds or None, got {duration!r}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
    out_size = normalize_size(size)

    src, owned = as_frame_source(
        source, fps=source_fps, timestamps=timestamps, backend=backend, check_truncation=check_truncation
    )
    try:
        count = None if duration is None else window_count(duration, fps)
        indices, instants, used = select_frames(
            src.timestamps, src.end_time, fps, source_fps=src.average_fps, start=start, count=count, rule=rule
        )
        out_h, out_w = output_size(src.height, src.width, out_size)
        # Channels first while filling: see transform.resize_chw.  Zeros are the official black padding.
        frames = torch.zeros((indices.size, 3, out_h, out_w), dtype=torch.uint8)
        # A source frame may serve several instants (upsampling): decode and resize it once, copy it to each.
        slots: dict[int, list[int]] = {}
        for slot, index in enumerate(indices.tolist()):
            if index >= 0:
                slots.setdefault(index, []).append(slot)
        for index, frame in src.iter_frames(slots):
            small = resize_chw(frame.permute(2, 0, 1), out_size, resize)
            if small.shape != frames.shape[1:]:  # only without a target size, if the picture size changes mid-stream
                small = resize_chw(small, (out_w, out_h), "stretch")
            for slot in slots[index]:
                frames[slot] = small
        valid = indices >= 0
        source_times = np.full(indices.size, np.nan)
        source_times[valid] = src.timestamps[indices[valid]]
        result = VideoFrames(
            frames=_finish(frames, layout, dtype),
            times=instants,
            source_indices=indices,
            source_times=source_times,
            num_real=int(valid.sum()),
            source_fps=float(src.average_fps),
            duration=float(src.end_time),
            fps=fps,
            rule=used,
            backend=src.backend,
        )
    finally:
        if owned:
            src.close()
    return result


def _finish(frames: torch.Tensor, layout: str, dtype: torch.dtype) -> torch.Tensor:
    """``uint8 [N, 3, H, W]`` -> the requested layout and type."""
    if layout == "NHWC":
        frames = frames.permute(0, 2, 3, 1).contiguous()
    if dtype != torch.uint8:
        frames = frames.to(dtype) / 255.0
    return frames


def clip_frames(
    source: Any, start: float = 0.0, duration: float | None = SEQUENCE.duration_sec, *,
    fps: float = SEQUENCE.clip_fps, **kwargs: Any
) -> VideoFrames:
    """CLIP input frames: ``fps`` (the sequence configuration's ``clip_fps``, 10 fps) over the 10 s window, 224x224
    stretched (no crop), black padding past the end, official index rule for constant-rate video (spec 7.1)."""
    kwargs.setdefault("size", CLIP_IMAGE_SIZE)
    kwargs.setdefault("resize", "stretch")
    return sample_frames(source, fps, start=start, duration=duration, **kwargs)


def synchformer_frames(
    source: Any, start: float = 0.0, duration: float | None = SEQUENCE.duration_sec, *,
    fps: float = SEQUENCE.synch_fps, **kwargs: Any
) -> VideoFrames:
    """Synchformer input frames: ``fps`` (the sequence configuration's ``synch_fps``, 25 fps) over the 10 s window,
    short side 224 then centre crop 224, zero padding past the end (spec 7.2).

    The official extractor decodes through FFmpeg's ``fps=25`` filter, so that filter's selection is the default rule;
    on 25 fps sources it is the identity.
    """
    kwargs.setdefault("size", SYNCHFORMER_IMAGE_SIZE)
    kwargs.setdefault("resize", "short_side_center_crop")
    kwargs.setdefault("rule", "fps_filter")
    return sample_frames(source, fps, start=start, duration=duration, **kwargs)
