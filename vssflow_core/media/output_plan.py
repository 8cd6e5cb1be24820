"""How the output video will be written, decided before anything is generated: the picture copied or re-encoded,
and into which container.

The picture is copied packet for packet whenever the container takes its codec (bit-exact, no quality lost).  When it
does not (ProRes, VP8 or QuickTime RLE into .mp4, VP9 or AV1 into .mov...), the picture is re-encoded as H.264, which
every container here takes, and the plan carries a note saying so and which container would have kept it unchanged.
An output name without a suffix keeps the source's container when it can hold the copy.

Whether a container takes a codec is asked of FFmpeg itself: a header is written to memory with the same streams the
real write uses (the copied picture and an AAC track), so the answer is the one the real write would give.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..video.errors import NoVideoStreamError, check_video_file, open_failure
from ..video.pyav_reader import open_input

__all__ = ["CONTAINER_FORMATS", "OutputPlan", "copy_refusal", "plan_output"]

# output suffix -> FFmpeg muxer.  All of them take AAC and H.264 (the re-encoding codec); which copied codecs each takes
# is asked of FFmpeg (copy_refusal).
CONTAINER_FORMATS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# The container a suffix-less output gets when the source's own is not one of ours (Matroska for WebM: WebM itself
# takes no AAC), then the most widely played ones.
_FAMILY = {"matroska": ".mkv", "webm": ".mkv", "mov": ".mov", "mp4": ".mp4"}
_PREFERRED = (".mp4", ".mkv", ".mov")


@dataclass(frozen=True)
class OutputPlan:
    """Where and how the output video is written."""

    path: Path  # the output file (its suffix chosen from the source when none was given)
    container: str  # the FFmpeg muxer
    codec: str  # the source's video codec ("h264", "prores", "av1"...)
    reencode: bool  # the picture is re-encoded as H.264 because the container cannot hold the source's codec
    note: str | None = None  # what the user should be told (re-encoding, the chosen container)


def _video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        raise NoVideoStreamError(f"{path}: has no video stream to put the audio on (is it an audio file?)", path)
    return container.streams.video[0]


def copy_refusal(stream: Any, container: str) -> str | None:
    """Why the FFmpeg muxer ``container`` cannot hold ``stream`` copied packet for packet, or None when it can."""
    import av

    try:
        with av.open(io.BytesIO(), "w", format=container) as out:
            # opaque: the source's own codec description; a decode-only codec (libdav1d for AV1) has no encoder to
            # describe the copy with, and a copy needs none
            out.add_stream_from_template(stream, opaque=True)
            out.add_stream("aac", rate=16_000, layout="mono")
            out.start_encoding()  # writes the header, where containers check the codecs they hold
    except (av.FFmpegError, ValueError) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    return None


def _codec_name(stream: Any) -> str:
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def plan_output(video_path: str | os.PathLike, output_path: str | os.PathLike) -> OutputPlan:
    """Decide how the video stream of ``video_path`` goes into ``output_path`` (see the module docstring).

    ``output_path`` ends in one of :data:`CONTAINER_FORMATS`, or has no suffix (the source's container is kept when it
    can hold the copy, else the first of .mp4, .mkv, .mov that can; with none, .mp4 re-encoded).
    """
    import av

    source = check_video_file(video_path)
    target = Path(output_path).expanduser()
    suffix = target.suffix.lower()
    if suffix and suffix not in CONTAINER_FORMATS:
        raise ValueError(f"cannot write video as '{target.suffix}': use one of {', '.join(CONTAINER_FORMATS)}")
    try:
        src = open_input(source)
    except av.FFmpegError as exc:
        raise open_failure(source, exc) from None
    with src:
        stream = _video_stream(src, source)
        codec = _codec_name(stream)
        if suffix:
            refusal = copy_refusal(stream, CONTAINER_FORMATS[suffix])
            if refusal is None:
                return OutputPlan(target, CONTAINER_FORMATS[suffix], codec, reencode=False)
            keeps = [s for s in _PREFERRED if s != suffix and copy_refusal(stream, CONTAINER_FORMATS[s]) is None]
            hint = f"; write {' or '.join(keeps)} to keep it unchanged" if keeps else ""
            note = (f"the {codec} video cannot be copied into a {suffix} file ({refusal}), so its picture is "
                    f"re-encoded as H.264{hint}")
            return OutputPlan(target, CONTAINER_FORMATS[suffix], codec, reencode=True, note=note)
        own = Path(source).suffix.lower()
        families = [_FAMILY[name] for name in src.format.name.split(",") if name in _FAMILY]
        first = [own] if own in CONTAINER_FORMATS else families[:1]
        for choice in dict.fromkeys([*first, *_PREFERRED]):
            if copy_refusal(stream, CONTAINER_FORMATS[choice]) is None:
                return OutputPlan(target.with_name(target.name + choice), CONTAINER_FORMATS[choice], codec,
                                  reencode=False, note=f"no container given: writing {target.name + choice}")
    return OutputPlan(target.with_name(target.name + ".mp4"), "mp4", codec, reencode=True,
                      note=f"no container given and none here can hold the {codec} video unchanged: writing "
                           f"{target.name}.mp4 with the picture re-encoded as H.264")
