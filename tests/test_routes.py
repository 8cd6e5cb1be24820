"""The pack's server routes (nodes/routes.py) as plain functions: what the live timeline is told before any run.

The browser tests call the same routes on a real server; here their answers are checked against the core."""

from __future__ import annotations

import importlib

import pytest

from vssflow_core.config import SEQUENCE
from vssflow_core.flow.solvers import SOLVER_NAMES, Dopri5Solver, make_solver
from vssflow_core.text.phonemes import transcript_to_tokens
from vssflow_core.text.speech import describe_rows
from workflow_tools import load_pack


@pytest.fixture(scope="module")
def routes():
    pack = load_pack()
    return importlib.import_module(f"{pack.__name__}.nodes.routes")


def test_facts_come_from_the_core(routes):
    facts = routes.facts()
    assert facts["phoneme_fps"] == SEQUENCE.phoneme_fps and facts["window_sec"] == SEQUENCE.duration_sec
    assert facts["adaptive_solvers"] == [n for n in SOLVER_NAMES if isinstance(make_solver(n), Dopri5Solver)]
    assert facts["adaptive_solvers"], "no adaptive solver: the sampler's tolerance widgets would never be used"


def test_english_transcript_is_phonemized_over_its_window(routes):
    answer = routes.timeline_preview({"text": "Hello there", "speech_start": 1, "speech_end": 3, "duration": 8})
    assert answer["ok"], answer
    (line,) = answer["lines"]
    assert (line["start"], line["end"]) == (1, 3)
    assert line["tokens"] == transcript_to_tokens("Hello there")


def test_end_zero_is_the_end_of_the_clip(routes):
    (line,) = routes.timeline_preview({"text": "HH AH0 L OW1", "speech_start": 0.5, "speech_end": 0,
                                       "duration": 6.5})["lines"]
    assert (line["start"], line["end"]) == (0.5, 6.5)
    (line,) = routes.timeline_preview({"text": "HH AH0 L OW1", "speech_end": 0})["lines"]  # clip unknown
    assert line["end"] == SEQUENCE.duration_sec


def test_dialogue_rows_are_described_as_the_core_does(routes):
    text = "0.5-2 [alice]: Hello there\n# a comment\n3-4.5 [bob]: General Kenobi"
    answer = routes.timeline_preview({"text": text, "rows": True, "duration": 6})
    assert answer["ok"], answer
    assert answer["lines"] == describe_rows(text, duration=6)
    assert [(x["voice"], x["row"]) for x in answer["lines"]] == [("alice", 1), ("bob", 3)]


@pytest.mark.parametrize("payload, words", [
    ({"text": "0.5-2 [a]: Hi\nnot a row", "rows": True}, "row 2"),
    ({"text": "2-1: backwards", "rows": True}, "row 1"),
    ({"text": "Hello", "speech_start": 4, "speech_end": 2}, "speech"),
    ({"text": "Hello", "speech_start": "soon"}, "speech_start must be a number"),
    ({"text": "Hello", "mode": "klingon"}, "unknown mode"),
    ({"text": 5}, "text must be a string"),
])
def test_bad_values_get_the_nodes_message(routes, payload, words):
    answer = routes.timeline_preview(payload)
    assert not answer["ok"] and words in answer["error"], answer


def test_a_subtitle_file_is_read_as_the_node_reads_it(routes, tmp_path, monkeypatch):
    from vssflow_core.text.subtitles import read_subtitles

    pack = load_pack()
    bridge = importlib.import_module(f"{pack.__name__}.nodes.comfy_bridge")
    monkeypatch.setattr(bridge, "input_dir", lambda: tmp_path)
    (tmp_path / "lines.srt").write_text("1\n00:00:00,500 --> 00:00:02,000\nALICE: Hello there\n\n"
                                        "2\n00:00:03,000 --> 00:00:04,500\nBOB: General Kenobi\n")
    answer = routes.timeline_preview({"subtitle_file": "lines.srt", "duration": 6})
    assert answer["ok"], answer
    track = read_subtitles(tmp_path / "lines.srt", duration=6)
    assert [(x["start"], x["end"], x["voice"], x["tokens"]) for x in answer["lines"]] == \
        [(l.start, l.end, l.voice, list(l.tokens)) for l in track.lines]
    answer = routes.timeline_preview({"subtitle_file": "missing.srt"})
    assert not answer["ok"] and "no such file" in answer["error"], answer


def test_duration_of_a_demo_clip(routes):
    from vssflow_core.video.inputs import resolve_video_input

    pack = load_pack()
    bridge = importlib.import_module(f"{pack.__name__}.nodes.comfy_bridge")
    name = bridge.demo_videos()[0]
    answer = routes.clip_duration(name)
    assert answer["ok"], answer
    assert answer["duration"] == resolve_video_input(path=bridge.input_file(name), sequence=None).duration


@pytest.mark.parametrize("name, words", [("", "no file"), ("(none)", "no file"),
                                         ("../../etc/passwd", "not a file of ComfyUI"),
                                         ("no_such_clip.mp4", "no such file")])
def test_duration_refuses_what_is_not_a_clip_of_the_pack(routes, name, words):
    answer = routes.clip_duration(name)
    assert not answer["ok"] and words in answer["error"], answer
