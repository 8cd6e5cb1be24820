"""Every valid video can be written: its picture is copied when the container takes its codec, else re-encoded as
H.264 with a note naming the container that would keep it; an output without a suffix keeps the source's container.

The clips are encoded here by PyAV's bundled FFmpeg, in each codec the sweep found refused (ProRes, VP8, AV1 in WebM
and Matroska, QuickTime RLE); a codec this FFmpeg cannot encode is skipped with that reason.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vssflow_core.media import mux_audio, video_duration
from vssflow_core.media.output_plan import plan_output

SR = 16_000
FPS = 10
FRAMES = 10


def encoder_available(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


def encode_clip(path: Path, encoder: str, pix_fmt: str, pts: list[int] | None = None) -> Path:
    """A 64x48 clip of ``FRAMES`` flat frames at ``FPS`` (or at the given pts, in 1/FPS ticks)."""
    if not encoder_available(encoder):
        pytest.skip(f"this PyAV's FFmpeg has no {encoder} encoder, so no such clip can be made here")
    with av.open(str(path), "w") as out:
        stream = out.add_stream(encoder, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        stream.codec_context.time_base = Fraction(1, FPS)
        for i, t in enumerate(pts if pts is not None else range(FRAMES)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


# name: (encoder, pixel format, source suffix, {output suffix: whether the picture must be re-encoded})
CLIPS = {
    "ProRes": ("prores_ks", "yuv422p10le", ".mov", {".mp4": True, ".mov": False, ".mkv": False}),
    "VP8": ("libvpx", "yuv420p", ".webm", {".mp4": True, ".mov": True, ".mkv": False}),
    "AV1 in WebM": ("libsvtav1", "yuv420p", ".webm", {".mp4": False, ".mov": True, ".mkv": False}),
    "AV1 in Matroska": ("libsvtav1", "yuv420p", ".mkv", {".mp4": False, ".mov": True, ".mkv": False}),
    "QuickTime RLE": ("qtrle", "rgb24", ".mov", {".mp4": True, ".mov": False, ".mkv": True}),
}


def video_codec(path: Path) -> str:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.codec.canonical_name


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(float(f.pts * stream.time_base) for f in container.decode(stream))


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("codecs")
    made = {}
    for name, (encoder, pix_fmt, suffix, _) in CLIPS.items():
        if encoder_available(encoder):
            made[name] = encode_clip(folder / f"{name.replace(' ', '_')}{suffix}", encoder, pix_fmt)
    return made


def clip(clips: dict[str, Path], name: str) -> Path:
    if name not in clips:
        pytest.skip(f"this PyAV's FFmpeg has no {CLIPS[name][0]} encoder, so no {name} clip can be made here")
    return clips[name]


@pytest.mark.parametrize("name", CLIPS)
@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_every_codec_goes_into_every_container(name, suffix, clips, tmp_path):
    source = clip(clips, name)
    reencode = CLIPS[name][3][suffix]
    plan = plan_output(source, tmp_path / f"out{suffix}")
    assert plan.reencode is reencode
    result = mux_audio(source, np.zeros(SR, np.float32), SR, tmp_path / f"out{suffix}", plan=plan)
    assert result.reencoded is reencode
    out = tmp_path / f"out{suffix}"
    assert video_codec(out) == ("h264" if reencode else video_codec(source))
    assert frame_times(out) == pytest.approx(frame_times(source), abs=1e-3)  # every frame, at its time
    assert video_duration(out) == pytest.approx(video_duration(source), abs=1e-3)
    if reencode:  # the note says what happened, why, and how to keep the picture unchanged
        assert plan.note is not None and "re-encoded as H.264" in plan.note and plan.codec in plan.note
        keeps = [s for s, again in CLIPS[name][3].items() if not again]
        assert all(s in plan.note for s in keeps)
    else:
        assert plan.note is None
        assert packets(out) == packets(source)  # copied bit for bit
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{suffix}"]  # no temporary file left


@pytest.mark.parametrize("name", CLIPS)
def test_an_output_without_a_suffix_keeps_the_source_container(name, clips, tmp_path):
    source = clip(clips, name)
    plan = plan_output(source, tmp_path / "out")
    own = {".webm": ".mkv"}.get(source.suffix, source.suffix)  # WebM takes no AAC: its Matroska parent does
    assert plan.path == tmp_path / f"out{own}" and not plan.reencode
    assert plan.note and plan.path.name in plan.note


def test_reencoding_keeps_a_variable_frame_rate(tmp_path):
    pts = [0, 1, 2, 5, 6, 12, 13, 14]  # pauses of 0.3 s and 0.6 s
    source = encode_clip(tmp_path / "vfr.mov", "qtrle", "rgb24", pts=pts)
    result = mux_audio(source, np.zeros(SR, np.float32), SR, tmp_path / "vfr.mp4")
    assert result.reencoded
    assert frame_times(tmp_path / "vfr.mp4") == pytest.approx([t / FPS for t in pts], abs=1e-3)


def test_unknown_suffix_is_refused_with_the_choices(clips, tmp_path):
    with pytest.raises(ValueError, match=r"\.mp4, \.m4v, \.mov, \.mkv"):
        plan_output(clip(clips, "ProRes"), tmp_path / "out.avi")


# --------------------------------------------------------------------------------------------------------------------
# The command line plans the output before it loads any weights
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    from tiny_models import build_tiny_components

    return build_tiny_components(tmp_path_factory.mktemp("models"))


def generate(video: Path, output: Path, weights: dict[str, Path], *extra: str) -> int:
    from vssflow_core.generate import main

    args = ["--video", str(video), "-o", str(output), "--device", "cpu", "-q", "--solver", "euler", "--steps", "2",
            "--models-dir", str(output.parent / "no_models"), *extra]
    for component, path in weights.items():
        args += [f"--{component}", str(path)]
    return main(args)


@pytest.mark.parametrize("name, suffix", [("ProRes", ".mp4"), ("VP8", ".mp4"), ("QuickTime RLE", ".mp4"),
                                          ("AV1 in WebM", ".mkv"), ("AV1 in Matroska", ".mp4")])
def test_the_command_line_writes_every_codec(name, suffix, clips, weights, tmp_path, capsys):
    source = clip(clips, name)
    assert generate(source, tmp_path / f"take{suffix}", weights) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    reencode = CLIPS[name][3][suffix]
    assert ("re-encoded as H.264" in err) is reencode  # a note in the log says so
    assert video_codec(tmp_path / f"take{suffix}") == ("h264" if reencode else video_codec(source))
    assert video_duration(tmp_path / f"take{suffix}") == pytest.approx(video_duration(source), abs=1e-3)


def test_the_command_line_keeps_the_source_container_when_given_none(clips, weights, tmp_path, capsys):
    assert generate(clip(clips, "ProRes"), tmp_path / "take", weights) == 0, capsys.readouterr().err
    assert "writing take.mov" in capsys.readouterr().err
    assert video_codec(tmp_path / "take.mov") == "prores"


@pytest.mark.parametrize("problem", ["plan", "long name"])
def test_the_command_line_refuses_an_unwritable_output_before_loading_weights(problem, clips, weights, tmp_path,
                                                                            monkeypatch, capsys):
    from vssflow_core.media import MuxError
    from vssflow_core.pipeline import VSSFlowPipeline

    def never(*args, **kwargs):
        raise AssertionError("weights were loaded before the output was checked")

    monkeypatch.setattr(VSSFlowPipeline, "load", never)
    output = tmp_path / "take.mp4"
    if problem == "plan":
        def refuse(*args, **kwargs):
            raise MuxError("this container cannot be written")

        monkeypatch.setattr("vssflow_core.media.output_plan.plan_output", refuse)
        expected = "this container cannot be written"
    else:
        output = tmp_path / ("t" * 300 + ".mp4")
        expected = "too long"
    assert generate(clip(clips, "ProRes"), output, weights) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
