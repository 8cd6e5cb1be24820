"""Frames sampled from real (tiny) video files and from frames in memory are the right frames at the right times.

Every test video is written here with PyAV; each frame's colour encodes its index (``synthetic.read_counter``), so
what comes out of the sampler can be checked against the index the sampler claims, and against ground truth computed
from the times the frames were written at.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch

from vssflow_core.config import SEQUENCE
from vssflow_core.video import (
    InMemoryVideo,
    VideoFrames,
    clip_frames,
    open_video,
    sample_frames,
    synchformer_frames,
)
from vssflow_core.video.synthetic import make_counter_video, read_counter

NTSC_FILM = Fraction(24000, 1001)
NTSC = Fraction(30000, 1001)

# name -> (rate, frame count): a few seconds each, 64x48, so the whole module runs in seconds.
CFR = {
    "23.976": (NTSC_FILM, 72),
    "25": (Fraction(25), 75),
    "29.97": (NTSC, 90),
    "60": (Fraction(60), 180),
    "0.5": (Fraction(1, 2), 4),
    "240": (Fraction(240), 480),
}
# 30 fps for 1 s, 10 fps for 1 s, then 59 fps: the average rate (25.1) says nothing about where frames are.
VFR_TIMES = [round(t, 3) for t in np.concatenate([np.arange(30) / 30, 1 + np.arange(10) / 10, 2 + np.arange(20) / 59])]
READERS = ["decord", "pyav"]
# Other containers and codecs at 29.97 fps: Matroska and AVI store no duration for the last frame, WebM is VP9.
CONTAINERS = {"mkv": "libx264", "avi": "mpeg4", "mov": "libx264", "webm": "libvpx-vp9"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    out = {name: Path(make_counter_video(d / f"cfr_{name}.mp4", n, rate)) for name, (rate, n) in CFR.items()}
    out["vfr"] = Path(make_counter_video(d / "vfr.mp4", timestamps=VFR_TIMES))
    out["odd"] = Path(make_counter_video(d / "odd.mp4", 25, 25, width=161, height=121))
    out["rot90"] = Path(make_counter_video(d / "rot90.mp4", 20, 25, width=48, height=64, rotation=90, marker=True))
    out["rot270"] = Path(make_counter_video(d / "rot270.mp4", 20, 25, width=48, height=64, rotation=-90, marker=True))
    out["tag90"] = Path(make_counter_video(d / "tag90.mkv", 20, 25, width=48, height=64, rotate_tag=90, marker=True))
    out["plain_marker"] = Path(make_counter_video(d / "plain.mp4", 20, 25, width=48, height=64, marker=True))
    for ext, codec in CONTAINERS.items():
        out[ext] = Path(make_counter_video(d / f"container.{ext}", 60, NTSC, codec=codec))
    out["long"] = Path(make_counter_video(d / "long.mp4", 300, 30, width=32, height=24, keyframe_interval=30))  # 10 s
    return out


def counters(frames: torch.Tensor) -> list[int]:
    return [read_counter(f) for f in frames]


def check_consistent(r: VideoFrames) -> None:
    """The frames are the ones the result says, padding is black and at the end."""
    assert counters(r.frames) == r.source_indices.tolist()
    assert r.num_real == int((r.source_indices >= 0).sum())
    assert (r.source_indices[: r.num_real] >= 0).all() and (r.source_indices[r.num_real :] == -1).all()
    if r.num_padded:
        assert int(r.frames[r.num_real :].abs().sum()) == 0


def official_clip_ids(path: Path) -> list[int]:
    """Frame ids of the official CLIP extractor, computed the way it does: decord's avg fps and frame count."""
    import decord

    vr = decord.VideoReader(str(path), num_threads=1, ctx=decord.cpu(0))
    n, raw_fps = len(vr), vr.get_avg_fps()
    ids = [round(i * raw_fps / 10) for i in range(100)]
    return [x for x in ids if 0 <= x <= n - 1]


def ffmpeg_fps_filter_ids(path: Path, fps: int = 25) -> list[int]:
    """The frames FFmpeg's ``fps`` filter outputs (what torio's ``frame_rate=25`` gives the Synchformer extractor)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        graph = av.filter.Graph()
        src = graph.add_buffer(template=stream)
        flt = graph.add("fps", f"fps={fps}")
        sink = graph.add("buffersink")
        src.link_to(flt)
        flt.link_to(sink)
        graph.configure()
        out: list[int] = []

        def drain() -> None:
            while True:
                try:
                    frame = sink.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                out.append(read_counter(frame.to_ndarray(format="rgb24")))

        for frame in c.decode(stream):
            src.push(frame)
            drain()
        src.push(None)
        drain()
    return out


# --- constant frame rates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", list(CFR))
def test_clip_frames_follow_the_official_rule(videos: dict[str, Path], name: str, reader: str) -> None:
    r = clip_frames(videos[name], backend=reader, size=(32, 24))
    check_consistent(r)
    assert r.backend == reader and r.rule == "official"
    assert len(r) == SEQUENCE.clip_frames == 100 and r.fps == SEQUENCE.clip_fps
    assert tuple(r.frames.shape) == (100, 24, 32, 3)
    expected = official_clip_ids(videos[name])
    assert r.source_indices[: r.num_real].tolist() == expected
    assert r.num_real == len(expected)
    rate, n = CFR[name]
    assert r.source_fps == pytest.approx(float(rate), rel=1e-6)
    assert r.duration == pytest.approx(n / float(rate), abs=1e-3)
    assert r.times.tolist() == pytest.approx((np.arange(100) / 10).tolist())
    # The frame used is the nearest one to each instant (ground truth: frame k was written at k / rate).
    written = r.source_indices[: r.num_real] / float(rate)
    assert np.all(np.abs(written - r.times[: r.num_real]) <= 0.5 / float(rate) + 1e-6)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", list(CFR))
def test_shown_rule_gives_the_frame_on_screen(videos: dict[str, Path], name: str, reader: str) -> None:
    rate, n = CFR[name]
    r = sample_frames(videos[name], 10, rule="shown", backend=reader)
    check_consistent(r)
    assert r.num_real == len(r)  # duration=None: up to the end, nothing padded
    expected = np.floor(np.arange(len(r)) / 10 * float(rate) + 1e-6).astype(int)
    assert r.source_indices.tolist() == expected.tolist()
    assert len(r) == int(np.ceil(n / float(rate) * 10 - 1e-9))
    assert r.source_times == pytest.approx(expected / float(rate), abs=1e-4)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", [*CFR, "vfr"])
def test_synchformer_rule_matches_ffmpegs_fps_filter(videos: dict[str, Path], name: str, reader: str) -> None:
    expected = ffmpeg_fps_filter_ids(videos[name])
    r = synchformer_frames(videos[name], duration=None, backend=reader, size=16)
    check_consistent(r)
    assert r.rule == "fps_filter" and r.fps == SEQUENCE.synch_fps
    assert r.source_indices.tolist() == expected


@pytest.mark.parametrize("reader", READERS)
def test_synchformer_window_is_250_frames_padded_with_black(videos: dict[str, Path], reader: str) -> None:
    r = synchformer_frames(videos["29.97"], backend=reader)
    check_consistent(r)
    assert tuple(r.frames.shape) == (SEQUENCE.synch_frames, 224, 224, 3)
    assert r.num_real == 75  # 3 s of video at 25 fps
    assert r.num_padded == 175


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("ext", list(CONTAINERS))
def test_other_containers(videos: dict[str, Path], ext: str, reader: str) -> None:
    r = clip_frames(videos[ext], backend=reader, size=16)
    check_consistent(r)
    assert r.source_indices[: r.num_real].tolist() == official_clip_ids(videos[ext])
    s = synchformer_frames(videos[ext], duration=None, backend=reader, size=16)
    check_consistent(s)
    assert s.source_indices.tolist() == ffmpeg_fps_filter_ids(videos[ext])
    assert s.duration == pytest.approx(60 / float(NTSC), abs=1e-3)


# --- variable frame rate --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
def test_variable_frame_rate_uses_timestamps(videos: dict[str, Path], reader: str) -> None:
    with open_video(videos["vfr"], reader) as src:
        assert src.backend == reader
        assert not src.constant_rate
        assert src.timestamps == pytest.approx(np.array(VFR_TIMES), abs=1e-4)
        r = sample_frames(src, 10)
    check_consistent(r)
    assert r.rule == "shown"
    written = np.array(VFR_TIMES)
    truth = [int(np.nonzero(written <= t + 1e-6)[0][-1]) for t in r.times]
    assert r.source_indices.tolist() == truth
    # What index math from the average rate would have picked instead, for the record: it is wrong here.
    naive = [round(i * src.average_fps / 10) for i in range(len(r))]
    assert naive != truth


@pytest.mark.parametrize("reader", READERS)
def test_window_start_and_duration(videos: dict[str, Path], reader: str) -> None:
    r = sample_frames(videos["60"], 10, start=1.0, duration=2.5, rule="shown", backend=reader)
    check_consistent(r)
    assert len(r) == 25 and r.num_real == 20  # the video ends at 3 s
    assert r.times[:3].tolist() == pytest.approx([1.0, 1.1, 1.2])
    assert r.source_indices[:20].tolist() == [60 + 6 * k for k in range(20)]
    r = sample_frames(videos["vfr"], 10, start=1.5, duration=0.5, backend=reader)
    assert r.source_indices.tolist() == [35, 36, 37, 38, 39]


@pytest.mark.parametrize("reader", READERS)
def test_window_late_in_a_long_video_seeks(videos: dict[str, Path], reader: str) -> None:
    # 10 s at 30 fps with a keyframe every second: a window at 6.55 s makes the PyAV reader seek instead of decoding
    # from the start, and the frames must still be exactly the ones the timeline picked.
    r = sample_frames(videos["long"], 10, start=6.55, duration=4.0, backend=reader)
    check_consistent(r)
    assert r.rule == "official" and len(r) == 40 and r.num_real == 35
    assert r.source_indices[:4].tolist() == [round(6.55 * 30 + i * 3) for i in range(4)]


# --- geometry -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
def test_odd_sizes_and_both_resize_modes(videos: dict[str, Path], reader: str) -> None:
    native = sample_frames(videos["odd"], 25, backend=reader)
    check_consistent(native)
    assert tuple(native.frames.shape) == (25, 121, 161, 3)
    stretched = sample_frames(videos["odd"], 25, size=224, backend=reader)
    assert tuple(stretched.frames.shape) == (25, 224, 224, 3)
    cropped = sample_frames(videos["odd"], 25, size=224, resize="short_side_center_crop", backend=reader)
    assert tuple(cropped.frames.shape) == (25, 224, 224, 3)
    check_consistent(stretched)
    check_consistent(cropped)
    rect = sample_frames(videos["odd"], 25, size=(40, 20), resize="short_side_center_crop", backend=reader)
    assert tuple(rect.frames.shape) == (25, 20, 40, 3)


@pytest.mark.parametrize("reader", ["auto", "pyav"])
@pytest.mark.parametrize("name", ["rot90", "rot270", "tag90"])
def test_rotated_video_comes_out_upright(videos: dict[str, Path], name: str, reader: str) -> None:
    r = sample_frames(videos[name], 25, backend=reader)
    check_consistent(r)
    assert r.backend == "pyav"  # decord 0.6 scrambles 90/270 degree rotations, so auto hands these to PyAV
    assert tuple(r.frames.shape[1:]) == (64, 48, 3)  # portrait, as displayed
    reference = sample_frames(videos["plain_marker"], 25, backend="pyav")  # the same pictures stored upright
    assert torch.equal(_marker_map(r.frames), _marker_map(reference.frames))


def _marker_map(frames: torch.Tensor) -> torch.Tensor:
    """Where each frame differs strongly from its own background colour (the top-left marker)."""
    f = frames.to(torch.int16)
    bg = f.flatten(1, 2).median(dim=1).values[:, None, None, :]
    return (f - bg).abs().amax(-1) > 100


def test_decord_refuses_rotated_files(videos: dict[str, Path]) -> None:
    from vssflow_core.video import VideoBackendError

    with pytest.raises(VideoBackendError, match="rotation"):
        open_video(videos["rot90"], "decord")


def test_output_layout_and_dtype(videos: dict[str, Path]) -> None:
    nhwc = sample_frames(videos["25"], 10, size=(32, 24))
    nchw = sample_frames(videos["25"], 10, size=(32, 24), layout="NCHW", dtype=torch.float32)
    assert nchw.frames.dtype == torch.float32 and tuple(nchw.frames.shape) == (30, 3, 24, 32)
    assert torch.allclose(nchw.frames, nhwc.frames.permute(0, 3, 1, 2).float() / 255)
    assert counters(nchw.frames) == nhwc.source_indices.tolist()
    assert nhwc.real_mask.all()


def test_readers_agree(videos: dict[str, Path]) -> None:
    for name in ["29.97", "vfr", "odd"]:
        a = sample_frames(videos[name], 10, size=(32, 24), backend="decord")
        b = sample_frames(videos[name], 10, size=(32, 24), backend="pyav")
        assert a.source_indices.tolist() == b.source_indices.tolist()
        # Two FFmpeg versions convert YUV to RGB with slightly different rounding.
        assert (a.frames.int() - b.frames.int()).abs().max() <= 3


# --- frames in memory -----------------------------------------------------------------------------------------------


def decode_all(path: Path) -> tuple[torch.Tensor, Fraction, list[float]]:
    """What ComfyUI's LoadVideo / GetVideoComponents hand over: all frames as float 0..1, and the frame rate."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames, times = [], []
        for frame in c.decode(stream):
            frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
            times.append(float(frame.time))
        rate = stream.average_rate
    return torch.stack(frames).float() / 255.0, rate, times


@pytest.mark.parametrize("name", ["23.976", "25", "29.97", "60", "0.5", "odd"])
def test_image_batch_with_fps_gives_the_file_frames(videos: dict[str, Path], name: str) -> None:
    images, rate, _ = decode_all(videos[name])
    from_file = clip_frames(videos[name], backend="pyav")
    from_memory = clip_frames(images, source_fps=float(rate))
    assert from_memory.backend == "memory" and from_memory.rule == "official"
    assert from_memory.source_indices.tolist() == from_file.source_indices.tolist()
    assert torch.equal(from_memory.frames, from_file.frames)  # same uint8 values, same resize
    sync_file = synchformer_frames(videos[name], backend="pyav")
    sync_memory = synchformer_frames(images, source_fps=rate)
    assert torch.equal(sync_memory.frames, sync_file.frames)


def test_image_batch_with_timestamps_handles_variable_frame_rate(videos: dict[str, Path]) -> None:
    images, _, times = decode_all(videos["vfr"])
    from_file = sample_frames(videos["vfr"], 10, size=(32, 24), backend="pyav")
    from_memory = sample_frames(images, 10, size=(32, 24), timestamps=times)
    assert from_memory.rule == "shown"
    assert from_memory.source_indices.tolist() == from_file.source_indices.tolist()
    assert torch.equal(from_memory.frames, from_file.frames)


def test_comfyui_video_and_components(videos: dict[str, Path]) -> None:
    images, rate, _ = decode_all(videos["29.97"])
    components = SimpleNamespace(images=images, frame_rate=rate, audio=None, metadata=None)

    class FakeVideo:  # the part of comfy_api's VideoInput the sampler uses
        def get_components(self) -> SimpleNamespace:
            return components

    expected = clip_frames(videos["29.97"], backend="pyav")
    for source in (FakeVideo(), components):
        r = clip_frames(source)
        assert r.source_indices.tolist() == expected.source_indices.tolist()
        assert torch.equal(r.frames, expected.frames)


def test_in_memory_uint8_and_channels_first() -> None:
    frames = torch.stack([torch.from_numpy(_counter(i)) for i in range(12)])  # uint8 [12, 48, 64, 3]
    src = InMemoryVideo(frames, fps=6)
    r = sample_frames(src, 3)
    assert r.source_indices.tolist() == [0, 2, 4, 6, 8, 10]
    assert counters(r.frames) == r.source_indices.tolist()
    r2 = sample_frames(frames.permute(0, 3, 1, 2).float() / 255, 3, source_fps=6)
    assert torch.equal(r2.frames, r.frames)


def _counter(i: int) -> np.ndarray:
    from vssflow_core.video.synthetic import counter_picture

    return counter_picture(i, 64, 48)
