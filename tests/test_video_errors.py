"""Unusable inputs fail with a specific VideoError whose message names the file, the problem and the remedy."""

from __future__ import annotations

import os
import re
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vssflow_core.video import (
    CorruptVideoError,
    EmptyVideoError,
    InMemoryVideo,
    InvalidFrameRateError,
    NotAVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    VideoError,
    VideoNotFoundError,
    open_video,
    sample_frames,
)
from vssflow_core.video.pyav_reader import derive_fps
from vssflow_core.video.synthetic import make_counter_video, read_counter

BACKENDS = ["auto", "decord", "pyav"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    good = Path(make_counter_video(d / "good.mp4", 75, 25))  # 3 s, index at the end ('moov' after 'mdat')
    faststart = d / "faststart.mp4"  # the same packets, index moved to the front
    with av.open(str(good)) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = out
            dst.mux(packet)
    files = {"good": good, "faststart": faststart}
    for name, source in (("trunc_moov_end", good), ("trunc_faststart", faststart)):
        data = source.read_bytes()
        (d / f"{name}.mp4").write_bytes(data[: len(data) // 2])
        files[name] = d / f"{name}.mp4"
    files["empty"] = d / "empty.mp4"
    files["empty"].write_bytes(b"")
    files["garbage"] = d / "garbage.mp4"
    files["garbage"].write_bytes(np.random.default_rng(0).bytes(20_000))
    files["text"] = d / "notes.txt"
    files["text"].write_text("not a video at all\n")
    files["audio"] = d / "speech.wav"
    with wave.open(str(files["audio"]), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\0\0" * 16_000)
    return files


def raised(backend: str, path: Path, **kw: object) -> VideoError:
    with pytest.raises(VideoError) as info:
        sample_frames(path, 10, backend=backend, **kw)
    message = str(info.value)
    assert str(path) in message  # names the file
    assert info.value.path == str(path)
    return info.value


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_file(tmp_path: Path, backend: str) -> None:
    err = raised(backend, tmp_path / "nope.mp4")
    assert isinstance(err, VideoNotFoundError) and isinstance(err, FileNotFoundError)
    assert "no such file" in str(err)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_file(files: dict[str, Path], backend: str) -> None:
    err = raised(backend, files["empty"])
    assert isinstance(err, EmptyVideoError) and "0 bytes" in str(err)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["garbage", "text"])
def test_not_a_video(files: dict[str, Path], backend: str, name: str) -> None:
    err = raised(backend, files[name])
    assert type(err) is NotAVideoError and "not a video file" in str(err)


@pytest.mark.parametrize("backend", BACKENDS)
def test_audio_only_file(files: dict[str, Path], backend: str) -> None:
    err = raised(backend, files["audio"])
    assert isinstance(err, NoVideoStreamError) and isinstance(err, NotAVideoError)
    assert "audio-only" in str(err)


def test_a_folder_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(NotAVideoError, match="folder"):
        open_video(tmp_path)


def test_special_files_are_named_for_what_they_are(tmp_path: Path) -> None:
    """A FIFO would block the reader and a device never ends; /proc files report 0 bytes but have content."""
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    cases = {fifo: "named pipe (FIFO)", Path("/dev/urandom"): "a device", Path("/proc/cpuinfo"): "virtual file"}
    for path, kind in cases.items():
        with pytest.raises(NotAVideoError, match=re.escape(kind)) as err:
            open_video(path)
        assert str(path) in str(err.value) and "empty" not in str(err.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_with_index_at_the_end_cannot_be_opened(files: dict[str, Path], backend: str) -> None:
    err = raised(backend, files["trunc_moov_end"])
    assert type(err) is CorruptVideoError
    assert "(MP4/MOV)" in str(err) and "truncated" in str(err)


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_truncated_faststart_is_detected_against_the_declared_duration(files: dict[str, Path], backend: str) -> None:
    # decord refuses the file outright; PyAV decodes the first part *without any error*, so the reader compares what it
    # can read with the 3 s the file declares.
    err = raised(backend, files["trunc_faststart"])
    assert isinstance(err, TruncatedVideoError) and isinstance(err, CorruptVideoError)
    assert "3.00 s" in str(err) and "check_truncation=False" in str(err)


def test_truncated_faststart_with_decord_only(files: dict[str, Path]) -> None:
    err = raised("decord", files["trunc_faststart"])
    assert isinstance(err, CorruptVideoError)


def test_truncated_file_can_be_read_on_request(files: dict[str, Path]) -> None:
    r = sample_frames(files["trunc_faststart"], 10, duration=3.0, check_truncation=False)
    assert r.backend == "pyav"
    assert 0 < r.num_real < 30 and len(r) == 30
    assert [read_counter(f) for f in r.frames[: r.num_real]] == r.source_indices[: r.num_real].tolist()
    assert int(r.frames[r.num_real :].sum()) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_intact_copies_open(files: dict[str, Path], backend: str) -> None:
    for name in ("good", "faststart"):
        r = sample_frames(files[name], 10, backend=backend)
        assert r.num_real == 30


def test_zero_frame_rates() -> None:
    frames = torch.zeros(4, 8, 8, 3)
    with pytest.raises(InvalidFrameRateError, match="positive"):
        InMemoryVideo(frames, fps=0)
    with pytest.raises(InvalidFrameRateError, match="positive"):
        InMemoryVideo(frames, fps=Fraction(0, 1))
    with pytest.raises(InvalidFrameRateError, match="frame rate is needed"):
        InMemoryVideo(frames)
    with pytest.raises(InvalidFrameRateError):
        sample_frames(frames, 0, source_fps=25)
    # A file that declares no rate and has one frame: nothing to infer a rate from.
    with pytest.raises(InvalidFrameRateError, match="frame rate of zero"):
        derive_fps("still.mp4", None, np.zeros(1))
    assert derive_fps("x.mp4", None, np.arange(5) / 8.0) == pytest.approx(8.0)
    assert issubclass(InvalidFrameRateError, ValueError)


def test_bad_in_memory_input() -> None:
    with pytest.raises(VideoError, match="empty"):
        InMemoryVideo(torch.zeros(0, 8, 8, 3), fps=25)
    with pytest.raises(ValueError, match="timestamps"):
        InMemoryVideo(torch.zeros(3, 8, 8, 3), timestamps=[0.0, 0.1])
    with pytest.raises(ValueError, match="increasing"):
        InMemoryVideo(torch.zeros(3, 8, 8, 3), timestamps=[0.0, 0.2, 0.1])
    with pytest.raises(TypeError, match="cannot read frames"):
        sample_frames(12345, 10)
    with pytest.raises(ValueError, match="backend"):
        open_video(__file__, backend="opencv")
