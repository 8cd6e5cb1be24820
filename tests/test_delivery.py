"""The written files: one gain for the WAV and the video's track, nothing over the ceiling, the kept original
ducked under the speech lines, and the generation settings carried in the video's tags."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from tests.test_media_mux import decoded_audio, make_video_with_audio
from vssflow_core.media import mux_audio
from vssflow_core.media.delivery import prepare_tracks
from vssflow_core.media.loudness import Delivery, Ducking, integrated_loudness, true_peak_db
from vssflow_core.media.mux import generation_metadata, original_audio

RATE = 16_000


def loud_generation(seconds: float = 3.0) -> np.ndarray:
    """Clipping material, as the model's output was measured: 1% of the samples at full scale and beyond."""
    rng = np.random.default_rng(0)
    x = 0.5 * rng.standard_normal(round(seconds * RATE)).astype(np.float32)
    x[::100] = 1.4
    return x


def test_the_default_delivery_never_clips_and_generated_gain_reaches_the_wav():
    tracks = prepare_tracks(loud_generation(), RATE)
    assert true_peak_db(tracks.generated, RATE) <= -1.0
    assert tracks.mix is None and tracks.video_track[0] is tracks.generated
    quiet = prepare_tracks(0.01 * loud_generation(), RATE, generated_gain=0.5)
    np.testing.assert_allclose(quiet.generated[0], 0.005 * loud_generation(), rtol=1e-5)


def test_the_wav_and_the_mix_share_one_gain_and_stay_under_the_ceiling(tmp_path):
    video = make_video_with_audio(tmp_path / "v.mp4", seconds=3.0, rate=48_000)
    original = original_audio(video)
    assert original is not None and original[1] == 48_000
    generated = loud_generation()
    tracks = prepare_tracks(generated, RATE, delivery=Delivery(loudness=-14), original=original)
    mix, rate = tracks.video_track
    assert rate == 48_000 and mix.shape[0] == 2
    assert true_peak_db(mix, rate) <= -1.0 and true_peak_db(tracks.generated, RATE) <= -1.0
    assert abs(integrated_loudness(mix, rate) - (-14)) <= 0.5
    # the WAV is the generation times the gain the mix got, read at its rate
    wav_gain = tracks.generated[0] / generated
    mid = slice(RATE // 2, RATE // 2 + 10)
    assert np.all(wav_gain[mid] > 0)
    assert np.ptp(wav_gain[np.abs(generated) > 0.1][:50]) < 0.5  # a smooth gain, not a per-sample one


def test_the_original_is_ducked_under_the_lines_only(tmp_path):
    video = make_video_with_audio(tmp_path / "v.mp4", seconds=3.0, rate=48_000)
    original = original_audio(video)
    silent = np.zeros(3 * RATE, np.float32)
    ducking = Ducking(depth_db=20, attack_ms=50, release_ms=100)
    tracks = prepare_tracks(silent, RATE, original=original, lines=[(1.0, 2.0)], ducking=ducking)
    mix, rate = tracks.video_track

    def level(a: float, b: float) -> float:
        part = mix[0, int(a * rate):int(b * rate)]
        return 20 * np.log10(np.sqrt(np.mean(part ** 2)))

    assert level(1.2, 1.8) == pytest.approx(level(0.2, 0.8) - 20, abs=0.5)
    assert level(2.3, 2.9) == pytest.approx(level(0.2, 0.8), abs=0.5)


def test_the_video_carries_the_workflow_and_the_settings(tmp_path):
    video = make_video_with_audio(tmp_path / "v.mp4", seconds=1.0)
    settings = {"seed": 7, "solver": "euler", "checkpoint": "demo", "take": 2}
    tags = generation_metadata(settings, prompt={"1": {"class_type": "X"}}, workflow={"nodes": []})
    out = tmp_path / "out.mp4"
    mux_audio(video, np.zeros(RATE, np.float32), RATE, out, metadata=tags)
    with av.open(str(out)) as container:
        found = dict(container.metadata)
    assert json.loads(found["vssflow"]) == settings
    assert json.loads(found["prompt"]) == {"1": {"class_type": "X"}} and json.loads(found["workflow"]) == {"nodes": []}
    assert decoded_audio(out)[0].shape[-1] > 0
