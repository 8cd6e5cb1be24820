"""Subtitle files (SRT, WebVTT) -> a :class:`~vssflow_core.text.speech.SpeechTrack`, and a track -> SRT.

The formats are read by maintained libraries (``srt``, ``webvtt-py``); this module cuts a file into its cues only to
hand each cue to the library alone, so a malformed cue is reported by its number instead of being dropped or
failing the whole file.  Voices come from WebVTT ``<v Name>`` tags and from an SRT ``NAME:`` prefix (a name in
capitals); styling tags (``<i>``, ``<b>``, ``<font>``, ``{\\an8}``), sound descriptions in brackets (``[door
slams]``, ``(laughs)``) and music notes are dropped, and a cue left without words is skipped.
"""

from __future__ import annotations

import html
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..config import SEQUENCE, WINDOWS, SequenceConfig, WindowConfig
from .phonemes import Mode
from .speech import SpeechTrack, SpeechTrackError, make_track

__all__ = ["SUBTITLE_FORMATS", "read_subtitles", "parse_subtitles", "track_to_srt"]

log = logging.getLogger(__name__)

SUBTITLE_FORMATS = {".srt": "srt", ".vtt": "webvtt"}

_SRT_VOICE = re.compile(r"^\s*(?P<name>[A-Z][A-Z0-9 ._'\-]{0,39})\s*:\s+(?P<text>\S.*)$", re.DOTALL)
_TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_DESCRIPTIONS = re.compile(r"\[[^\]]*\]|\([^)]*\)|[♪♫]")
_VTT_META = ("NOTE", "STYLE", "REGION")
_VTT_COMMA_MS = re.compile(r"(\d{2}),(\d{3})")


def _clean(text: str) -> str:
    text = html.unescape(_TAGS.sub("", text))
    return " ".join(_DESCRIPTIONS.sub(" ", text).split())


def _blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, block)`` of every blank-line separated block, BOM and CR/LF normalised."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks, current, first = [], [], 0
    for number, line in enumerate(lines, 1):
        if line.strip():
            if not current:
                first = number
            current.append(line)
        elif current:
            blocks.append((first, "\n".join(current)))
            current = []
    if current:
        blocks.append((first, "\n".join(current)))
    return blocks


def _timing_fix(fmt: str) -> str:
    example = "00:00:01,000 --> 00:00:02,500" if fmt == "srt" else "00:00:01.000 --> 00:00:02.500"
    return f"write its timing line as '{example}' (hours:minutes:seconds and milliseconds)"


def _srt_cues(text: str, source: str) -> list[dict[str, Any]]:
    import srt

    cues = []
    for position, (line_no, block) in enumerate(_blocks(text), 1):
        try:
            parsed = list(srt.parse(block + "\n"))
        except srt.SRTParseError:
            parsed = []
        first = block.split("\n", 1)[0].strip()
        number = int(first) if first.isdigit() else position
        if len(parsed) != 1:
            timing = next((line for line in block.split("\n") if "-->" in line or "->" in line), block.split("\n")[0])
            raise SpeechTrackError(f"{source}, cue {number} (line {line_no}): malformed timing {timing.strip()!r}; "
                                   f"{_timing_fix('srt')}")
        cue = parsed[0]
        content = " ".join(cue.content.split("\n"))
        voice = None
        match = _SRT_VOICE.match(_TAGS.sub("", content))
        if match is not None:
            voice, content = match["name"].strip(), match["text"]
        cues.append({"cue": number, "start": cue.start.total_seconds(), "end": cue.end.total_seconds(),
                     "text": _clean(content), "voice": voice})
    return cues


def _vtt_seconds(stamp: str) -> float:
    seconds = 0.0
    for part in stamp.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def _vtt_cues(text: str, source: str) -> list[dict[str, Any]]:
    import webvtt
    from webvtt.errors import MalformedFileError

    blocks = _blocks(text)
    if not blocks or not re.match(r"^WEBVTT(?:[ \t].*)?$", blocks[0][1].split("\n", 1)[0]):
        raise SpeechTrackError(f"{source}: not a WebVTT file (its first line must be 'WEBVTT'); add that line, or "
                               "give an .srt file")
    cues = []
    for line_no, block in blocks[1:]:
        if block.split(None, 1)[0] in _VTT_META:
            continue
        number = len(cues) + 1
        rows = block.split("\n")
        timing_at = next((i for i, row in enumerate(rows) if "-->" in row), 1 if len(rows) > 1 else 0)
        rows[timing_at] = _VTT_COMMA_MS.sub(r"\1.\2", rows[timing_at])  # SRT-style milliseconds
        try:
            captions = webvtt.from_buffer(io.StringIO("WEBVTT\n\n" + "\n".join(rows) + "\n")).captions
        except (MalformedFileError, IndexError, ValueError):
            captions = []
        if len(captions) != 1:
            raise SpeechTrackError(f"{source}, cue {number} (line {line_no}): malformed timing "
                                   f"{rows[timing_at].strip()!r}; {_timing_fix('webvtt')}")
        caption = captions[0]
        cues.append({"cue": number, "start": _vtt_seconds(caption.start), "end": _vtt_seconds(caption.end),
                     "text": _clean(" ".join(caption.lines)), "voice": caption.voice or None})
    return cues


def parse_subtitles(text: str, fmt: str, *, source: str = "the subtitles", duration: float | None = None,
                    mode: Mode = "auto", sequence: SequenceConfig = SEQUENCE,
                    windows: WindowConfig = WINDOWS) -> SpeechTrack:
    """Subtitle text (``fmt`` ``"srt"`` or ``"webvtt"``) as a checked :class:`SpeechTrack` (see
    :meth:`SpeechTrack.check`; ``duration`` is the video's, when known)."""
    if fmt not in SUBTITLE_FORMATS.values():
        raise SpeechTrackError(f"{source}: unknown subtitle format {fmt!r}; use one of "
                               f"{', '.join(sorted(SUBTITLE_FORMATS.values()))}")
    cues = _srt_cues(text, source) if fmt == "srt" else _vtt_cues(text, source)
    spoken = []
    for cue in cues:
        if cue["text"]:
            spoken.append(cue)
        else:
            log.info("%s, cue %s has no words to speak (only tags or sound descriptions): skipped", source,
                     cue["cue"])
    if not spoken:
        raise SpeechTrackError(f"{source}: no cue has words to speak; give a subtitle file with dialogue")
    spoken.sort(key=lambda cue: cue["start"])
    return make_track(spoken, duration=duration, mode=mode, source=source, sequence=sequence, windows=windows)


def read_subtitles(path: str | os.PathLike, *, duration: float | None = None, mode: Mode = "auto",
                   sequence: SequenceConfig = SEQUENCE, windows: WindowConfig = WINDOWS) -> SpeechTrack:
    """An ``.srt`` or ``.vtt`` file as a checked :class:`SpeechTrack`; errors name the file and the cue."""
    path = Path(path)
    fmt = SUBTITLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SpeechTrackError(f"{path.name}: not a subtitle file this reads (by its extension); give an .srt or a "
                               ".vtt file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpeechTrackError(f"{path}: cannot read the subtitle file ({exc.strerror or exc}); check the path") \
            from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")  # older SRT files are often Windows-1252
    return parse_subtitles(text, fmt, source=path.name, duration=duration, mode=mode, sequence=sequence,
                           windows=windows)


def track_to_srt(track: SpeechTrack, duration: float | None = None) -> str:
    """The track as SRT text (voices as a ``NAME:`` prefix), for a sidecar file or a soft subtitle stream."""
    from datetime import timedelta

    import srt

    subtitles = []
    for index, line in enumerate(track.lines, 1):
        start, end = line.interval(duration)
        content = f"{line.voice.upper()}: {line.text}" if line.voice else line.text  # the NAME: convention
        subtitles.append(srt.Subtitle(index, timedelta(seconds=start), timedelta(seconds=end), content))
    return srt.compose(subtitles, reindex=False)
