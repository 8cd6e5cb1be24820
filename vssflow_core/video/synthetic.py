"""Tiny test videos whose every frame shows its own index, and the reader for that index.

Used by the tests and handy for checking a pipeline by eye: frame ``k`` is filled with a flat colour whose R, G and B
levels are the base-8 digits of ``k + 1`` (levels 0, 36, ..., 255; black is left for padding).  Flat colours survive
lossy H.264, chroma subsampling, any resize and any crop, so the index can be read back from what an encoder would
see.  An optional corner marker
(the inverse colour, top-left of the upright picture) makes orientation checkable.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

MAX_INDEX = 8**3 - 2  # code 0 (black) is kept for "no frame", so padding never reads as frame 0
_LEVELS = np.round(np.arange(8) * 255 / 7).astype(np.uint8)


def counter_color(index: int) -> np.ndarray:
    """RGB colour (uint8 [3]) encoding ``index`` (0..510) as the base-8 digits of ``index + 1``."""
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"counter index {index} outside 0..{MAX_INDEX}")
    code = index + 1
    return _LEVELS[[(code >> 6) & 7, (code >> 3) & 7, code & 7]]


def counter_picture(index: int, width: int, height: int, marker: bool = False) -> np.ndarray:
    """Upright ``uint8 [H, W, 3]`` picture of frame ``index``."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = counter_color(index)
    if marker:
        img[: max(1, height // 4), : max(1, width // 4)] = 255 - counter_color(index)
    return img


def read_counter(frame: torch.Tensor | np.ndarray) -> int:
    """The index a counter frame shows, -1 for a black (padding) frame.

    ``frame`` is ``[H, W, 3]`` or ``[3, H, W]``, uint8 0..255 or float 0..1.
    """
    a = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    scale = 1.0 if a.dtype == np.uint8 else 255.0
    colour = np.median(a.reshape(-1, 3).astype(np.float64), axis=0) * scale  # the median ignores the corner marker
    digits = np.clip(np.round(colour * 7 / 255), 0, 7).astype(int)
    return int(digits[0] * 64 + digits[1] * 8 + digits[2]) - 1


def make_counter_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | Fraction | None = 25,
    *,
    timestamps: Sequence[float] | None = None,
    width: int = 64,
    height: int = 48,
    rotation: int = 0,
    rotate_tag: int | None = None,
    marker: bool = False,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    keyframe_interval: int | None = None,
) -> str:
    """Write a counter video with PyAV.

    Constant rate: ``num_frames`` frames at ``fps`` (a float such as 29.97 is taken as 30000/1001).  Variable rate:
    ``timestamps`` in seconds (millisecond precision).  ``width``/``height`` are the *upright* picture size; with
    ``rotation`` (degrees counter-clockwise, the display matrix) the picture is stored turned the other way, so a reader
    that honours the display matrix shows it upright again.  ``rotate_tag`` writes the old ``rotate`` tag (degrees
    clockwise, Matroska keeps it) instead, with the picture stored accordingly.  ``keyframe_interval`` (frames) makes
    seeking meaningful in longer test videos.
    """
    import av

    if timestamps is not None:
        num_frames = len(timestamps)
    if num_frames is None or num_frames <= 0:
        raise ValueError("give num_frames > 0 or a list of timestamps")
    if num_frames - 1 > MAX_INDEX:
        raise ValueError(f"at most {MAX_INDEX + 1} frames can carry a counter")
    ccw = rotation if rotate_tag is None else -rotate_tag
    k = (round(ccw / 90) % 4) if ccw else 0
    # Stored picture = upright picture turned clockwise by the display rotation, so that turning it counter-clockwise
    # by that rotation (what players do) restores it.
    stored_w, stored_h = (height, width) if k % 2 else (width, height)
    if pix_fmt is None:
        pix_fmt = "yuv420p" if stored_w % 2 == 0 and stored_h % 2 == 0 else "yuv444p"

    with av.open(str(path), "w") as container:
        if timestamps is None:
            rate = _as_fraction(fps)
            stream = container.add_stream(codec, rate=rate)
        else:
            stream = container.add_stream(codec, rate=30)
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        stream.width, stream.height, stream.pix_fmt = stored_w, stored_h, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "12"}
        if keyframe_interval:
            stream.codec_context.gop_size = keyframe_interval
        if rotation and rotate_tag is None:
            stream.set_display_rotation(rotation)
        if rotate_tag is not None:
            stream.metadata["rotate"] = str(rotate_tag)
        for i in range(num_frames):
            picture = counter_picture(i, width, height, marker)
            if k:
                picture = np.rot90(picture, -k)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            if timestamps is not None:
                frame.pts = int(round(timestamps[i] * 1000))
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def _as_fraction(fps: float | Fraction | None) -> Fraction:
    if fps is None:
        raise ValueError("fps is needed for a constant-rate video")
    if isinstance(fps, Fraction):
        return fps
    for ntsc in (23.976, 29.97, 59.94, 119.88):
        if abs(float(fps) - ntsc) < 1e-3:
            return Fraction(round(ntsc * 1.001) * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)
