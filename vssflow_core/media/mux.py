"""Put a generated waveform on a video: the picture is copied packet for packet, only the audio is encoded.

Re-encoding the video would cost time and quality for nothing, so the video stream is stream-copied with PyAV (its
packets go into the new container untouched: bit-identical, rotation and colour metadata kept) and the waveform is
encoded as AAC.  Only a picture the container cannot hold (ProRes or VP8 in .mp4...) is re-encoded as H.264, as the
output plan made before generating says (:mod:`.output_plan`).  The audio track is made exactly as long as the video (silence appended or the tail cut), so players
and editors see one duration.  Optionally the video's own soundtrack is mixed in, each side with its own gain.

The output is written next to its final name and renamed into place when complete (:func:`..audio_io.atomic_output`);
an existing file is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..codec.resample import resample
from ..progress import check_interrupted
from ..video.errors import CorruptVideoError, NoVideoStreamError, check_video_file, open_failure
from ..video.pyav_reader import open_input
from .audio_io import atomic_output, temporary_path
from .output_plan import CONTAINER_FORMATS, OutputPlan, plan_output
from .video_file import reencode_picture

__all__ = ["CONTAINER_FORMATS", "MuxError", "MuxResult", "generation_metadata", "mux_audio", "original_audio",
           "video_duration"]

AAC_FRAME_SAMPLES = 1024  # samples per AAC frame: the granularity of the encoded audio's length
log = logging.getLogger(__name__)


class MuxError(RuntimeError):
    """The streams could not be put together (the container refuses the video codec, the encoder failed...)."""


@dataclass(frozen=True)
class MuxResult:
    path: Path
    duration: float  # seconds of video, = seconds of audio written
    audio_sample_rate: int
    audio_channels: int
    mixed_original: bool  # whether the video's own soundtrack was mixed in
    normalized: bool  # whether the mix was scaled down to avoid clipping
    reencoded: bool = False  # whether the picture was re-encoded as H.264 (the container cannot hold its codec)


# --------------------------------------------------------------------------------------------------------------------
# Reading the source
# --------------------------------------------------------------------------------------------------------------------


def _open(path: Path) -> Any:
    import av

    try:
        return open_input(path)
    except av.FFmpegError as exc:
        raise open_failure(path, exc) from None


def _video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        raise NoVideoStreamError(f"{path}: has no video stream to put the audio on (is it an audio file?)", path)
    return container.streams.video[0]


def _packet_span(container: Any, stream: Any, path: Path) -> tuple[float, float]:
    """(first presentation time, end of the last frame) of the video stream, seconds, from the packets alone."""
    import av

    start, end, fallback = math.inf, -math.inf, 0.0
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        fallback = 1.0 / float(rate)  # for containers whose packets carry no duration
    tb = stream.time_base
    try:
        for packet in container.demux(stream):
            if packet.pts is None:  # the demuxer's final flush packet, or a packet with no timing
                continue
            t = float(packet.pts * tb)
            length = float(packet.duration * tb) if packet.duration else fallback
            start, end = min(start, t), max(end, t + length)
    except av.FFmpegError as exc:
        raise CorruptVideoError(f"{path}: the video packets cannot be read ({exc}); the file is damaged", path) \
            from None
    if not math.isfinite(start) or end <= start:
        raise CorruptVideoError(f"{path}: the video stream holds no frames", path)
    return start, end


def video_duration(path: str | os.PathLike) -> float:
    """Seconds of picture in the video stream (first frame shown to end of the last frame), read from the packets."""
    path = check_video_file(path)
    with _open(path) as container:
        start, end = _packet_span(container, _video_stream(container, path), path)
    return end - start


def original_audio(video_path: str | os.PathLike, rate: int | None = None) -> tuple[np.ndarray, int] | None:
    """The video's own soundtrack as float32 ``[channels (1 or 2), samples]`` at ``rate`` (its own if None), on the
    video's clock and exactly the video's duration; None if it has none.  For callers that build the final mix
    themselves (ducking, delivery gain) and hand it to :func:`mux_audio`."""
    source = check_video_file(video_path)
    with _open(source) as src:
        start, end = _packet_span(src, _video_stream(src, source), source)
    with _open(source) as src:
        found = _original_audio(src, source, start, rate)
    if found is None:
        return None
    audio, rate = found
    return _fit_length(audio, round((end - start) * rate)), rate


def _original_audio(container: Any, path: Path, video_start: float, rate: int | None
                    ) -> tuple[np.ndarray, int] | None:
    """The first audio track as float32 ``[channels (1 or 2), samples]`` at ``rate`` (its own if None), aligned so
    sample 0 plays with the first video frame; None if the file has no audio."""
    import av

    if not container.streams.audio:
        return None
    stream = container.streams.audio[0]
    channels = 1 if stream.channels == 1 else 2  # more than stereo is folded to stereo by FFmpeg's resampler
    if stream.channels > 2:
        # Why not keep 5.1: the generated track is mono, and the delivered mix is measured (BS.1770) and limited
        # as one programme; a surround mix would need a placement of the new sound that the model does not give.
        log.warning("%s: its %s soundtrack is kept folded down to stereo under the new sound (the generated track "
                    "is mono); to keep the surround layout, mix the WAV into the original in an editor",
                    path, stream.layout.name)
    rate = rate or stream.rate
    resampler = av.AudioResampler(format="fltp", layout="mono" if channels == 1 else "stereo", rate=rate)
    chunks, first_time = [], None
    try:
        for frame in container.decode(stream):
            if first_time is None and frame.pts is not None:
                first_time = float(frame.pts * frame.time_base)
            chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray() for f in resampler.resample(None))
    except av.FFmpegError as exc:
        raise CorruptVideoError(f"{path}: its audio track cannot be decoded ({exc})", path) from None
    if not chunks:
        return None
    audio = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    # the soundtrack may start before or after the picture; shift it onto the video's clock
    offset = round(((first_time if first_time is not None else video_start) - video_start) * rate)
    if offset > 0:
        audio = np.concatenate([np.zeros((audio.shape[0], offset), np.float32), audio], axis=1)
    elif offset < 0:
        audio = audio[:, -offset:]
    return audio, rate


# --------------------------------------------------------------------------------------------------------------------
# Preparing the new soundtrack
# --------------------------------------------------------------------------------------------------------------------


def _as_channels_first(waveform: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = waveform.detach().cpu() if isinstance(waveform, torch.Tensor) else torch.from_numpy(np.asarray(waveform))
    x = x.to(torch.float32)
    while x.ndim > 2 and x.shape[0] == 1:  # a ComfyUI [1, C, T] batch of one
        x = x[0]
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] > x.shape[1]:
        raise ValueError(f"waveform must be [samples] or [channels, samples], got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError("waveform is empty")
    if not torch.isfinite(x).all():
        raise ValueError("waveform contains NaN or infinite samples")
    return x


def _fit_length(audio: np.ndarray, samples: int) -> np.ndarray:
    if audio.shape[1] >= samples:
        return audio[:, :samples]
    return np.concatenate([audio, np.zeros((audio.shape[0], samples - audio.shape[1]), audio.dtype)], axis=1)


def _match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    return np.repeat(audio.mean(axis=0, keepdims=True), channels, axis=0)  # mono on every channel


# --------------------------------------------------------------------------------------------------------------------
# Muxing
# --------------------------------------------------------------------------------------------------------------------


def _encode_audio(stream: Any, audio: np.ndarray, rate: int) -> list[Any]:
    import av

    layout = "mono" if audio.shape[0] == 1 else "stereo"
    packets = []
    for start in range(0, audio.shape[1], AAC_FRAME_SAMPLES):
        check_interrupted()
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:start + AAC_FRAME_SAMPLES]),
                                           format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def _packet_time(packet: Any) -> float:
    t = packet.dts if packet.dts is not None else packet.pts
    return float(t * packet.time_base) if t is not None else math.inf


def _write(source: Path, target: Path, fmt: str, audio: np.ndarray, rate: int, bitrate: int | None,
           metadata: dict[str, str] | None = None) -> None:
    import av

    # MP4 and MOV keep only their standard tags unless asked to write any key (as ComfyUI's SaveVideo asks)
    options = {"movflags": "use_metadata_tags"} if (metadata and fmt in ("mp4", "mov")) else {}
    with _open(source) as src, av.open(str(target), "w", format=fmt, options=options) as out:
        if metadata:
            out.metadata.update(metadata)
        vin = _video_stream(src, source)
        try:
            # opaque: the source's codec description; a decode-only codec (libdav1d for AV1) has no encoder twin
            vout = out.add_stream_from_template(vin, opaque=True)
        except (av.FFmpegError, ValueError) as exc:
            raise MuxError(f"cannot copy the {vin.codec_context.name} video of {source} into a "
                           f"{target.suffix} file ({getattr(exc, 'strerror', None) or exc}); try .mkv") from None
        # metadata such as the language and handler name travel with the stream
        vout.metadata.update(vin.metadata)
        aout = out.add_stream("aac", rate=rate, layout="mono" if audio.shape[0] == 1 else "stereo")
        if bitrate:
            aout.bit_rate = int(bitrate)
        try:
            audio_packets = _encode_audio(aout, audio, rate)
        except av.FFmpegError as exc:
            raise MuxError(f"the AAC encoder failed ({exc})") from None

        # interleave by time, so players never have to read far ahead in either stream
        pending = iter(audio_packets)
        next_audio = next(pending, None)
        try:
            for packet in src.demux(vin):
                check_interrupted()  # per packet: a long clip's copy can be cancelled (the partial file goes)
                if packet.dts is None:  # the demuxer's flush packet carries no data
                    continue
                while next_audio is not None and _packet_time(next_audio) <= _packet_time(packet):
                    out.mux(next_audio)
                    next_audio = next(pending, None)
                packet.stream = vout
                out.mux(packet)
            while next_audio is not None:
                out.mux(next_audio)
                next_audio = next(pending, None)
        except av.FFmpegError as exc:
            # FFmpeg's message names the temporary file; its reason alone is clearer
            codec = vin.codec_context.name
            raise MuxError(f"cannot write the {codec} video of {source} into a {target.suffix} file "
                           f"({exc.strerror or exc}); the container may not accept {codec}: try .mkv") from None


def mux_audio(
    video_path: str | os.PathLike,
    waveform: torch.Tensor | np.ndarray,
    sample_rate: int,
    output_path: str | os.PathLike,
    *,
    mix_original: bool = False,
    original_gain: float = 1.0,
    generated_gain: float = 1.0,
    audio_sample_rate: int | None = None,
    audio_bitrate: int | None = None,
    overwrite: bool = False,
    metadata: dict[str, str] | None = None,
    plan: OutputPlan | None = None,
) -> MuxResult:
    """Write ``output_path``: the video stream of ``video_path`` copied bit-exactly plus ``waveform`` as AAC.

    waveform
        ``[samples]`` or ``[channels, samples]`` float at ``sample_rate``; padded with silence or cut to the video's
        duration.
    mix_original, original_gain, generated_gain
        With ``mix_original`` the video's first audio track is mixed in: ``generated_gain * generated +
        original_gain * original`` (linear gains).  A video without audio simply gets the generated track.  If the
        mix would clip, it is scaled down to a peak of 1 (reported in the result).
    audio_sample_rate
        Rate of the AAC track; default: the original track's when mixing (so its bandwidth is kept), else
        ``sample_rate``.
    metadata
        Container tags (see :func:`generation_metadata`: the workflow and the generation settings).
    plan
        How the picture goes in (:func:`~.output_plan.plan_output`, made before generating); by default planned
        here for ``output_path``: copied when its container takes the codec, else re-encoded as H.264.
    """
    source = check_video_file(video_path)
    target = Path(output_path).expanduser()
    if target.suffix.lower() not in CONTAINER_FORMATS:
        raise ValueError(f"cannot write video as '{target.suffix}': use one of {', '.join(CONTAINER_FORMATS)}")
    if source.resolve() == target.resolve():
        raise ValueError(f"the output {target} is the input video; write to another file")
    generated = _as_channels_first(waveform)
    for name, gain in (("original_gain", original_gain), ("generated_gain", generated_gain)):
        if not math.isfinite(gain):
            raise ValueError(f"{name} must be a finite number, got {gain}")

    with _open(source) as src:
        start, end = _packet_span(src, _video_stream(src, source), source)
    duration = end - start
    original = None
    if mix_original:
        with _open(source) as src:
            original = _original_audio(src, source, start, audio_sample_rate)

    rate = int(audio_sample_rate or (original[1] if original is not None else sample_rate))
    if rate != sample_rate:
        generated = resample(generated, int(sample_rate), rate)
    samples = round(duration * rate)
    channels = original[0].shape[0] if original is not None else min(generated.shape[0], 2)
    audio = generated_gain * _fit_length(_match_channels(generated.numpy(), channels), samples)
    if original is not None:
        audio = audio + original_gain * _fit_length(_match_channels(original[0], channels), samples)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    normalized = peak > 1.0
    if normalized:
        audio = audio / peak
    audio = audio.astype(np.float32, copy=False)

    plan = plan if plan is not None else plan_output(source, target)
    with atomic_output(target, overwrite=overwrite) as tmp:
        if plan.reencode:
            with temporary_path(tmp.parent, f".{target.stem}.", ".picture.mp4") as picture:
                reencode_picture(source, picture)
                _write(picture, tmp, plan.container, audio, rate, audio_bitrate, metadata)
        else:
            _write(source, tmp, plan.container, audio, rate, audio_bitrate, metadata)
    return MuxResult(path=target, duration=duration, audio_sample_rate=rate, audio_channels=channels,
                     mixed_original=original is not None, normalized=normalized, reencoded=plan.reencode)


def generation_metadata(settings: dict[str, Any] | None = None, prompt: Any = None,
                        workflow: Any = None) -> dict[str, str]:
    """Container tags for a generated file, as ComfyUI's SaveVideo writes them: ``prompt`` (the API graph) and
    ``workflow`` (the editor's graph) as JSON, plus ``vssflow`` with the generation settings (seed, solver,
    checkpoint, ...) so a take can be regenerated alone."""
    import json

    tags = {}
    for key, value in (("prompt", prompt), ("workflow", workflow), ("vssflow", settings)):
        if value is not None:
            tags[key] = json.dumps(value, sort_keys=key == "vssflow", default=str)
    return tags


# A minimal ASS header: FFmpeg's mov_text writer reads the default style from it (the tx3g sample description).
_MOV_TEXT_HEADER = (
    "[Script Info]\r\nScriptType: v4.00+\r\nPlayResX: 384\r\nPlayResY: 288\r\n\r\n[V4+ Styles]\r\nFormat: Name, "
    "Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, "
    "StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, "
    "Encoding\r\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\r\n\r\n"
    "[Events]\r\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\r\n")


def add_subtitle_track(path: str | os.PathLike, cues: list[tuple[float, float, str]], language: str = "eng") -> Path:
    """Rewrite the MP4/MOV ``path`` (atomically, in place) with a soft subtitle track (mov_text) of ``cues``
    ``(start, end, text)`` in seconds, every other stream copied as it is: players show what is said."""
    import struct

    import av

    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".mov", ".m4v"):
        raise ValueError(f"a mov_text subtitle track needs an .mp4 or .mov file, not {path.suffix}; write a sidecar "
                         ".srt instead")
    millis = Fraction(1, 1000)
    with atomic_output(path, overwrite=True) as tmp:
        with _open(path) as src, av.open(str(tmp), "w", format="mp4" if path.suffix.lower() != ".mov" else "mov") \
                as out:
            out.metadata.update(src.metadata)
            copied = {s.index: out.add_stream_from_template(s, opaque=True) for s in src.streams
                      if s.type in ("video", "audio")}
            for s in src.streams:
                if s.index in copied:
                    copied[s.index].metadata.update(s.metadata)
            text = out.add_stream("mov_text")
            text.codec_context.subtitle_header = _MOV_TEXT_HEADER.encode()
            text.time_base = millis
            text.metadata["language"] = language
            for packet in src.demux(*[s for s in src.streams if s.index in copied]):
                check_interrupted()
                if packet.dts is None:
                    continue
                packet.stream = copied[packet.stream.index]
                out.mux(packet)
            for start, end, words in sorted(cues):
                data = words.encode("utf-8")[:65535]
                packet = av.Packet(struct.pack(">H", len(data)) + data)  # tx3g sample: length, then the text
                packet.stream, packet.time_base = text, millis
                packet.pts = packet.dts = round(start * 1000)
                packet.duration = max(1, round((end - start) * 1000))
                out.mux(packet)
    return path
