"""Video handed over by a graph: one source out of VIDEO / IMAGE + frame rate / file, and videos written as files."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch

from test_media_mux import decoded_audio, make_video_with_audio, video_packet_digest
from vssflow_core.media import materialize_video, video_duration, write_frames_video
from vssflow_core.windows import VideoTooLongError
from vssflow_core.video import (InvalidFrameRateError, open_video, preview_frames, resolve_video_input,
                                video_file_of)
from vssflow_core.video.synthetic import make_counter_video, read_counter

VFR_TIMES = [round(t, 3) for t in np.cumsum([0] + [1 / 30] * 20 + [1 / 12] * 12 + [1 / 20] * 16)[:-1]]


class FileVideo:
    """Like ComfyUI's VideoFromFile: a file (or BytesIO), optionally trimmed."""

    def __init__(self, source, trim=(0.0, 0.0)):
        self.source, self.trim = source, trim

    def get_stream_source(self):
        return self.source

    def get_active_trim_window(self):
        return self.trim

    def get_components(self):
        with av.open(str(self.source)) as c:
            frames = [torch.from_numpy(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
            rate = c.streams.video[0].average_rate
        return SimpleNamespace(images=torch.stack(frames).float() / 255, frame_rate=Fraction(rate), audio=None)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "25": Path(make_counter_video(d / "c25.mp4", 50, 25)),
        "vfr": Path(make_counter_video(d / "vfr.mp4", timestamps=VFR_TIMES)),
        "long": Path(make_counter_video(d / "long.mp4", 264, 24, keyframe_interval=24)),
        "sound": make_video_with_audio(d / "sound.mp4", seconds=2.0),
    }


def test_exactly_one_source(clips):
    with pytest.raises(ValueError, match="no video given"):
        resolve_video_input()
    with pytest.raises(ValueError, match="a VIDEO and a file were both given"):
        resolve_video_input(video=FileVideo(str(clips["25"])), path=clips["25"])


@pytest.mark.parametrize("rate", [None, 0, 0.0])
def test_images_need_their_frame_rate(rate):
    with pytest.raises(InvalidFrameRateError, match="needs its frame rate"):
        resolve_video_input(images=torch.zeros(10, 8, 8, 3), frame_rate=rate)
    with pytest.raises(InvalidFrameRateError, match="positive"):
        resolve_video_input(images=torch.zeros(10, 8, 8, 3), frame_rate=-24)


@pytest.mark.parametrize("rate", [24, 25, 30000 / 1001, 60, 7.5])
def test_images_are_timed_by_their_frame_rate(rate):
    r = resolve_video_input(images=torch.rand(45, 16, 20, 3), frame_rate=rate)
    assert r.origin == "images" and r.path is None and r.constant_rate
    assert r.duration == pytest.approx(45 / rate) and r.fps == pytest.approx(rate)
    assert (r.width, r.height, r.num_frames) == (20, 16, 45)


def test_file_backed_video_is_read_from_its_file(clips):
    r = resolve_video_input(video=FileVideo(str(clips["vfr"])))
    assert r.origin == "VIDEO file" and r.path == clips["vfr"] and r.source == clips["vfr"]
    assert not r.constant_rate  # the file's own timestamps, not an average rate


def test_other_videos_are_read_from_their_components(clips):
    for video in (FileVideo(io.BytesIO(clips["25"].read_bytes())),  # in memory
                  FileVideo(str(clips["25"]), trim=(0.4, 1.0)),  # a trimmed view: its frames are not the file's
                  FileVideo(str(clips["25"].with_name("gone.mp4")))):  # no such file any more
        assert video_file_of(video) is None
    r = resolve_video_input(video=FileVideo(str(clips["25"]), trim=(0.4, 1.0)))
    assert r.origin == "VIDEO frames" and r.path is None and r.duration == pytest.approx(2.0)  # this stub ignores trims
    r = resolve_video_input(video=SimpleNamespace(images=torch.rand(30, 8, 8, 3), frame_rate=Fraction(15)))
    assert r.origin == "VIDEO frames" and r.duration == pytest.approx(2.0)


def test_clip_longer_than_the_maximum_is_refused_early(clips):
    assert resolve_video_input(path=clips["long"]).duration == pytest.approx(11.0)  # windows cover it
    with pytest.raises(VideoTooLongError, match="11.00 s long, longer than the maximum of 5 s"):
        resolve_video_input(path=clips["long"], max_duration=5)
    assert resolve_video_input(path=clips["long"], sequence=None, max_duration=5).duration == pytest.approx(11.0)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_readers_and_muxer_agree_on_a_variable_rate_clip(clips, backend):
    """The wav is as long as the reader says and the mp4's picture as long as the muxer says: they must agree."""
    with open_video(clips["vfr"], backend) as reader:
        assert reader.end_time == pytest.approx(video_duration(clips["vfr"]), abs=1e-6)


def test_preview_frames_are_the_10_fps_clip_frames(clips):
    r = resolve_video_input(path=clips["25"])
    frames = preview_frames(r, max_side=32)
    assert frames.dtype == torch.float32 and tuple(frames.shape) == (20, 24, 32, 3)
    assert [read_counter(f) for f in frames] == [round(i * 2.5) for i in range(20)]


@pytest.mark.parametrize("fps", [24, 25, Fraction(30000, 1001), 29.97, 60, 7.5])
def test_written_video_lasts_exactly_its_frames(tmp_path, fps):
    path = write_frames_video(tmp_path / "v.mp4", torch.rand(30, 48, 64, 3), fps)
    assert video_duration(path) == pytest.approx(30 / float(fps), abs=1e-6)
    with open_video(path, "pyav") as reader:
        assert reader.num_frames == 30 and reader.constant_rate


def test_written_video_keeps_odd_sizes_its_frames_and_its_sound(tmp_path):
    frames = torch.stack([torch.from_numpy(np.full((23, 31, 3), i * 20, np.uint8)) for i in range(10)])
    sound = (torch.sin(torch.arange(30_000) / 10.0) * 0.2)[None, None].expand(1, 2, -1)
    path = write_frames_video(tmp_path / "odd.mp4", frames, 10, audio=(sound, 16_000))
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert (stream.width, stream.height, stream.codec_context.pix_fmt) == (31, 23, "yuv444p")
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert [int(np.median(f)) for f in decoded] == pytest.approx([i * 20 for i in range(10)], abs=2)
    audio, rate, codec = decoded_audio(path)
    assert codec == "aac" and rate == 16_000 and abs(audio.shape[1] - 16_000) < 1024  # fitted to the 1 s video
    with pytest.raises(FileExistsError):
        write_frames_video(path, frames, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_materialize_video(tmp_path, clips):
    assert materialize_video(FileVideo(str(clips["sound"])), tmp_path) == clips["sound"]  # used as it is
    assert not list(tmp_path.iterdir())

    saved = []

    class Saving:  # a VIDEO that knows how to write itself (ComfyUI's save_to)
        def save_to(self, path, *args, **kwargs):
            saved.append(path)
            Path(path).write_bytes(clips["25"].read_bytes())

    out = materialize_video(Saving(), tmp_path, "a.mp4")
    assert out == tmp_path / "a.mp4" and video_packet_digest(out) == video_packet_digest(clips["25"])

    frames = SimpleNamespace(images=torch.rand(12, 16, 16, 3), frame_rate=Fraction(12),
                             audio={"waveform": torch.zeros(1, 1, 8000), "sample_rate": 8000})
    out = materialize_video(frames, tmp_path, "b.mp4")
    assert video_duration(out) == pytest.approx(1.0)
    assert decoded_audio(out)[1] == 8000

    again = materialize_video(FileVideo(str(clips["sound"])), tmp_path, "c.mp4", reencode=True)
    assert again == tmp_path / "c.mp4" and video_duration(again) == pytest.approx(2.0)
