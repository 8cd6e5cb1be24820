"""What a graph hands over as "the video", resolved to one frame source with its timing.

Three ways in, exactly one at a time: a ComfyUI ``VIDEO`` (LoadVideo, CreateVideo, video generators, other packs),
an ``IMAGE`` batch with its frame rate, or a video file.  The frame rate of an image batch is never guessed: without
one the batch is refused.  A VIDEO backed by an untrimmed file on disk is read from that file, so its real timestamps
are used (variable frame rate stays exact) and its video stream can later be copied packet for packet; any other
VIDEO is read from its components (frames and frame rate).

Nothing here imports ComfyUI: VIDEO objects are recognised by the methods they offer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import SEQUENCE, SequenceConfig
from .errors import InvalidFrameRateError
from .memory import InMemoryVideo, from_components
from .readers import open_video
from .sampling import sample_frames
from .source import FrameSource
from .timeline import check_rate

__all__ = ["ResolvedVideo", "preview_frames", "resolve_video_input", "video_file_of"]


@dataclass(eq=False)
class ResolvedVideo:
    """One video, ready for the encoders: where its frames come from and how they are placed in time."""

    source: Path | FrameSource  # a file (reopened by each reader) or frames in memory
    path: Path | None  # the file on disk holding the video stream, None for frames in memory
    duration: float  # seconds, first frame shown to end of the last frame
    fps: float  # the average frame rate
    num_frames: int
    width: int  # upright picture size
    height: int
    constant_rate: bool
    origin: str  # "file", "VIDEO file", "VIDEO frames" or "images"

    def describe(self) -> str:
        rate = "constant" if self.constant_rate else "variable"
        return (f"{self.num_frames} frames, {self.width}x{self.height}, {self.fps:.3f} fps ({rate} rate), "
                f"{self.duration:.3f} s, from {self.origin}")


def video_file_of(video: Any) -> Path | None:
    """The file a ComfyUI VIDEO is read from when it is an untrimmed file on disk (``VideoFromFile``), else None
    (frames in memory, an in-memory file, or a trimmed view whose frames are not the file's)."""
    get_source = getattr(video, "get_stream_source", None)
    if get_source is None:
        return None
    try:
        source = get_source()
    except Exception:  # an implementation that cannot say: treat it as not file-backed
        return None
    if not isinstance(source, (str, os.PathLike)):
        return None
    trim_window = getattr(video, "get_active_trim_window", None)
    if trim_window is not None:
        start, duration = trim_window()
        if start or duration:
            return None
    path = Path(source)
    return path if path.is_file() else None


def _given(value: Any) -> bool:
    return value is not None


def resolve_video_input(
    video: Any = None,
    images: Any = None,
    frame_rate: float | None = None,
    path: str | os.PathLike | None = None,
    *,
    sequence: SequenceConfig | None = SEQUENCE,
    max_duration: float | None = None,
) -> ResolvedVideo:
    """Resolve exactly one of ``video`` (a ComfyUI VIDEO), ``images`` (``[F, H, W, C]``, with ``frame_rate`` in frames
    per second; 0 or None counts as not given) or ``path``.

    With ``sequence`` (the default) a clip longer than ``max_duration`` seconds (None: the configured maximum) is
    refused here, before anything is encoded (:class:`~vssflow_core.windows.VideoTooLongError`); pass
    ``sequence=None`` to skip that check.
    """
    sources = [name for name, value in (("a VIDEO", video), ("an IMAGE batch", images), ("a file", path))
               if _given(value)]
    if not sources:
        raise ValueError("no video given: connect a VIDEO, or an IMAGE batch together with its frame rate, or choose "
                         "a video file")
    if len(sources) > 1:
        raise ValueError(f"{' and '.join(sources)} were both given as the video; connect only one")

    if images is not None:
        if frame_rate is None or (isinstance(frame_rate, (int, float)) and frame_rate == 0):
            raise InvalidFrameRateError(
                "an IMAGE batch needs its frame rate: set frame_rate to the frames per second of the images (for "
                "example the fps output of Get Video Components); it is never guessed"
            )
        rate = check_rate(frame_rate, "the frame rate of the IMAGE batch")
        source: Path | FrameSource = InMemoryVideo(images, fps=rate, name="the IMAGE batch")
        origin, file = "images", None
    elif video is not None:
        file = video_file_of(video)
        if file is not None:
            source, origin = file, "VIDEO file"
        else:
            source, origin = from_components(video, name="the VIDEO"), "VIDEO frames"
    else:
        file = Path(path).expanduser()  # type: ignore[arg-type]
        source, origin = file, "file"

    if isinstance(source, Path):
        with open_video(source) as reader:
            info = _info(reader)
    else:
        info = _info(source)
    resolved = ResolvedVideo(source=source, path=file, origin=origin, **info)
    if sequence is not None:
        from ..windows import check_duration

        check_duration(resolved.duration, max_duration=max_duration)
    return resolved


def _info(src: FrameSource) -> dict[str, Any]:
    return {"duration": float(src.end_time), "fps": float(src.average_fps), "num_frames": src.num_frames,
            "width": int(src.width), "height": int(src.height), "constant_rate": bool(src.constant_rate)}


# A preview is held in memory as float32: at 256 px, 60 s of it is 0.26 GB, a 10-minute video's would be 2.6 GB.
PREVIEW_MAX_SEC = 60.0


def preview_frames(video: ResolvedVideo, fps: float = SEQUENCE.clip_fps, max_side: int = 256,
                   max_seconds: float = PREVIEW_MAX_SEC) -> torch.Tensor:
    """The frames the CLIP branch looks at (``fps``, by default 10 per second, over the clip, or its first
    ``max_seconds``; no padding) as a ComfyUI IMAGE batch ``float32 [N, H, W, 3]``, shrunk to at most ``max_side``
    pixels with the aspect kept."""
    scale = min(1.0, max_side / max(video.width, video.height))
    size = (max(1, round(video.width * scale)), max(1, round(video.height * scale)))
    duration = None if video.duration <= max_seconds else max_seconds
    return sample_frames(video.source, fps, size, resize="stretch", duration=duration, dtype=torch.float32).frames
