"""Video in, encoder-ready frames out: decoding, timing, sampling and resizing for the CLIP and Synchformer branches.

Entry points: :func:`sample_frames` (any rate, window and size), :func:`clip_frames` and :func:`synchformer_frames`
(the official presets); :func:`open_video` for a reader; :class:`InMemoryVideo` for frames that are already decoded.
"""

from .errors import (
    CorruptVideoError,
    EmptyVideoError,
    InvalidFrameRateError,
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    VideoBackendError,
    VideoError,
    VideoNotFoundError,
)
from .inputs import ResolvedVideo, preview_frames, resolve_video_input, video_file_of
from .memory import InMemoryVideo, from_components
from .readers import as_frame_source, open_video
from .sampling import (
    CLIP_IMAGE_SIZE,
    SYNCHFORMER_IMAGE_SIZE,
    VideoFrames,
    clip_frames,
    sample_frames,
    synchformer_frames,
)
from .source import FrameSource
from .timeline import select_frames

__all__ = [
    "CLIP_IMAGE_SIZE",
    "SYNCHFORMER_IMAGE_SIZE",
    "CorruptVideoError",
    "EmptyVideoError",
    "FrameSource",
    "InMemoryVideo",
    "InvalidFrameRateError",
    "NoVideoStreamError",
    "NotAVideoError",
    "ResolvedVideo",
    "TruncatedVideoError",
    "VideoBackendError",
    "VideoError",
    "VideoFrames",
    "VideoNotFoundError",
    "as_frame_source",
    "clip_frames",
    "from_components",
    "open_video",
    "preview_frames",
    "resolve_video_input",
    "sample_frames",
    "select_frames",
    "synchformer_frames",
    "video_file_of",
]
