"""decord reader: the official extractor's decoder, with frame times from ``get_frame_timestamp``.

decord 0.6 (FFmpeg 4.1 inside) is what the official CLIP features were computed with, so it is tried first.  Its
limits, measured on 0.6.0 and handled here rather than trusted:

* frame *indices* computed from ``get_avg_fps()`` drift on variable-frame-rate video; the per-frame timestamps are
  right, so sampling works on those (see :mod:`.timeline`);
* video with a 90/270 degree display rotation comes back with swapped dimensions and scrambled pixels (and
  ``get_batch`` fails), and whether it applies a 180 degree rotation depends on which metadata its FFmpeg 4.1
  understands; rotated files are therefore refused and go to PyAV, which reports the rotation and lets us apply it;
* a truncated file with its index at the front fails to open at all (PyAV then reads what is there and reports it);
* some narrow pictures (1, 2, 4, 8 or 16 pixels wide) open but cannot be copied out of its padded frame buffers, so
  the first frame is decoded on opening and such files go to PyAV too;
* it sizes its tables from the frame count the index declares, and a crafted count (an ``stts`` box claiming 2^31
  frames in a 2 KB file) makes it throw ``std::bad_alloc``, which no Python code can catch: the process aborts.  A
  file whose index lists more frames than its packets hold therefore never reaches it (PyAV, which reports such
  damage as ordinary errors, counts the packets first).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .errors import CorruptVideoError, VideoBackendError
from .pyav_reader import (PacketScan, StreamProbe, derive_fps, ensure_not_truncated, overstated_index, probe_stream,
                          scan_packets)
from .source import FrameSource, rgb_uint8

# Frames decoded per get_batch call: large batches let decord reuse its seek, but the batch exists at full resolution,
# so it is capped by bytes (a 4K frame is 25 MB).
BATCH_BYTES = 64 * 2**20


class DecordOpenError(VideoBackendError):
    """decord could not open a file (PyAV may still be able to)."""


def _import_decord() -> Any:
    try:
        import decord
    except ImportError as exc:
        raise VideoBackendError(
            "decord is not installed (it has no macOS wheel); `pip install decord`, or use backend='pyav'."
        ) from exc
    # Its FFmpeg would print to the terminal on every damaged file; the errors raised here carry the reason instead.
    decord.logging.set_level(decord.logging.QUIET)
    return decord


class DecordReader(FrameSource):
    """Frames of ``path`` through decord, decoded in small batches of the wanted indices only."""

    backend = "decord"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        probe: StreamProbe | None = None,
        packets: PacketScan | None = None,
        check_truncation: bool = True,
        num_threads: int = 0,
    ) -> None:
        decord = _import_decord()
        self.path = Path(path)
        self.name = str(path)
        probe = probe if probe is not None else probe_stream(path)
        packets = packets if packets is not None else scan_packets(path)
        if overstated_index(probe, packets):
            # decord sizes its tables from the index's count: a crafted count makes it throw std::bad_alloc, which
            # nothing can catch (the process aborts), so such a file never reaches it.
            raise CorruptVideoError(
                f"{path}: its index lists {probe.declared_frames} frames but the file holds only {packets.count}. "
                f"The file was cut off or damaged; download or export it again (backend='auto' or 'pyav' reads the "
                f"frames that are there).",
                path,
            )
        if probe.rotation:
            raise VideoBackendError(
                f"{path}: has a {probe.rotation} degree display rotation, which decord 0.6 does not apply reliably "
                f"(90/270 give scrambled frames). "
                f"Use backend='auto' or backend='pyav' for this file.",
                path,
            )
        try:
            self._vr = decord.VideoReader(self.name, ctx=decord.cpu(0), num_threads=num_threads)
            n = len(self._vr)
            spans = np.asarray(self._vr.get_frame_timestamp(np.arange(n)), dtype=np.float64).reshape(n, 2)
            avg = float(self._vr.get_avg_fps())
        except Exception as exc:  # decord raises DECORDError/RuntimeError with FFmpeg's text
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise DecordOpenError(f"{path}: decord cannot open it ({reason}).", path) from exc
        if n == 0:
            raise DecordOpenError(f"{path}: decord found no frames.", path)
        try:
            self._vr.get_batch([0])
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise DecordOpenError(f"{path}: decord cannot decode its frames ({reason}).", path) from exc
        origin = spans[0, 0]
        self.timestamps = spans[:, 0] - origin
        self.average_fps = derive_fps(path, avg if avg > 0 else None, self.timestamps)
        # How long the last frame lasts: the container's packet says so in most formats, and that is what FFmpeg, the
        # PyAV reader and the muxer use (decord's own figure can differ on variable-rate files).  Without it take
        # decord's span (MP4 stores one; Matroska and AVI give zero length, which would drop the last frame), else
        # repeat the last interval, as the PyAV reader does.
        last_span = packets.last_duration or float(spans[-1, 1] - spans[-1, 0])
        if last_span <= 0:
            last_span = float(self.timestamps[-1] - self.timestamps[-2]) if n >= 2 else 1.0 / self.average_fps
        self.end_time = float(self.timestamps[-1] + last_span)
        # The container's own duration is what FFmpeg (hence the PyAV reader and the fps filter) uses for the end of
        # the last frame, so take it when it only extends the last frame.
        declared = probe.declared_duration
        if declared is not None and self.timestamps[-1] < declared and 0 < declared - self.end_time <= 1.5 * last_span:
            self.end_time = float(declared)
        self.rotation = 0
        self.width, self.height = probe.width, probe.height
        if check_truncation:
            ensure_not_truncated(path, self.end_time, probe.declared_duration, n)

    def _decode(self, indices: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
        per_batch = max(1, BATCH_BYTES // max(1, self.width * self.height * 3))
        for lo in range(0, len(indices), per_batch):
            chunk = indices[lo : lo + per_batch]
            try:
                batch = self._vr.get_batch(chunk).asnumpy()
            except Exception as exc:
                raise CorruptVideoError(
                    f"{self.name}: decord failed to decode frames {chunk[0]}..{chunk[-1]} ({exc}). The file may be "
                    f"damaged; try backend='pyav', or export the video again.",
                    self.name,
                ) from exc
            for index, picture in zip(chunk, batch, strict=True):
                yield index, rgb_uint8(picture)
            del batch

    def close(self) -> None:
        self._vr = None
