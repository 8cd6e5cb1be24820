"""Why a video could not be used, as exception types a node can catch and a user can act on.

Every message names the file, says what is wrong with it and what to do about it, because the person reading it is
usually looking at a ComfyUI error popup, not at a traceback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# First bytes of containers that carry video.  A file that starts like one of these but cannot be opened is a damaged
# video (typically an interrupted download), not "some other kind of file"; the advice differs.
_CONTAINER_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/MOV"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (8, b"AVI ", "AVI"),
    (0, b"FLV", "FLV"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMV"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"OggS", "Ogg"),
)


class VideoError(Exception):
    """Base class: the video at ``path`` cannot be turned into frames."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


class VideoNotFoundError(VideoError, FileNotFoundError):
    """No file at the given path (also a ``FileNotFoundError``, so generic handlers keep working)."""


class EmptyVideoError(VideoError):
    """The file exists but has zero bytes (an upload or copy that never finished)."""


class NotAVideoError(VideoError):
    """The file is not in a format FFmpeg recognises as a media container."""


class NoVideoStreamError(NotAVideoError):
    """A media file without a video stream (an audio file, a subtitle file...)."""


class CorruptVideoError(VideoError):
    """The file looks like a video container but its data cannot be read or decoded."""


class TruncatedVideoError(CorruptVideoError):
    """Far fewer frames can be read than the file declares: the end of the file is missing."""


class InvalidFrameRateError(VideoError, ValueError):
    """A frame rate of zero, negative, or not a number, where one is needed to place frames in time."""


class VideoBackendError(VideoError):
    """A decoding library is missing or cannot handle this particular file."""


def container_kind(path: str | os.PathLike) -> str | None:
    """Name of the video container the file's first bytes announce, or ``None`` if they announce none."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    for offset, magic, name in _CONTAINER_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    # MPEG transport streams have no magic word, only a sync byte every 188 bytes.
    if head[:1] == b"\x47":
        try:
            with open(path, "rb") as fh:
                fh.seek(188)
                if fh.read(1) == b"\x47":
                    return "MPEG-TS"
        except OSError:
            pass
    return None


def still_image_format(format_name: str) -> bool:
    """True for FFmpeg demuxers of single pictures (``png_pipe``, ``jpeg_pipe``, ``image2``...): FFmpeg opens a
    picture as a one-frame "video", which would get 40 ms of sound."""
    return any(name.endswith("_pipe") or name == "image2" for name in format_name.split(","))


def still_image_error(path: str | os.PathLike, format_name: str) -> "NotAVideoError":
    kind = format_name.split(",")[0].removesuffix("_pipe").upper()
    return NotAVideoError(
        f"{path}: a still picture ({kind}), not a video, whatever its name says. Add sound to a video: turn the "
        f"picture into one first (e.g. `ffmpeg -loop 1 -i picture.png -t 5 -r 25 -pix_fmt yuv420p still.mp4`), or "
        f"connect it as an IMAGE batch with a frame rate.",
        path,
    )


def _special_file_kind(mode: int) -> str | None:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if not stat.S_ISREG(mode):
        return "a socket or another special file"
    return None


def check_video_file(path: str | os.PathLike) -> Path:
    """Fail early, with a precise reason, for the cases that need no decoder to diagnose."""
    p = Path(path).expanduser()
    if not p.exists():
        raise VideoNotFoundError(
            f"{p}: no such file. Check the path (relative paths are resolved from {Path.cwd()}), "
            f"or copy the video into ComfyUI's input folder and pick it from the list.",
            p,
        )
    if p.is_dir():
        raise NotAVideoError(f"{p}: is a folder, not a video file. Point to one video file inside it.", p)
    mode = p.stat().st_mode
    special = _special_file_kind(mode)
    if special is not None:
        # Reading a FIFO waits for a writer and a device never ends: say what it is before a decoder tries.
        raise NotAVideoError(f"{p}: is {special}, not a video file. Save the video to a regular file and choose that.", p)
    if p.stat().st_size == 0:
        with p.open("rb") as fh:
            if fh.read(1):
                raise NotAVideoError(
                    f"{p}: reports a size of 0 bytes but has content: a virtual file (such as /proc or /sys), "
                    f"not a video file. Choose a video file.", p)
        raise EmptyVideoError(
            f"{p}: the file is empty (0 bytes), so there is nothing to decode. "
            f"The upload or copy probably failed; copy the video again.",
            p,
        )
    return p


def _reason(cause: BaseException) -> str:
    # FFmpeg errors repeat the file name; the message already starts with it.
    return str(getattr(cause, "strerror", None) or cause).strip() or type(cause).__name__


def open_failure(path: str | os.PathLike, cause: BaseException) -> VideoError:
    """Turn a decoder's refusal to open ``path`` into the most specific :class:`VideoError`."""
    kind = container_kind(path)
    if kind is not None:
        return CorruptVideoError(
            f"{path}: looks like a video file ({kind}) but cannot be read ({_reason(cause)}). It is probably "
            f"truncated or damaged (an interrupted download or copy; in an MP4 the index, the 'moov' box, may be "
            f"missing). Download or export it again.",
            path,
        )
    return NotAVideoError(
        f"{path}: not a video file FFmpeg can read ({_reason(cause)}). Use a video such as .mp4, .mov, .mkv, .webm "
        f"or .avi.",
        path,
    )
