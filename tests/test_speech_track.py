"""The speech track: every line's phonemes stretched over its own interval by the official rule, silence between
lines; the one-line form is the case of one line; dialogue rows and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vssflow_core.config import SEQUENCE
from vssflow_core.text.phonemes import PAD_ID, phonemize, tokens_to_ids
from vssflow_core.text.speech import (SpeechTrack, SpeechTrackError, describe_rows, one_line_track, parse_rows,
                                      shortest_fitting_duration)
from vssflow_core.windows import plan_windows

FPS = SEQUENCE.phoneme_fps


def reference_frames(ids: list[int], start: str, end: str, length: int) -> list[int]:
    """The stretch rule computed independently: ``int(start * fps)`` silent frames, then ``F = int((end - start) *
    fps)`` frames, both truncated in floating point as the official code does (8.2 s starts at frame 204, not 205);
    the ids repeated ``r = ceil(F / n)`` times each (``n * r`` long) and resized to ``F`` by nearest neighbour in
    exact rationals (output frame ``i`` takes input ``floor(i * n * r / F)``)."""
    lead = int(float(start) * FPS)
    frames = int((float(end) - float(start)) * FPS)
    n = len(ids)
    r = -(-frames // n)
    repeated = [i for i in ids for _ in range(r)]
    out = [PAD_ID] * length
    for i in range(frames):
        if lead + i < length:
            out[lead + i] = repeated[(i * n * r) // frames]
    return out


def ids_of(text: str) -> list[int]:
    return list(one_line_track(text).lines[0].ids)


DIALOGUE = [("0.4", "2.2", "alice", "Hello there."), ("2.6", "4.0", "bob", "Hi, how are you?"),
            ("5.0", "7.48", "alice", "Fine, thanks. And you?"), ("8.2", "9.9", None, "Wow.")]


def rows_text(lines) -> str:
    return "\n".join(f"{s}-{e}" + (f" [{v}]" if v else "") + f": {t}" for s, e, v, t in lines)


def test_each_line_is_stretched_over_its_own_interval_with_silence_between():
    track = parse_rows(rows_text(DIALOGUE), duration=10.0)
    got = track.frame_ids(10.0)
    assert got.dtype == torch.long and got.shape == (SEQUENCE.latent_length,)
    expected = [PAD_ID] * SEQUENCE.latent_length
    for start, end, _, text in DIALOGUE:
        for k, v in enumerate(reference_frames(ids_of(text), start, end, SEQUENCE.latent_length)):
            if v != PAD_ID:
                expected[k] = v
    assert got.tolist() == expected
    # the frames between lines are silence
    assert (got[int(2.2 * FPS): int(2.6 * FPS)] == PAD_ID).all()


def test_a_golden_line_keeps_the_official_frames_among_other_lines(golden_dir: Path):
    cases = json.loads((golden_dir / "phonemes.json").read_text())["cases"]
    case = next(c for c in cases if c["speech_end_sec"] <= 8.0 and c["speech_start_sec"] > 0)
    end = case["speech_end_sec"]
    rows = f"{case['speech_start_sec']}-{end} [a]: {case['text']}\n{end + 0.5}-{end + 1.8} [b]: Wow."
    got = parse_rows(rows, duration=10.0).frame_ids(10.0)
    first, frames = int(case["speech_start_sec"] * FPS), int((end - case["speech_start_sec"]) * FPS)
    assert got[: first + frames].tolist() == case["frame_ids"][: first + frames]
    second = reference_frames(ids_of("Wow."), str(end + 0.5), str(end + 1.8), SEQUENCE.latent_length)
    assert got[first + frames:].tolist() == second[first + frames:]


def test_the_one_line_form_is_the_case_of_one_line(golden_dir: Path):
    for case in json.loads((golden_dir / "phonemes.json").read_text())["cases"]:
        start, end = case["speech_start_sec"], case["speech_end_sec"]
        track = one_line_track(case["text"], start, end, duration=SEQUENCE.duration_sec)
        assert len(track.lines) == 1 and list(track.tokens) == case["phonemes"]
        assert track.frame_ids(SEQUENCE.duration_sec).tolist() == case["frame_ids"]
        torch.testing.assert_close(track.frame_ids(SEQUENCE.duration_sec), phonemize(case["text"], start, end).frame_ids)


def test_lines_lie_on_the_whole_timeline_of_a_long_clip():
    rows = "12.0-14.5 [a]: Hello there\n31.04-33.0 [b]: Good morning"
    track = parse_rows(rows, duration=40.0)
    timeline = plan_windows(40.0).timeline
    got = track.frame_ids(40.0)
    assert got.shape == (timeline.latent_length,)
    expected = [PAD_ID] * timeline.latent_length
    for start, end, text in (("12.0", "14.5", "Hello there"), ("31.04", "33.0", "Good morning")):
        for k, v in enumerate(reference_frames(ids_of(text), start, end, timeline.latent_length)):
            expected[k] = v if v != PAD_ID else expected[k]
    assert got.tolist() == expected
    assert track.speech_mask(40.0).sum() == int(2.5 * FPS) + int((33.0 - 31.04) * FPS)


def test_silent_track_and_end_of_clip_default():
    assert one_line_track("   ").silent and SpeechTrack().frame_ids(3.0).abs().sum() == 0
    track = one_line_track("Hello there", 0.5)  # end: the end of the clip, fixed when the clip is known
    assert track.lines[0].end is None
    ids = track.frame_ids(3.0)
    lead, frames = track.lines[0].frames(3.0)
    assert (lead, frames) == (int(0.5 * FPS), int(2.5 * FPS))
    assert ids[lead: lead + frames].ne(PAD_ID).all() and ids[:lead].eq(PAD_ID).all()
    with pytest.raises(ValueError, match="after the end of the clip"):
        one_line_track("Hello there", 0.5, 4.0, duration=3.0)


def test_rows_format_voices_and_description():
    track = parse_rows("# a comment\n\r\n1.0-2.5 [alice]: Hello there\n0:03-0:04.5: Hi Alice\n", duration=10.0)
    assert [(l.start, l.end, l.voice, l.cue) for l in track.lines] == [(1.0, 2.5, "alice", 3), (3.0, 4.5, None, 4)]
    assert track.voices == ("alice",)
    assert parse_rows(track.rows()).rows() == track.rows()
    lines = describe_rows("1.0-2.5 [alice]: Hello there")
    assert lines == [{"row": 1, "start": 1.0, "end": 2.5, "voice": "alice", "text": "Hello there",
                      "tokens": ["<blank>", "HH", "AH0", "L", "OW1", "DH", "EH1", "R", "<blank>"],
                      "first_frame": 25, "frames": 37}]
    arpabet = parse_rows("1-2: HH AH0 L OW1").lines[0]
    assert arpabet.ids == tuple(tokens_to_ids(["<blank>", "HH", "AH0", "L", "OW1", "<blank>"]))


@pytest.mark.parametrize("rows, message", [
    ("hello there", r"dialogue rows, row 1 \('hello there'\): not a dialogue row; write 'start-end \[voice\]: text'"),
    ("1.0-2.0 [a]:   ", r"row 1: has no text"),
    ("2.0-1.0: Hello", r"row 1: it ends \(1 s\) before it starts \(2 s\)"),
    ("1.0-3.0: Hello\n2.0-4.0: There", r"row 2: overlaps row 1 \(1.000-3.000 s\) by 1.000 s.*end row 1 by 2.000 s"),
    ("3.0-4.0: Hello\n1.0-2.0: There", r"row 2: starts at 1.000 s, before row 1.*time order"),
    ("8.0-12.0: Hello", r"row 1: 8.000-12.000 s ends after the end of the clip \(10.000 s\); remove it or make it end by"),
    ("1.0-1.2: Hello there my friend", r"row 1: 1.000-1.200 s holds 4 frames .* make it at least 0.641 s long \(end at 1.641 s"),
    ("1.0-2.0: !!! ???", r"row 1: transcript '!!! \?\?\?' has nothing to pronounce"),
])
def test_row_errors_name_the_row_the_problem_and_the_fix(rows, message):
    with pytest.raises(SpeechTrackError, match=message):
        parse_rows(rows, duration=10.0)


def test_shortest_fitting_duration_is_the_shortest_that_fits():
    for start in (0.0, 1.0, 8.2):
        for n in range(3, 120):
            d = shortest_fitting_duration(n, start)
            end, shorter = round(start + d, 3), round(start + d - 0.001, 3)
            assert int((end - start) * FPS) >= n > int((shorter - start) * FPS)
            parse_rows(f"{start}-{end}: " + " ".join(["AA1"] * (n - 2)), duration=400.0)  # it fits


def test_unknown_and_unused_voices():
    track = parse_rows("1-2 [Alice]: Hello\n3-4 [BOB]: Hi")
    track.check_voices([])  # no references: the voices only name who speaks
    track.check_voices(["alice", "bob"])  # names match whatever their case
    with pytest.raises(SpeechTrackError, match=r"row 2: is spoken by 'BOB', a voice with no reference.*--voice BOB="):
        track.check_voices(["alice"])
    with pytest.raises(SpeechTrackError, match=r"no line is spoken by carol"):
        track.check_voices(["alice", "bob", "carol"])
