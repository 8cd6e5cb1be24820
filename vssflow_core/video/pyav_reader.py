"""PyAV (FFmpeg 8) reader: frame times from packet timestamps, selected frames decoded one by one.

PyAV is the reader of last resort because it opens what decord cannot (partially written files, rotated video), and it
is also where rotation and the declared duration are read for the decord reader.  Two FFmpeg habits shape this file:

* a truncated file with its index at the front decodes *partially and silently*, so the frames that can be read are
  compared with the duration the file declares (:class:`TruncatedVideoError`);
* the display matrix (or the old ``rotate`` tag) is reported but never applied by the decoder, so rotation is ours.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..progress import check_interrupted
from .errors import (
    CorruptVideoError,
    InvalidFrameRateError,
    NoVideoStreamError,
    TruncatedVideoError,
    VideoBackendError,
    open_failure,
    still_image_error,
    still_image_format,
)
from .source import FrameSource, rgb_uint8

# A file counts as truncated when the frames that can be read end this much before the declared duration: more than
# any muxer's rounding or a trailing frame's duration, less than any real loss worth reporting.
TRUNCATION_MIN_GAP_S = 0.5
TRUNCATION_MIN_FRACTION = 0.05

# Seeking costs a keyframe search; decoding from the start is cheaper when the first wanted frame is this close.
SEEK_THRESHOLD_S = 2.0


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a hard requirement
        raise VideoBackendError("PyAV is not installed; run `pip install av` in ComfyUI's Python environment.") from exc
    return av


def open_input(path: str | os.PathLike) -> Any:
    """``av.open`` for reading.  Tags that are not valid UTF-8 (a damaged or crafted file) are decoded with
    replacement characters: PyAV would otherwise raise UnicodeDecodeError while opening, before any FFmpeg check."""
    return _import_av().open(str(path), metadata_errors="replace")


@dataclass(frozen=True)
class StreamProbe:
    """What the container says about its first video stream, read without decoding more than one frame."""

    rotation: int  # degrees counter-clockwise to turn stored frames upright
    declared_duration: float | None  # seconds, the video stream's own duration when the container records it
    average_fps: float | None
    width: int  # stored (not rotated) size
    height: int
    declared_frames: int = 0  # frames the container's index lists (0: it does not say, as in Matroska)


@dataclass(frozen=True)
class PacketScan:
    """The video stream's packets as the demuxer hands them out: headers only, nothing decoded."""

    count: int  # packets holding data: the frames the file really contains
    last_duration: float | None  # seconds the last frame is shown, None when the container does not say


def rotation_from(frame: Any, stream: Any) -> int:
    """Display rotation, degrees counter-clockwise, from the frame's display matrix or the stream's ``rotate`` tag."""
    rot = getattr(frame, "rotation", 0) or 0
    if not rot:
        # Old muxers and Matroska carry a ``rotate`` tag, in degrees *clockwise*; FFmpeg 8 reports it but ignores it.
        tags = {str(k).lower(): v for k, v in dict(stream.metadata).items()}
        try:
            rot = -int(float(tags.get("rotate", 0)))
        except ValueError:
            rot = 0
    return int(round(rot / 90.0) * 90) % 360


def declared_duration(container: Any, stream: Any) -> float | None:
    """The video stream's declared duration in seconds, or ``None`` when only the whole container's is known and other
    streams (audio that runs on) could make it longer than the video."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _rate(value: Fraction | None) -> float | None:
    if value is None or value == 0:
        return None
    f = float(value)
    return f if math.isfinite(f) and f > 0 else None


def probe_stream(path: str | os.PathLike) -> StreamProbe:
    """Open ``path`` with PyAV and describe its first video stream; classified :class:`VideoError` on failure."""
    av = _import_av()
    try:
        container = open_input(path)
    except av.error.FFmpegError as exc:
        raise open_failure(path, exc) from exc
    with container:
        stream = _video_stream(container, path)
        try:
            frame = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(f"{path}: the first video frame cannot be decoded ({exc}). The file is damaged; "
                                    f"export or download it again.", path) from exc
        if frame is None:
            raise CorruptVideoError(
                f"{path}: the video stream holds no decodable frame. The file is damaged or was cut off; export or "
                f"download it again.",
                path,
            )
        return StreamProbe(
            rotation=rotation_from(frame, stream),
            declared_duration=declared_duration(container, stream),
            average_fps=_rate(stream.average_rate) or _rate(stream.guessed_rate),
            width=frame.width,
            height=frame.height,
            declared_frames=max(0, int(stream.frames or 0)),
        )


def scan_packets(path: str | os.PathLike) -> PacketScan:
    """Count the first video stream's packets and find how long its last frame is shown (what FFmpeg, the PyAV reader
    and the muxer take as the end of the video), from the packet headers alone."""
    av = _import_av()
    count, last_pts, last_duration = 0, None, 0
    time_base = None
    try:
        with open_input(path) as container:
            stream = container.streams.video[0]
            time_base = stream.time_base
            for packet in container.demux(stream):
                check_interrupted()  # per packet: an hour of video has ~100,000 of them
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                count += 1
                if packet.is_discard or packet.pts is None:
                    continue
                if last_pts is None or packet.pts >= last_pts:
                    last_pts, last_duration = packet.pts, packet.duration or 0
    except (av.error.FFmpegError, IndexError):
        pass  # a damaged tail: what was read before it is what the file holds
    last = float(last_duration * time_base) if last_duration > 0 and time_base is not None else None
    return PacketScan(count=count, last_duration=last)


def overstated_index(probe: StreamProbe, packets: PacketScan) -> bool:
    """True when the container's index lists more frames than the file holds: a file cut off after its index was
    written, or a crafted one (an ``stts`` box claiming 2^31 frames in 2 KB)."""
    return probe.declared_frames > packets.count


def _video_stream(container: Any, path: str | os.PathLike) -> Any:
    if still_image_format(container.format.name):
        raise still_image_error(path, container.format.name)
    if not container.streams.video:
        has_audio = bool(container.streams.audio)
        what = "an audio-only file" if has_audio else "a media file without any video stream"
        raise NoVideoStreamError(
            f"{path}: {what}, so there are no pictures to sample. Load a file that has a video track.",
            path,
        )
    return container.streams.video[0]


def _looks_truncated(end_time: float, declared: float) -> bool:
    allowed = max(TRUNCATION_MIN_GAP_S, TRUNCATION_MIN_FRACTION * declared)
    return math.isfinite(declared) and declared - end_time > allowed


def ensure_not_truncated(path: str | os.PathLike, end_time: float, declared: float | None, num_frames: int) -> None:
    """Raise :class:`TruncatedVideoError` when the readable frames stop far short of the declared duration."""
    if declared is not None and _looks_truncated(end_time, declared):
        raise TruncatedVideoError(
            f"{path}: only {num_frames} frames ({end_time:.2f} s) can be read, but the file declares {declared:.2f} s. "
            f"The end of the file is missing (an interrupted download or copy). Download or export it again; to use "
            f"the readable part anyway, pass check_truncation=False.",
            path,
        )


def derive_fps(path: str | os.PathLike, declared: float | None, timestamps: np.ndarray) -> float:
    """The declared average rate, or the rate the timestamps imply when the container declares none."""
    if declared:
        return declared
    if timestamps.size >= 2 and timestamps[-1] > timestamps[0]:
        return (timestamps.size - 1) / float(timestamps[-1] - timestamps[0])
    raise InvalidFrameRateError(
        f"{path}: the video declares a frame rate of zero and has too few frames to infer one, so its frames cannot be "
        f"placed in time. Re-encode it with a frame rate (e.g. `ffmpeg -i in.mp4 -r 25 out.mp4`), or pass the frames "
        f"with an explicit fps.",
        path,
    )


class PyAVReader(FrameSource):
    """Frames of ``path`` through PyAV.  Opening reads every packet header (no decoding) to learn the frame times."""

    backend = "pyav"

    def __init__(self, path: str | os.PathLike, *, check_truncation: bool = True) -> None:
        av = _import_av()
        self.path = Path(path)
        self.name = str(path)
        try:
            container = open_input(self.name)
        except av.error.FFmpegError as exc:
            raise open_failure(path, exc) from exc
        with container:
            stream = _video_stream(container, path)
            self._stream_index = stream.index
            self._time_base = stream.time_base
            pts, durations, first = self._scan(av, container, stream)
            if first is None:
                raise CorruptVideoError(f"{path}: no video frame can be decoded. The file is damaged or was cut off; "
                                        f"export or download it again.", path)
            self.rotation = rotation_from(first, stream)
            declared = declared_duration(container, stream)
            rate = _rate(stream.average_rate) or _rate(stream.guessed_rate)

        if pts is None:  # some packets carry no timestamp (raw streams): take the decoder's own frame times
            self._pts, times = self._scan_decoded(av, rate)
            durations = None
        else:
            order = np.argsort(pts, kind="stable")
            self._pts = np.asarray(pts, dtype=np.int64)[order]
            times = self._pts.astype(np.float64) * float(self._time_base)
            durations = np.asarray(durations, dtype=np.int64)[order]
        self._set_times(times, durations, rate)
        if declared is not None and _looks_truncated(self.end_time, declared):
            if check_truncation:
                ensure_not_truncated(path, self.end_time, declared, self.num_frames)
            # Reading the cut-off part anyway: the last packets may be incomplete, so count only frames that decode.
            self._pts, times = self._scan_decoded(av, rate)
            self._set_times(times, None, rate)
        w, h = first.width, first.height
        self.width, self.height = (h, w) if self.rotation in (90, 270) else (w, h)

    def _scan(self, av: Any, container: Any, stream: Any) -> tuple[list[int] | None, list[int], Any]:
        """Packet timestamps and durations of the whole stream, and the first decoded frame (for its rotation)."""
        pts: list[int] = []
        durations: list[int] = []
        missing = False
        first = None
        try:
            for packet in container.demux(stream):
                check_interrupted()
                if packet.size == 0 or packet.is_discard:  # end-of-stream marker; edit-list leftovers never shown
                    continue
                if packet.pts is None:
                    missing = True
                else:
                    pts.append(packet.pts)
                    durations.append(packet.duration or 0)
                if first is None:
                    for frame in packet.decode():
                        first = frame
                        break
            if first is None:
                for frame in stream.decode(None):  # flush: a decoder with frame delay may hold the first frame back
                    first = frame
                    break
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(f"{self.name}: reading the video stream failed ({exc}). The file is damaged; "
                                    f"export or download it again.", self.name) from exc
        return (None if missing else pts), durations, first

    def _set_times(self, times: np.ndarray, durations: np.ndarray | None, rate: float | None) -> None:
        if times.size == 0:
            raise CorruptVideoError(f"{self.name}: the video stream holds no frames. Export or download it again.",
                                    self.name)
        times = np.sort(times)
        self.timestamps = times - times[0]
        self.average_fps = derive_fps(self.name, rate, self.timestamps)
        # How long the last frame lasts: its packet says so in most containers; otherwise repeat the last interval
        # (on variable-rate video the local interval beats the average).
        if durations is not None and durations[-1] > 0:
            last = float(durations[-1] * self._time_base)
        elif times.size >= 2:
            last = float(self.timestamps[-1] - self.timestamps[-2])
        else:
            last = 1.0 / self.average_fps
        self.end_time = float(self.timestamps[-1] + last)

    def _scan_decoded(self, av: Any, rate: float | None) -> tuple[np.ndarray | None, np.ndarray]:
        """Frame pts (``None`` if any is missing) and times from a full decode, for files whose packets cannot be
        trusted: missing timestamps, or a cut-off end."""
        stamps: list[int | None] = []
        with open_input(self.name) as container:
            stream = container.streams.video[self._index_in_video(container)]
            stream.thread_type = "AUTO"
            try:
                for frame in container.decode(stream):
                    check_interrupted()
                    stamps.append(frame.pts)
            except av.error.FFmpegError:
                pass  # a damaged tail: keep the frames decoded before it
        if stamps and all(p is not None for p in stamps):
            pts = np.sort(np.asarray(stamps, dtype=np.int64))
            return pts, pts.astype(np.float64) * float(self._time_base)
        # No timing at all: the declared rate is all there is.
        return None, np.arange(len(stamps), dtype=np.float64) / derive_fps(self.name, rate, np.zeros(0))

    def _index_in_video(self, container: Any) -> int:
        for i, s in enumerate(container.streams.video):
            if s.index == self._stream_index:
                return i
        return 0

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
        av = _import_av()
        if self._pts is None:
            yield from self._decode_in_order(av, indices)
            return
        wanted = {int(self._pts[i]): i for i in indices}
        seek = self.timestamps[indices[0]] > SEEK_THRESHOLD_S
        yield from self._decode_by_pts(av, wanted, seek)
        if wanted and seek:  # an inexact seek landed past a wanted frame: read those from the start
            yield from self._decode_by_pts(av, wanted, False)
        if wanted:
            raise CorruptVideoError(
                f"{self.name}: {len(wanted)} frame(s) listed in the file could not be decoded. The file is damaged; "
                f"export or download it again.",
                self.name,
            )

    def _decode_by_pts(self, av: Any, wanted: dict[int, int], seek: bool) -> Iterator[tuple[int, torch.Tensor]]:
        last = max(wanted)
        with open_input(self.name) as container:
            stream = container.streams.video[self._index_in_video(container)]
            stream.thread_type = "AUTO"
            try:
                if seek:
                    container.seek(min(wanted), stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    check_interrupted()  # per decoded frame, also those decoded only to reach a wanted one
                    pts = frame.pts
                    if pts in wanted:
                        yield wanted.pop(pts), rgb_uint8(frame.to_ndarray(format="rgb24"))
                    if not wanted or (pts is not None and pts >= last):
                        break
            except av.error.FFmpegError as exc:
                raise CorruptVideoError(
                    f"{self.name}: decoding failed ({exc}). The file is damaged; export or download it again.",
                    self.name,
                ) from exc

    def _decode_in_order(self, av: Any, indices: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
        wanted = set(indices)
        last = indices[-1]
        with open_input(self.name) as container:
            stream = container.streams.video[self._index_in_video(container)]
            stream.thread_type = "AUTO"
            try:
                for i, frame in enumerate(container.decode(stream)):
                    check_interrupted()
                    if i in wanted:
                        yield i, rgb_uint8(frame.to_ndarray(format="rgb24"))
                    if i >= last:
                        break
            except av.error.FFmpegError as exc:
                raise CorruptVideoError(
                    f"{self.name}: decoding failed ({exc}). The file is damaged; export or download it again.",
                    self.name,
                ) from exc
