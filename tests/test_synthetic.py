"""The synthetic data generator: the written mp4 files show and sound their events where the manifest says, talking
faces open their mouths with the speech, held-out clips follow the same rules, and everything is fixed by the seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vssflow_core.synthetic import (DatasetCounts, SceneSpec, audio_onsets, decode_clip, espeak_available,
                                    generate_dataset, mouth_opening, onset_f1, pearson)
from vssflow_core.synthetic.scenes import loudness_envelope
from vssflow_core.train.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
SPEC = SceneSpec(size=64, duration=3.0)
if os.environ.get("VSSFLOW_REQUIRE_ESPEAK") == "1" and not espeak_available():
    raise RuntimeError("VSSFLOW_REQUIRE_ESPEAK=1 but espeak-ng is not installed (apt-get install espeak-ng)")
needs_espeak = pytest.mark.skipif(not espeak_available(),
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    speech = 2 if espeak_available() else 0
    generate_dataset(root, DatasetCounts(sound=3, talk=speech, tts=speech // 2),
                     DatasetCounts(sound=2, talk=speech // 2), seed=7, spec=SPEC, progress=False)
    return root


def rows(root: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (root / f"{split}.jsonl").read_text().splitlines()]


def _level(audio: np.ndarray, rate: int, t0: float, t1: float) -> float:
    seg = audio[max(0, int(t0 * rate)):int(t1 * rate)]
    return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))


def check_sound_clip(root: Path, row: dict) -> None:
    frames, audio, rate = decode_clip(root / row["video"])
    fps = row["fps"]
    assert frames.shape == (round(SPEC.duration * fps), SPEC.size, SPEC.size, 3)
    assert abs(audio.shape[0] / rate - SPEC.duration) < 0.07
    geo = row["geometry"]
    events = row["events"]
    assert events and all(b["time"] - a["time"] >= 0.4 - 1e-9 for a, b in zip(events, events[1:]))
    # sound: silent just before every event, loud right after it; onsets found where the events are
    for e in events:
        before, after = _level(audio, rate, e["time"] - 0.045, e["time"] - 0.005), _level(audio, rate, e["time"],
                                                                                          e["time"] + 0.04)
        assert after > 8 * before, (row["id"], e)
    assert onset_f1(audio_onsets(audio, rate), [e["time"] for e in events], tolerance=0.03)["f1"] == 1.0
    # picture: each event happens on its frame
    x0, y0, x1, y1 = (int(round(v)) for v in geo["lamp_box"])
    lamp = frames[:, y0 + 2:y1 - 2, x0 + 2:x1 - 2].astype(float).mean(axis=(1, 2, 3))
    dark = np.median(lamp)
    heights = []
    for k in range(frames.shape[0]):  # lowest row of the ball (its colour differs from everything else)
        column = frames[k, :, max(0, int(geo["ball_x"] - 1)):int(geo["ball_x"] + 2)].astype(float)
        ball = np.flatnonzero(np.abs(column - column[2:3]).sum(axis=(1, 2)) > 60)
        ball = ball[ball < geo["floor_y"] - 1]
        heights.append(ball.max() if ball.size else -1)
    heights = np.asarray(heights)
    bar_row = frames[:, int(geo["bar_y"][0]) + 2, :, :].astype(float)
    is_bar = np.linalg.norm(bar_row - np.array([200.0, 200.0, 210.0]), axis=-1) < 30
    bar_x = np.array([np.flatnonzero(r).mean() if r.any() else np.nan for r in is_bar])
    for e in events:
        k = e["frame"]
        assert k == round(e["time"] * fps)
        if e["kind"] == "flash":
            lit = int(round(e["duration"] * fps))
            assert lamp[k - 1] < dark + 5 and (lamp[k:k + lit] > dark + 40).all(), (row["id"], e)
            assert lamp[k + lit] < dark + 5
        elif e["kind"] == "impact":  # the ball's lowest pixel reaches the floor on the impact frame, not before
            floor = heights.max()
            assert heights[k] == floor and heights[k - 2] < floor - 1, (row["id"], e, heights[k - 3:k + 3])
        else:  # the bar stands still until the event frame and moves right after it
            assert abs(bar_x[k] - bar_x[k - 1]) < 0.5 and abs(bar_x[k + 2] - bar_x[k]) > 0.5, (row["id"], e)


def check_talking_clip(root: Path, row: dict) -> None:
    frames, audio, rate = decode_clip(root / row["video"])
    geo = row["geometry"]
    opening = np.asarray(row["mouth_open"])
    assert len(opening) == frames.shape[0] and opening.max() == 1.0
    drawn = mouth_opening(frames, geo["mouth_box"], geo["mouth_color"])
    envelope = loudness_envelope(audio, rate, row["fps"], frames.shape[0])
    assert pearson(drawn, opening) > 0.95  # the picture shows the manifest's mouth
    assert pearson(drawn, envelope) > 0.9  # ... which follows the soundtrack's speech
    start, end = row["speech_start"], row["speech_end"]
    assert 0.2 <= start < end <= SPEC.duration - 0.1
    quiet = [k for k in range(frames.shape[0]) if k / row["fps"] < start - 0.05 or k / row["fps"] > end + 0.05]
    assert opening[quiet].max() == 0.0 and drawn[quiet].max() <= drawn.min() + 2
    assert _level(audio, rate, start, end) > 20 * _level(audio, rate, 0.0, start - 0.03)


def test_sound_clips_sound_and_show_their_events_on_time(dataset):
    train = [r for r in rows(dataset, "train") if r["task"] == "v2s"]
    assert len(train) == 3
    kinds = set()
    for row in train:
        check_sound_clip(dataset, row)
        kinds.update(e["kind"] for e in row["events"])
    assert kinds == {"impact", "flash", "motion"}  # seed 7 draws every kind


@needs_espeak
def test_talking_faces_open_their_mouths_with_the_speech(dataset):
    talk = [r for r in rows(dataset, "train") if r["task"] == "vtts"]
    assert len(talk) == 2 and len({r["transcript"] for r in talk}) == 2
    for row in talk:
        check_talking_clip(dataset, row)
    tts = [r for r in rows(dataset, "train") if r["task"] == "tts"]
    assert len(tts) == 1 and (dataset / tts[0]["audio"]).is_file() and "video" not in tts[0]


def test_heldout_clips_follow_the_same_rules_with_other_draws(dataset):
    train, heldout = rows(dataset, "train"), rows(dataset, "heldout")
    assert {r["id"].split("/")[0] for r in heldout} == {"heldout"}
    for row in heldout:
        (check_sound_clip if row["task"] == "v2s" else check_talking_clip)(dataset, row)
    first = lambda rs: next(r for r in rs if r["task"] == "v2s")  # noqa: E731
    assert first(train)["events"] != first(heldout)["events"]
    # the manifests are training manifests
    parsed = read_manifest(dataset / "train.jsonl")
    assert [r.task for r in parsed] == [r["task"] for r in train]
    assert all(r.audio.is_file() for r in parsed)


def test_the_data_set_is_a_function_of_the_seed(dataset, tmp_path):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    speech = 2 if espeak_available() else 0
    args = [sys.executable, "-m", "vssflow_core.synthetic", "--out", str(tmp_path), "--sound", "3", "--talk",
            str(speech), "--tts", str(speech // 2), "--heldout-sound", "0", "--heldout-talk", "0", "--size", "64",
            "--duration", "3", "--seed", "7", "--no-progress"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "train.jsonl").read_text() == (dataset / "train.jsonl").read_text()
    for row in rows(tmp_path, "train"):
        name = row.get("video") or row["audio"]
        if name.endswith(".mp4"):
            a, b = decode_clip(tmp_path / name), decode_clip(dataset / name)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
