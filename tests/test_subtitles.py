"""Subtitle files in (SRT, WebVTT through their libraries) and out (SRT); each malformed case's message."""

from __future__ import annotations

from pathlib import Path

import pytest

from vssflow_core.text.speech import SpeechTrackError, parse_rows
from vssflow_core.text.subtitles import parse_subtitles, read_subtitles, track_to_srt

SRT = ("\ufeff1\r\n00:00:01,000 --> 00:00:02.500 X1:100 X2:600\r\nALICE: <i>Hello</i> there\r\n\r\n"
       "2\r\n00:00:03.200 --> 00:00:04,900\r\n{\\an8}[door slams] How are\r\n<b>you</b> today?\r\n\r\n"
       "3\r\n00:00:05,000 --> 00:00:05,500\r\n♪ [music] ♪\r\n\r\n"
       "4\r\n00:00:06,000 --> 00:00:07,800\r\nDR. SMITH: Fine &amp; you?\r\n")

VTT = ("\ufeffWEBVTT - dialogue\r\n\r\nNOTE written by hand\r\n\r\nSTYLE\r\n::cue { color: yellow }\r\n\r\n"
       "intro\r\n00:01.000 --> 00:02.500 align:start position:10% line:0\r\n<v Alice>Hello <b>there</b></v>\r\n\r\n"
       "00:00:03.200 --> 00:00:04.900\r\n<v.loud Bob>How are <i>you</i></v>\r\ntoday?\r\n\r\n"
       "00:00:06,000 --> 00:00:07,800\r\n<c.yellow>Fine</c>, thanks.\r\n")


def test_srt_cues_voices_tags_and_timing_forms():
    track = parse_subtitles(SRT, "srt", source="lines.srt", duration=10.0)
    assert [(l.cue, l.start, l.end, l.voice, l.text) for l in track.lines] == [
        (1, 1.0, 2.5, "ALICE", "Hello there"),  # BOM, CRLF, dot milliseconds, cue settings, styling tags
        (2, 3.2, 4.9, None, "How are you today?"),  # ASS override and sound description dropped, lines joined
        (4, 6.0, 7.8, "DR. SMITH", "Fine & you?"),  # cue 3 has no words: skipped
    ]
    assert track.voices == ("ALICE", "DR. SMITH")


def test_webvtt_cues_voices_tags_and_timing_forms():
    track = parse_subtitles(VTT, "webvtt", source="lines.vtt", duration=10.0)
    assert [(l.cue, l.start, l.end, l.voice, l.text) for l in track.lines] == [
        (1, 1.0, 2.5, "Alice", "Hello there"), (2, 3.2, 4.9, "Bob", "How are you today?"),
        (3, 6.0, 7.8, None, "Fine, thanks.")]


def test_read_subtitles_by_extension_and_srt_round_trip(tmp_path: Path):
    path = tmp_path / "lines.srt"
    path.write_bytes(SRT.encode("utf-8"))
    track = read_subtitles(path, duration=10.0)
    again = tmp_path / "again.srt"
    again.write_text(track_to_srt(track), encoding="utf-8")
    assert read_subtitles(again).rows() == track.rows()
    assert track.rows().splitlines()[0] == "1-2.5 [ALICE]: Hello there"
    vtt = tmp_path / "lines.vtt"
    vtt.write_text(VTT, encoding="utf-8")
    assert parse_rows(read_subtitles(vtt).rows()).voices == ("Alice", "Bob")
    with pytest.raises(SpeechTrackError, match=r"lines.txt: not a subtitle file .* give an .srt or a .vtt file"):
        read_subtitles(tmp_path / "lines.txt")
    with pytest.raises(SpeechTrackError, match=r"cannot read the subtitle file"):
        read_subtitles(tmp_path / "missing.srt")


@pytest.mark.parametrize("text, message", [
    ("1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 -> 00:00:04,000\nThere\n",
     r"lines.srt, cue 2 \(line 5\): malformed timing '00:00:03,000 -> 00:00:04,000'; write its timing line as "
     r"'00:00:01,000 --> 00:00:02,500'"),
    ("1\n00:00:01,000 --> 00:00:03,000\nHello\n\n2\n00:00:02,500 --> 00:00:04,000\nThere\n",
     r"lines.srt, cue 2: overlaps cue 1 \(1.000-3.000 s\) by 0.500 s.*end cue 1 by 2.500 s"),
    ("1\n00:00:08,000 --> 00:00:11,000\nHello\n",
     r"lines.srt, cue 1: 8.000-11.000 s ends after the end of the clip \(10.000 s\); remove it or make it end by 10.000 s"),
    ("1\n00:00:01,000 --> 00:00:01,300\nHello there my friend\n",
     r"lines.srt, cue 1: 1.000-1.300 s holds 7 frames .* make it at least 0.641 s long \(end at 1.641 s"),
    ("1\n00:00:01,000 --> 00:00:02,000\n[music]\n", r"lines.srt: no cue has words to speak"),
])
def test_srt_errors_name_the_file_the_cue_the_problem_and_the_fix(text, message):
    with pytest.raises(SpeechTrackError, match=message):
        parse_subtitles(text, "srt", source="lines.srt", duration=10.0)


@pytest.mark.parametrize("text, message", [
    ("1\n00:01.000 --> 00:02.000\nHello\n", r"lines.vtt: not a WebVTT file \(its first line must be 'WEBVTT'\)"),
    ("WEBVTT\n\n00:01.000 --> 00:02.000\nHello\n\n00:0x.000 --> 00:04.000\nThere\n",
     r"lines.vtt, cue 2 \(line 6\): malformed timing '00:0x.000 --> 00:04.000'; write its timing line as "
     r"'00:00:01.000 --> 00:00:02.500'"),
    ("WEBVTT\n\n00:01.000 --> 00:03.000\n<v Ann>Hello\n\n00:02.000 --> 00:04.000\n<v Ben>There\n",
     r"lines.vtt, cue 2: overlaps cue 1"),
])
def test_webvtt_errors_name_the_file_the_cue_the_problem_and_the_fix(text, message):
    with pytest.raises(SpeechTrackError, match=message):
        parse_subtitles(text, "webvtt", source="lines.vtt", duration=10.0)


def test_unknown_voice_in_a_subtitle_file():
    track = parse_subtitles("WEBVTT\n\n00:01.000 --> 00:02.000\n<v Ann>Hello\n\n00:03.000 --> 00:04.000\n"
                            "<v Ben>There\n", "webvtt", source="lines.vtt")
    with pytest.raises(SpeechTrackError, match=r"lines.vtt, cue 2: is spoken by 'Ben', a voice with no reference"):
        track.check_voices(["ann"])
