"""The command line from subtitles: the lines spoken on the demo model, a sidecar .srt, a mov_text track, speech only;
bad speech arguments refused before anything is written."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf

from vssflow_core.generate import main as generate_main
from vssflow_core.text.subtitles import read_subtitles
from vssflow_core.video.synthetic import make_counter_video

SRT = "1\n00:00:01,000 --> 00:00:02,500\nALICE: Hello there\n\n2\n00:00:08,000 --> 00:00:09,500\nBOB: Hi Alice\n"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dub")
    video = make_counter_video(folder / "clip12.mp4", 120, 10)  # 12 s: two windows
    (folder / "lines.srt").write_text(SRT, encoding="utf-8")
    return folder, video


def test_generate_from_subtitles_with_sidecar_subtitle_track_and_speech_only(clip, tmp_path):
    folder, video = clip
    out, wav, srt = tmp_path / "dub.mp4", tmp_path / "dub.wav", tmp_path / "dub.srt"
    code = generate_main(["--video", str(video), "--subtitles", str(folder / "lines.srt"), "--checkpoint", "demo",
                          "--solver", "euler", "--steps", "1", "-o", str(out), "--wav", str(wav), "--srt", str(srt),
                          "--subtitle-track", "--speech-only", "-q"])
    assert code == 0
    assert read_subtitles(srt).rows() == read_subtitles(folder / "lines.srt").rows()
    with av.open(str(out)) as container:
        (stream,) = container.streams.subtitles
        assert stream.codec_context.name == "mov_text"
        texts = [bytes(p)[2:].decode() for p in container.demux(stream) if p.dts is not None and bytes(p)[2:]]
    assert texts == ["ALICE: Hello there", "BOB: Hi Alice"]
    samples, rate = sf.read(str(wav), dtype="float32")
    outside = np.r_[samples[: int(0.7 * rate)], samples[int(3.0 * rate): int(7.5 * rate)]]
    assert np.abs(outside).max() == 0.0  # speech only: silence outside the lines


@pytest.mark.parametrize("extra, message", [
    (["--voice", "ALICE=missing.wav"], "--voice names a voice of the subtitles; give --subtitles too"),
    (["--subtitles", "lines.srt", "--transcript", "Hi"], "either as --transcript or as --subtitles"),
    (["--subtitles", "lines.srt", "--voice", "ALICE"], "write it as NAME=reference.wav"),
    (["--speech-only"], "--speech-only needs speech"),
    (["--subtitles", "lines.srt", "--srt", "out.txt"], "must end in .srt"),
])
def test_bad_speech_arguments_are_refused_before_any_work(clip, tmp_path, capsys, monkeypatch, extra, message):
    folder, video = clip
    monkeypatch.chdir(folder)
    out = tmp_path / "never.mp4"
    assert generate_main(["--video", str(video), "-o", str(out), "-q", *extra]) == 1
    assert message in capsys.readouterr().err and not out.exists()
