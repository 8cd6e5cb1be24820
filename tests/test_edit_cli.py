"""The command line's editing, take and delivery options on tiny random components: a bad range fails before
anything is written, the kept track survives to the WAV sample for sample, takes are picked with their seed in the
video's tags, and the delivered loudness and peak are what was asked."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from test_media_mux import make_video_with_audio
from test_windows import write_video
from tiny_models import build_tiny_components
from vssflow_core.generate import main as generate_main
from vssflow_core.media.loudness import integrated_loudness, true_peak_db

RATE = 16_000


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> list[str]:
    paths = build_tiny_components(tmp_path_factory.mktemp("models"))
    args = ["--checkpoint", str(paths.pop("checkpoint"))]
    for name, path in paths.items():
        args += [f"--{name}", str(path)]
    return [*args, "--solver", "euler", "--steps", "2", "-q"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clip")
    video = write_video(root / "clip.mp4", 4.0)
    rng = np.random.default_rng(0)
    t = np.arange(4 * RATE) / RATE
    track = (0.2 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(str(root / "track.wav"), track, RATE, subtype="PCM_16")
    return {"video": video, "track": root / "track.wav", "with_sound": make_video_with_audio(root / "sound.mp4", 4.0)}


@pytest.mark.parametrize("ranges, message", [
    ("3.5-2.0", "ends before it starts"),
    ("3.0-9.0", "outside the clip"),
    ("nan-2", "finite"),
    ("two-three", "not a number"),
])
def test_a_bad_range_exits_1_with_a_clear_error_and_writes_nothing(tmp_path, weights, clip, capsys, ranges, message):
    code = generate_main(["--video", str(clip["video"]), "--edit-audio", str(clip["track"]), "--regenerate", ranges,
                          "-o", str(tmp_path / "out.mp4"), "--wav", str(tmp_path / "out.wav"), *weights])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and message in err
    assert list(tmp_path.iterdir()) == []


def test_the_kept_track_reaches_the_wav_sample_for_sample(tmp_path, weights, clip):
    out = tmp_path / "fixed.wav"
    assert generate_main(["--video", str(clip["video"]), "--edit-audio", str(clip["track"]),
                          "--regenerate", "1.0-2.0", "--regenerate", "3-3.5", "--wav", str(out), *weights]) == 0
    written, _ = sf.read(str(out), dtype="int16")
    original, _ = sf.read(str(clip["track"]), dtype="int16")
    t = (np.arange(original.size) + 0.5) / RATE
    kept = (t < 1.0) | ((t >= 2.0) & (t < 3.0)) | (t >= 3.5)
    assert np.array_equal(written[kept], original[kept])
    assert not np.array_equal(written[~kept], original[~kept])


def test_a_take_is_picked_and_its_seed_travels_in_the_video(tmp_path, weights, clip, capsys):
    out = tmp_path / "take2.mp4"
    assert generate_main(["--video", str(clip["video"]), "--seed", "40", "--takes", "3", "--take", "2",
                          "-o", str(out), "--wav", str(tmp_path / "take2.wav"), *weights]) == 0
    assert "take 2 of 3, seed 41" in capsys.readouterr().out
    with av.open(str(out)) as container:
        settings = json.loads(container.metadata["vssflow"])
    assert settings["seed"] == 41 and settings["take"] == 2 and settings["solver"] == "euler"
    alone = tmp_path / "alone.wav"  # the reported seed regenerates the take alone
    assert generate_main(["--video", str(clip["video"]), "--seed", "41", "--wav", str(alone), *weights]) == 0
    np.testing.assert_allclose(sf.read(str(alone))[0], sf.read(str(tmp_path / "take2.wav"))[0], atol=2e-4)
    assert generate_main(["--video", str(clip["video"]), "--takes", "2", "--take", "3", "--wav",
                          str(tmp_path / "x.wav"), *weights]) == 1


@pytest.mark.parametrize("target", ["-14", "broadcast"])
def test_the_delivered_loudness_and_peak_are_what_was_asked(tmp_path, weights, clip, target):
    out, wav = tmp_path / "out.mp4", tmp_path / "out.wav"
    assert generate_main(["--video", str(clip["with_sound"]), "--init-audio", str(clip["track"]), "--strength", "0",
                          "--mix-original", "--loudness", target, "--true-peak", "-1.5", "-o", str(out),
                          "--wav", str(wav), *weights]) == 0
    goal = {"-14": -14.0, "broadcast": -23.0}[target]
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        mix = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)
        rate = stream.rate
    assert abs(integrated_loudness(mix, rate) - goal) <= 0.5
    samples, wav_rate = sf.read(str(wav), dtype="float32")
    assert true_peak_db(samples, wav_rate) <= -1.5 + 0.1  # 16-bit rounding
