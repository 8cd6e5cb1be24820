"""Choosing a frame source: decord first for clips of one window (the official decoder), PyAV for longer videos and
where decord cannot cope."""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any, Literal, Sequence

import numpy as np
import torch

from ..config import SEQUENCE, WINDOWS
from .decord_reader import DecordOpenError, DecordReader
from .errors import VideoBackendError, check_video_file, open_failure
from .memory import InMemoryVideo, from_components
from .pyav_reader import PyAVReader, overstated_index, probe_stream, scan_packets
from .source import FrameSource

Backend = Literal["auto", "decord", "pyav"]
BACKENDS: tuple[str, ...] = ("auto", "decord", "pyav")
# Past one generation window, "auto" reads with PyAV: it decodes only the frames each window asks for, from the nearest
# keyframe, in constant memory, while decord's memory rises with the video (measured: 0.6-1.2 GB for 60 s of 640x360,
# against 0.26 GB for PyAV, which stays flat).
DECORD_MAX_SEC = SEQUENCE.duration_sec + WINDOWS.tolerance_sec


def open_video(path: str | os.PathLike, backend: str = "auto", *, check_truncation: bool = True) -> FrameSource:
    """Open a video file.

    ``auto``: decord, falling back to PyAV when decord is missing, cannot open the file, or the file is rotated; PyAV
    for videos longer than one generation window (bounded memory).
    ``decord`` / ``pyav``: that reader only.  Errors are :class:`~.errors.VideoError` subclasses that say what is wrong.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    p = check_video_file(path)
    if backend == "pyav":
        return PyAVReader(p, check_truncation=check_truncation)
    # The PyAV probe is cheap (one frame) and both classifies unreadable files and finds the rotation decord mishandles.
    try:
        probe = probe_stream(p)
    except Exception:
        if backend == "decord":
            raise
        # Let the full PyAV scan report it: it sees the same problem with more detail.
        return PyAVReader(p, check_truncation=check_truncation)
    if backend == "auto" and (probe.declared_duration or 0.0) > DECORD_MAX_SEC:
        return PyAVReader(p, check_truncation=check_truncation)
    # decord trusts the index's frame count (a crafted one aborts the process), so it only gets files whose index
    # lists no more frames than the file holds; PyAV reads the others from their packets.
    packets = scan_packets(p)
    if backend == "auto" and overstated_index(probe, packets):
        return PyAVReader(p, check_truncation=check_truncation)
    try:
        return DecordReader(p, probe=probe, packets=packets, check_truncation=check_truncation)
    except DecordOpenError as exc:
        if backend == "decord":
            raise open_failure(p, exc.__cause__ or exc) from exc
    except VideoBackendError:
        if backend == "decord":
            raise
    return PyAVReader(p, check_truncation=check_truncation)


def as_frame_source(
    source: Any,
    *,
    fps: float | Fraction | None = None,
    timestamps: Sequence[float] | np.ndarray | None = None,
    backend: str = "auto",
    check_truncation: bool = True,
) -> tuple[FrameSource, bool]:
    """Wrap whatever the user brought as a :class:`FrameSource`; the flag says whether the caller must close it.

    Accepted: a path; a :class:`FrameSource`; a ComfyUI ``VIDEO`` (``get_components()``) or ``VideoComponents``
    (``images`` + ``frame_rate``); a frame batch (tensor or array ``[F, H, W, C]``, ComfyUI IMAGE) with ``fps`` or
    ``timestamps``.
    """
    if isinstance(source, FrameSource):
        return source, False
    if isinstance(source, (str, os.PathLike)):
        return open_video(source, backend, check_truncation=check_truncation), True
    if isinstance(source, (torch.Tensor, np.ndarray)):
        return InMemoryVideo(source, fps, timestamps=timestamps), True
    if hasattr(source, "get_components") or (hasattr(source, "images") and hasattr(source, "frame_rate")):
        return from_components(source), True
    raise TypeError(
        f"cannot read frames from a {type(source).__name__}; give a video path, a ComfyUI VIDEO, or an IMAGE batch "
        f"with its fps"
    )
