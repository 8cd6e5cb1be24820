"""Dialogue training data: two faces taking turns, lines as cues; manifests with lines; the per-line measures; the
speech-only visual conditions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vssflow_core.demo.line_scores import line_scores, summarize
from vssflow_core.speech_only import MARGIN_SEC, speech_only_visuals
from vssflow_core.synthetic import SceneSpec, espeak_available
from vssflow_core.synthetic.dialogue import FACES, make_dialogue_clip
from vssflow_core.text.speech import make_track
from vssflow_core.train.manifest import ManifestError, parse_row

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
SPEC = SceneSpec(duration=6.0)


@pytest.fixture(scope="module")
def clip():
    return make_dialogue_clip(np.random.default_rng([0, 1, 3, 5]), SPEC)


@needs_espeak
def test_lines_take_turns_with_pauses_inside_the_clip(clip):
    lines = clip.truth["lines"]
    assert 2 <= len(lines) <= 4
    assert [line["voice"] for line in lines] == [FACES[(FACES.index(lines[0]["voice"]) + i) % 2]
                                                 for i in range(len(lines))]
    assert lines[0]["start"] >= 0.2 - 1e-6 and lines[-1]["end"] <= SPEC.duration - 0.2 + 1e-6
    assert all(b["start"] - a["end"] >= 0.2 - 1e-6 for a, b in zip(lines, lines[1:]))
    make_track(lines, duration=SPEC.duration)  # the cues are a valid speech track


@needs_espeak
def test_only_the_speaking_face_moves_its_mouth(clip):
    rate, fps = SPEC.sample_rate, SPEC.fps
    for line in clip.truth["lines"]:
        inside = slice(int(line["start"] * fps) + 2, int(line["end"] * fps) - 2)
        other = FACES[1 - FACES.index(line["voice"])]
        assert max(clip.truth["mouth_open_by_face"][line["voice"]][inside]) > 0.5
        assert max(clip.truth["mouth_open_by_face"][other][inside]) == 0.0
    scores = line_scores(clip.audio, rate, [(l["start"], l["end"]) for l in clip.truth["lines"]], SPEC.duration,
                         clip.truth["mouth_open"], fps)
    # the clip's own sound: speech on its cues, only noise in the pauses
    assert scores["missed"] == 0 and np.nanmax(np.abs(scores["onset_error_ms"])) <= 40
    assert scores["pause_db"] < -20 and scores["corr_in_lines"] > 0.8


def test_line_scores_find_onsets_offsets_and_leaks():
    rate = 16_000
    t = np.arange(6 * rate) / rate
    audio = np.zeros_like(t)
    for a, b in ((1.0, 2.0), (3.0, 4.5)):
        audio[(t >= a + 0.05) & (t < b)] = 0.5 * np.sin(2 * np.pi * 220 * t[(t >= a + 0.05) & (t < b)])
    leak = (t >= 2.5) & (t < 2.7)
    audio[leak] = 0.05 * np.sin(2 * np.pi * 220 * t[leak])
    s = line_scores(audio, rate, [(1.0, 2.0), (3.0, 4.5)], 6.0)
    assert s["missed"] == 0
    assert s["onset_error_ms"] == pytest.approx([50, 50], abs=15)
    assert s["offset_error_ms"] == pytest.approx([0, 0], abs=25)
    assert -40 < s["pause_db"] < -20  # the leak, 20 dB down, over a part of the pause
    summary = summarize([s])
    assert summary["lines"] == 2 and summary["median_onset_error_ms"] == pytest.approx(50, abs=15)
    silent = line_scores(np.zeros_like(t), rate, [(1.0, 2.0)], 6.0)
    assert silent["missed"] == 0 or np.isnan(silent["onset_error_ms"][0])


def test_manifest_rows_with_lines(tmp_path):
    lines = [{"text": "Hello there", "start": 0.5, "end": 1.5, "voice": "left"},
             {"text": "Hi", "start": 2.0, "end": 2.6}]
    row = parse_row({"task": "vtts", "video": "a.mp4", "lines": lines}, tmp_path)
    assert row.has_speech and row.speaker_ref == "self" and row.transcript is None
    ids = row.speech_track(4.0).frame_ids(4.0)
    assert torch.equal(ids, make_track(lines, duration=4.0).frame_ids(4.0))
    assert "lines" in json.loads(row.fingerprint())
    assert "lines" not in json.loads(parse_row({"task": "vtts", "video": "a.mp4", "transcript": "Hi"},
                                               tmp_path).fingerprint())
    with pytest.raises(ManifestError, match="line 2 of 'lines' needs a 'text'"):
        parse_row({"task": "vtts", "video": "a.mp4", "lines": [lines[0], {"start": 1}]}, tmp_path)
    with pytest.raises(ManifestError, match="needs a 'transcript' \\(or 'lines'\\)"):
        parse_row({"task": "vtts", "video": "a.mp4"}, tmp_path)


def test_speech_only_keeps_synchformer_inside_lines_only():
    clip, synch = torch.ones(2, 100, 4), torch.ones(2, 30, 8, 3)
    in_lines = torch.zeros(250, dtype=torch.bool)
    in_lines[100:150] = True  # 4.0 .. 6.0 s
    zc, zs = speech_only_visuals(clip, synch, in_lines, latent_rate=25)
    assert zc.abs().sum() == 0 and zs.shape == synch.shape
    kept = zs.reshape(2, 240, 3)[0, :, 0]
    times = (torch.arange(240) + 0.5) / 24
    assert kept[(times > 4.0 - MARGIN_SEC + 0.05) & (times < 6.0 + MARGIN_SEC - 0.05)].eq(1).all()
    assert kept[(times < 4.0 - MARGIN_SEC - 0.05) | (times > 6.0 + MARGIN_SEC + 0.05)].eq(0).all()
    per_frame = speech_only_visuals(clip, torch.ones(2, 250, 3), in_lines, latent_rate=25)[1]
    assert per_frame[:, 100:150].eq(1).all() and per_frame[:, :90].eq(0).all()
