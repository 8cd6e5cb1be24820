"""A video as a file on disk, which is what the muxer copies its picture from.

A file-backed video is used as it is.  A video that only exists in memory (frames from an IMAGE batch, a generator's
output) is written once as H.264, at exactly its frame rate, with its own soundtrack if it has one.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..progress import check_interrupted
from .audio_io import atomic_output

__all__ = ["materialize_video", "reencode_picture", "write_frames_video"]

H264_CRF = "17"  # visually lossless for the re-encoded pictures (the copy is preferred whenever the container allows)


def _rate(fps: float | Fraction) -> Fraction:
    from ..video.timeline import check_rate

    if isinstance(fps, Fraction):
        check_rate(float(fps), "frame rate")
        return fps
    # 29.97 -> 2997/100 exactly; 30000/1001 given as a float (29.97002997...) -> 30000/1001
    return Fraction(check_rate(fps, "frame rate")).limit_denominator(1001)


def write_frames_video(
    path: str | os.PathLike,
    frames: Any,
    fps: float | Fraction,
    *,
    audio: tuple[Any, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Encode ``frames`` (``[F, H, W, C]``, float 0..1 or uint8, a ComfyUI IMAGE batch) as H.264 at ``fps``, frame
    ``k`` shown at ``k / fps``, so the video lasts exactly ``F / fps`` seconds.  ``audio`` = ``(waveform [C, T] or
    [1, C, T], sample rate)`` is added as AAC, fitted to the video's duration.  Written atomically."""
    import av

    from ..video.memory import _as_frames

    target = Path(path).expanduser()
    rate = _rate(fps)
    pictures = _as_frames(frames)
    n, height, width = int(pictures.shape[0]), int(pictures.shape[1]), int(pictures.shape[2])
    if n == 0:
        raise ValueError("cannot write a video without frames")
    # 4:2:0 needs even sizes; odd-sized pictures keep every pixel in 4:4:4 instead of being cropped
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    with atomic_output(target, overwrite=overwrite) as tmp:
        picture_file = tmp if audio is None else tmp.with_name(tmp.stem + ".video" + tmp.suffix)
        try:
            with av.open(str(picture_file), "w") as container:
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
                stream.options = {"crf": H264_CRF}
                stream.codec_context.time_base = 1 / rate
                for k in range(n):
                    check_interrupted()  # per frame: a long clip's encode can be cancelled
                    frame = pictures[k]
                    if frame.dtype != torch.uint8:
                        frame = (frame.detach().float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
                    if frame.shape[-1] == 1:
                        frame = frame.expand(-1, -1, 3)
                    video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[..., :3].cpu().numpy()),
                                                             format="rgb24")
                    video_frame.pts = k
                    video_frame.time_base = 1 / rate
                    for packet in stream.encode(video_frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            if audio is not None:
                from .mux import mux_audio

                waveform, sample_rate = audio
                mux_audio(picture_file, waveform, int(sample_rate), tmp, overwrite=True)
        finally:
            if picture_file != tmp:
                picture_file.unlink(missing_ok=True)
    return target


def reencode_picture(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Write the video stream of ``source`` to ``target`` (an .mp4) as H.264, frame by frame (constant memory), every
    frame at its own time (variable frame rate kept) and turned upright (a display rotation is applied, since the
    copy's rotation tag is not written).  For a picture the output container cannot hold as it is."""
    import av

    from ..video.errors import CorruptVideoError
    from ..video.pyav_reader import open_input, rotation_from
    from ..video.transform import upright

    source, target = Path(source), Path(target)
    with open_input(source) as src, av.open(str(target), "w", format="mp4") as out:
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        encoder, rotation, step = None, 0, 0
        try:
            for frame in src.decode(vin):
                check_interrupted()
                if encoder is None:
                    rotation = rotation_from(frame, vin)
                    turned = rotation in (90, 270)
                    width, height = (frame.height, frame.width) if turned else (frame.width, frame.height)
                    encoder = out.add_stream("libx264", rate=vin.average_rate or vin.guessed_rate or 25)
                    encoder.width, encoder.height = width, height
                    encoder.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
                    encoder.options = {"crf": H264_CRF}
                    encoder.codec_context.time_base = encoder.time_base = vin.time_base
                picture = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                if rotation:
                    picture = upright(picture, rotation)
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture.numpy()), format="rgb24")
                # frames without a time (raw streams) follow each other at one tick per frame
                video_frame.pts = frame.pts if frame.pts is not None else step
                video_frame.time_base = vin.time_base
                step += 1
                out.mux(encoder.encode(video_frame))
        except av.FFmpegError as exc:
            raise CorruptVideoError(f"{source}: its frames cannot be decoded for re-encoding ({exc})", source) \
                from None
        if encoder is None:
            raise CorruptVideoError(f"{source}: the video stream holds no decodable frame", source)
        out.mux(encoder.encode())
    return target


def materialize_video(video: Any, folder: str | os.PathLike, name: str = "video.mp4", *,
                      reencode: bool = False) -> Path:
    """A file holding ``video``'s picture (and sound): its own file when it is an untrimmed file on disk; else
    ``folder / name``, written by the VIDEO's own ``save_to`` (ComfyUI VIDEO objects) or from its components.
    ``reencode`` always writes H.264 from the components (for a picture the target container cannot hold)."""
    from ..video.inputs import video_file_of

    own = None if reencode else video_file_of(video)
    if own is not None:
        return own
    target = Path(folder) / name
    if hasattr(video, "save_to") and not reencode:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target, overwrite=True) as tmp:
            video.save_to(str(tmp))
        return target
    comps = video.get_components() if hasattr(video, "get_components") else video
    images, rate = getattr(comps, "images", None), getattr(comps, "frame_rate", None)
    if images is None or rate is None:
        raise TypeError(f"cannot write a {type(video).__name__} as a video file: it has neither a file, save_to(), "
                        "nor frames with a frame rate")
    sound = getattr(comps, "audio", None)
    audio = None if not sound else (sound["waveform"], int(sound["sample_rate"]))
    return write_frames_video(target, images, rate, audio=audio, overwrite=True)
