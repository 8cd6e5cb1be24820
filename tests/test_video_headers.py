"""What a file's headers claim against what it holds: the frames that are there decide.

An MP4 whose movie, track and media headers (``mvhd``, ``tkhd``, ``mdhd``) claim 10 hours while its sample tables
hold 2 s of frames is a 2 s video: it is read, muxed and generated as 2 s, by every reader, and not refused as
truncated (its sample tables list no frame that is missing) nor as too long.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mp4_boxes import field
import soundfile as sf

from test_windows import write_video
from tiny_models import build_tiny_components
from vssflow_core.generate import main as generate_main
from vssflow_core.media import video_duration
from vssflow_core.video import open_video, resolve_video_input

CLAIMED_S = 10 * 3600
HELD_S = 2.0


@pytest.fixture(scope="module")
def ten_hour_header(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("headers")
    data = write_video(folder / "two_seconds.mp4", HELD_S).read_bytes()
    for name, scale in (("mvhd.duration", "mvhd.timescale"), ("trak0/tkhd.duration", "mvhd.timescale"),
                        ("trak0/mdhd.duration", "trak0/mdhd.timescale")):
        data = field(data, name).write(data, CLAIMED_S * field(data, scale).read(data))
    path = folder / "claims_ten_hours.mp4"
    path.write_bytes(data)
    return path


def test_the_headers_really_claim_ten_hours(ten_hour_header):
    data = ten_hour_header.read_bytes()
    scale = field(data, "trak0/mdhd.timescale").read(data)
    assert field(data, "trak0/mdhd.duration").read(data) / scale == CLAIMED_S


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_every_reader_reads_the_two_seconds_it_holds(ten_hour_header, backend):
    with open_video(ten_hour_header, backend) as reader:
        assert reader.end_time == pytest.approx(HELD_S)
        assert reader.num_frames == round(HELD_S * 10)


def test_it_is_muxed_and_generated_as_two_seconds(ten_hour_header, tmp_path):
    assert resolve_video_input(path=ten_hour_header).duration == pytest.approx(HELD_S)
    assert video_duration(ten_hour_header) == pytest.approx(HELD_S)
    weights = build_tiny_components(tmp_path / "models")
    args = ["--video", str(ten_hour_header), "-o", str(tmp_path / "take.mp4"), "--wav", str(tmp_path / "take.wav"),
            "--device", "cpu", "-q", "--solver", "euler", "--steps", "2", "--models-dir", str(tmp_path / "none")]
    for component, path in weights.items():
        args += [f"--{component}", str(path)]
    assert generate_main(args) == 0
    sound, rate = sf.read(str(tmp_path / "take.wav"))
    assert len(sound) == round(HELD_S * rate)
    assert video_duration(tmp_path / "take.mp4") == pytest.approx(HELD_S)
