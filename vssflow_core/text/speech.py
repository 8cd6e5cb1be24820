"""The speech track of a clip: the lines spoken, each with its text, its own start and end, and optionally a voice.

Every line's phoneme ids are stretched over its own interval by the official rule (:func:`~.phonemes.stretch_ids`:
``int(start * 25)`` leading frames, ``int((end - start) * 25)`` frames of speech), and the frames between lines are
silence (id 0, "no speech", what the model saw outside every utterance).  The one-line form of the official code, a
transcript over a speech window, is the track of a single line; a track of no lines is a clip without speech.

A track comes from the one-line form (:func:`one_line_track`), from dialogue rows (:func:`parse_rows`, one
``start-end [voice]: text`` per row, e.g. ``1.0-2.5 [alice]: Hello there``), or from a subtitle file
(:func:`vssflow_core.text.subtitles.read_subtitles`).  Problems are :class:`SpeechTrackError`: they name the source,
the cue (row or subtitle number), the problem and what to do.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch

from ..config import SEQUENCE, WINDOWS, SequenceConfig, WindowConfig
from .phonemes import (NATURAL_PHONEMES_PER_SEC, PAD_ID, Mode, check_speech_window, silent_frame_ids, stretch_ids,
                       tokens_to_ids, transcript_to_tokens)

__all__ = ["SpeechLine", "SpeechTrack", "SpeechTrackError", "describe_rows", "one_line_track", "parse_rows",
           "shortest_fitting_duration", "voice_key"]

# Cue times are compared with this slack: subtitle files round to milliseconds.
TIME_SLACK_SEC = 1e-3


class SpeechTrackError(ValueError):
    """A speech track that cannot be spoken as given; the message names the source, the cue, the problem and the fix."""


def voice_key(name: str) -> str:
    """Voice names match whatever their case and spacing (``ALICE:`` in a subtitle, ``--voice alice=...``)."""
    return " ".join(name.split()).casefold()


def shortest_fitting_duration(num_ids: int, start: float = 0.0, sequence: SequenceConfig = SEQUENCE) -> float:
    """The shortest line (seconds, to the millisecond) starting at ``start`` whose frames hold ``num_ids`` phoneme
    ids, one frame each (the rule truncates ``(end - start) * fps`` in floating point, so this is checked on the end
    time as it would be written)."""
    seconds = math.ceil(num_ids / sequence.phoneme_fps * 1000) / 1000
    while int((round(start + seconds, 3) - start) * sequence.phoneme_fps) < num_ids:
        seconds = round(seconds + 0.001, 3)
    return seconds


@dataclass(frozen=True)
class SpeechLine:
    """One line of speech: its text and phonemes, where it lies on the clip, and who speaks it."""

    text: str  # as written: English or ARPAbet
    tokens: tuple[str, ...]  # with <blank> at both ends; punctuation kept (it maps to <blank>)
    ids: tuple[int, ...]  # one id per token
    start: float  # seconds on the clip
    end: float | None  # seconds on the clip; None = the end of the clip (the one-line form only)
    voice: str | None = None  # the name of a speaker reference; None = no reference
    cue: int | None = None  # its number in the source (row or subtitle cue), for messages

    def label(self, unit: str = "cue") -> str:
        return f"{unit} {self.cue}" if self.cue is not None else "the speech"

    def interval(self, duration: float | None, sequence: SequenceConfig = SEQUENCE) -> tuple[float, float]:
        end = self.end if self.end is not None else (sequence.duration_sec if duration is None else duration)
        return self.start, float(end)

    def frames(self, duration: float | None = None, sequence: SequenceConfig = SEQUENCE) -> tuple[int, int]:
        """``(first latent frame, number of frames)`` of the line by the official rule."""
        start, end = self.interval(duration, sequence)
        fps = sequence.phoneme_fps
        return int(start * fps), int((end - start) * fps)


@dataclass(frozen=True)
class SpeechTrack:
    """The lines of speech of a clip, in time order and not overlapping; no lines: a clip without speech."""

    lines: tuple[SpeechLine, ...] = ()
    source: str = "the speech"  # where the lines came from (a file name, "dialogue rows"), for messages
    unit: str = "cue"  # what a line is called in the source: a subtitle "cue", a dialogue "row"
    # speaker references by voice name (anything the speaker encoder reads: a path, an AUDIO dict ...)
    references: tuple[tuple[str, Any], ...] = dataclasses.field(default=(), compare=False)

    def with_references(self, references: Mapping[str, Any]) -> "SpeechTrack":
        """The track with these speaker references (voice name -> reference), checked against its voices."""
        self.check_voices(references)
        return dataclasses.replace(self, references=tuple(references.items()))

    @property
    def silent(self) -> bool:
        return not self.lines

    @property
    def voices(self) -> tuple[str, ...]:
        """The distinct voice names, in order of first appearance (as first written)."""
        seen: dict[str, str] = {}
        for line in self.lines:
            if line.voice is not None:
                seen.setdefault(voice_key(line.voice), line.voice)
        return tuple(seen.values())

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every line's tokens, one after another."""
        return tuple(token for line in self.lines for token in line.tokens)

    def error(self, line: SpeechLine | None, problem: str) -> SpeechTrackError:
        named = line is not None and line.cue is not None
        where = f"{self.source}, {line.label(self.unit)}" if named else self.source
        return SpeechTrackError(f"{where}: {problem}")

    def window(self, duration: float | None = None, sequence: SequenceConfig = SEQUENCE,
               windows: WindowConfig = WINDOWS) -> tuple[float, float]:
        """From the first line's start to the last line's end, checked against the clip (see :meth:`check`)."""
        if self.silent:
            return 0.0, sequence.duration_sec if duration is None else float(duration)
        self.check(duration, sequence, windows)
        return self.lines[0].interval(duration, sequence)[0], self.lines[-1].interval(duration, sequence)[1]

    def check(self, duration: float | None = None, sequence: SequenceConfig = SEQUENCE,
              windows: WindowConfig = WINDOWS) -> None:
        """Refuse what cannot be spoken: times outside the clip (the longest video allowed while the clip is
        unknown), lines out of order or overlapping, more phonemes than a line's frames can hold."""
        limit = windows.max_duration_sec if duration is None else float(duration)
        previous: SpeechLine | None = None
        for line in self.lines:
            start, end = line.interval(duration, sequence)
            if not (math.isfinite(start) and math.isfinite(end)):
                raise self.error(line, f"its times must be finite seconds, got {start}..{end}; give its start and "
                                       "end in seconds of the video")
            if start < 0 or end <= start:
                raise self.error(line, f"it ends ({end:g} s) before it starts ({start:g} s); give a start before "
                                       "the end")
            if end > limit + TIME_SLACK_SEC:
                what = "the end of the clip" if duration is not None else "the longest video allowed"
                raise self.error(line, f"{start:.3f}-{end:.3f} s ends after {what} ({limit:.3f} s); remove it or "
                                       f"make it end by {limit:.3f} s")
            if previous is not None:
                p_start, p_end = previous.interval(duration, sequence)
                before = previous.label(self.unit)
                if start < p_start:
                    raise self.error(line, f"starts at {start:.3f} s, before {before} ({p_start:.3f} s); "
                                           "give the lines in time order")
                if start < p_end - TIME_SLACK_SEC:
                    raise self.error(line, f"overlaps {before} ({p_start:.3f}-{p_end:.3f} s) by "
                                           f"{p_end - start:.3f} s, but the model speaks one line at a time; end "
                                           f"{before} by {start:.3f} s or start this one at {p_end:.3f} s "
                                           "or later")
            frames = line.frames(duration, sequence)[1]
            if len(line.ids) > frames:
                fits = shortest_fitting_duration(len(line.ids), start, sequence)
                raise self.error(line, f"{start:.3f}-{end:.3f} s holds {frames} frames ({sequence.phoneme_fps} "
                                       f"per second) but its text has {len(line.ids)} phonemes (pauses included), "
                                       f"so most of it could not be spoken; make it at least {fits:.3f} s long (end "
                                       f"at {start + fits:.3f} s or later; natural speech needs about "
                                       f"{len(line.ids) / NATURAL_PHONEMES_PER_SEC:.1f} s) or shorten its text")
            previous = line

    def check_voices(self, references: Iterable[str]) -> None:
        """With speaker references given, every voice of the track must have one and every reference a line."""
        known = {voice_key(name): name for name in references}
        if not known:
            return
        for line in self.lines:
            if line.voice is not None and voice_key(line.voice) not in known:
                raise self.error(line, f"is spoken by {line.voice!r}, a voice with no reference (given: "
                                       f"{', '.join(sorted(known.values()))}); add a reference for it (--voice "
                                       f"{line.voice}=reference.wav, or a voice input of the Dialogue node) or "
                                       "correct the name")
        used = {voice_key(v) for v in self.voices}
        unused = [name for key, name in known.items() if key not in used]
        if unused:
            raise self.error(None, f"no line is spoken by {', '.join(unused)} (the lines' voices: "
                                   f"{', '.join(self.voices) or 'none'}); correct the voice name or leave it out")

    def frame_ids(self, duration: float | None = None, sequence: SequenceConfig = SEQUENCE,
                  windows: WindowConfig = WINDOWS) -> torch.Tensor:
        """Per-latent-frame phoneme ids (int64) on the clip's whole timeline (``WindowPlan.timeline``: ``[250]`` for
        a clip of one window), every line stretched over its own interval, 0 (silence) between them."""
        timeline = sequence if duration is None else self._plan(duration, sequence, windows).timeline
        return self._ids_on(timeline, duration, sequence, windows)

    def frame_ids_on(self, plan) -> torch.Tensor:
        """:meth:`frame_ids` on the window plan made once for the clip (its duration, rates and timeline)."""
        return self._ids_on(plan.timeline, plan.duration, plan.sequence, plan.windows)

    def speech_mask(self, duration: float | None = None, sequence: SequenceConfig = SEQUENCE,
                    windows: WindowConfig = WINDOWS) -> torch.Tensor:
        """True on the latent frames inside a line, on the same timeline as :meth:`frame_ids`."""
        timeline = sequence if duration is None else self._plan(duration, sequence, windows).timeline
        return self._mask_on(timeline, duration, sequence)

    def speech_mask_on(self, plan) -> torch.Tensor:
        """:meth:`speech_mask` on the clip's window plan."""
        return self._mask_on(plan.timeline, plan.duration, plan.sequence)

    def _plan(self, duration: float, sequence: SequenceConfig, windows: WindowConfig):
        # the plan generation makes for this track (its lines inside windows), so the timelines agree
        from ..line_windows import plan_line_windows, speech_lines

        from ..line_windows import LinePlanError
        from ..windows import plan_windows

        lines = [(s, e if e is not None else duration, v) for s, e, v in speech_lines(self, dict(self.references))]
        self.check(duration, sequence, windows)
        try:
            return plan_line_windows(duration, lines, sequence, windows)
        except LinePlanError:
            if any(line.cue is not None for line in self.lines):
                raise
            return plan_windows(duration, sequence, windows)  # the one-line form: cut where it falls, as always

    def _ids_on(self, timeline: SequenceConfig, duration: float | None, sequence: SequenceConfig,
                windows: WindowConfig) -> torch.Tensor:
        out = silent_frame_ids(timeline)
        if self.silent:
            return out
        self.check(duration, sequence, windows)
        for line in self.lines:
            start, end = line.interval(duration, sequence)
            room = dataclasses.replace(timeline, duration_sec=max(timeline.duration_sec, end))
            ids = stretch_ids(line.ids, start, end, room)[: timeline.latent_length]
            out[ids != PAD_ID] = ids[ids != PAD_ID]
        return out

    def _mask_on(self, timeline: SequenceConfig, duration: float | None, sequence: SequenceConfig) -> torch.Tensor:
        mask = torch.zeros(timeline.latent_length, dtype=torch.bool)
        for line in self.lines:
            lead, frames = line.frames(duration, sequence)
            mask[lead: lead + frames] = True
        return mask

    def rows(self, duration: float | None = None) -> str:
        """The track as dialogue rows (the input of :func:`parse_rows`)."""
        out = []
        for line in self.lines:
            start, end = line.interval(duration)
            voice = f" [{line.voice}]" if line.voice else ""
            out.append(f"{start:g}-{end:g}{voice}: {line.text}")
        return "\n".join(out)


def _line(text: str, start: float, end: float | None, voice: str | None, cue: int | None, mode: Mode,
          source: str, unit: str = "cue") -> SpeechLine:
    try:
        tokens = transcript_to_tokens(text, mode)
    except ValueError as exc:
        where = f"{source}, {unit} {cue}" if cue is not None else source
        raise SpeechTrackError(f"{where}: {exc}") from None
    return SpeechLine(text=text, tokens=tuple(tokens), ids=tuple(tokens_to_ids(tokens)), start=float(start),
                      end=None if end is None else float(end), voice=voice or None, cue=cue)


def make_track(lines: Iterable[Mapping[str, Any]], *, duration: float | None = None, mode: Mode = "auto",
               source: str = "the speech", unit: str = "cue", sequence: SequenceConfig = SEQUENCE,
               windows: WindowConfig = WINDOWS) -> SpeechTrack:
    """A checked track from ``{"text", "start", "end", "voice"?, "cue"?}`` items (cue defaults to the position).

    Times are checked before any G2P work, phoneme counts after it."""
    items = [dict(item) for item in lines]
    for number, item in enumerate(items, 1):
        item.setdefault("cue", number)
    timing = SpeechTrack(tuple(SpeechLine(text=i["text"], tokens=(), ids=(), start=float(i["start"]),
                                          end=float(i["end"]), voice=i.get("voice"), cue=i["cue"])
                               for i in items), source, unit)
    timing.check(duration, sequence, windows)  # cheap: bad timing fails before phonemizing
    track = SpeechTrack(tuple(_line(i["text"], i["start"], i["end"], i.get("voice"), i["cue"], mode, source, unit)
                              for i in items), source, unit)
    track.check(duration, sequence, windows)
    return track


def one_line_track(transcript: str | None, speech_start: float | None = None, speech_end: float | None = None,
                   duration: float | None = None, mode: Mode = "auto", voice: str | None = None,
                   sequence: SequenceConfig = SEQUENCE, windows: WindowConfig = WINDOWS) -> SpeechTrack:
    """The one-line form: a transcript over ``[speech_start, speech_end]`` (defaults: the whole clip, as training
    did; ``speech_end`` None stays "the end of the clip" until the clip is known).  No transcript (None, or only white
    space) gives a silent track.  The window is checked before G2P; the phoneme count once the window is known."""
    if transcript is None or not transcript.strip():
        return SpeechTrack()
    start = 0.0 if speech_start is None else float(speech_start)
    end = None if speech_end is None else float(speech_end)
    probe = SpeechTrack((SpeechLine(transcript, (), (), start, end),))
    _check_window(probe.lines[0], duration, sequence, windows)  # a bad window fails fast and cheaply
    track = SpeechTrack((_line(transcript, start, end, voice, None, mode, "the transcript"),), "the transcript")
    if duration is not None or end is not None:
        _check_window(track.lines[0], duration, sequence, windows)
        track.check(duration, sequence, windows)
    return track


def _check_window(line: SpeechLine, duration: float | None, sequence: SequenceConfig, windows: WindowConfig) -> None:
    # the one-line form keeps the messages of the speech window the users know from the official widgets
    from ..windows import check_duration

    if duration is None:
        limit, default_end = windows.max_duration_sec, sequence.duration_sec
    else:
        limit = default_end = check_duration(duration, windows, max_duration=math.inf)
    end = default_end if line.end is None else line.end
    if end > limit + 1e-6:
        where = "the end of the clip" if duration is not None else "the longest video allowed"
        raise SpeechTrackError(f"the speech window ends at {end:g} s, after {where} ({limit:.2f} s); move the speech "
                               f"window inside the video")
    check_speech_window(line.start, end, dataclasses.replace(sequence, duration_sec=max(limit, end)))
    if line.ids and len(line.ids) > int((end - line.start) * sequence.phoneme_fps):
        frames = int((end - line.start) * sequence.phoneme_fps)
        fits = shortest_fitting_duration(len(line.ids), line.start, sequence)
        raise SpeechTrackError(
            f"the transcript has {len(line.ids)} phonemes (pauses included) but the speech window "
            f"{line.start:g}..{end:g} s holds only {frames} frames ({sequence.phoneme_fps} per second), so most of it "
            f"could not be spoken; shorten the transcript or widen the speech window to at least {fits:.3f} s "
            f"(natural speech needs about {len(line.ids) / NATURAL_PHONEMES_PER_SEC:.0f} s for it)")


# --------------------------------------------------------------------------------------------------------------------
# Dialogue rows: "start-end [voice]: text"
# --------------------------------------------------------------------------------------------------------------------

ROW_EXAMPLE = "1.0-2.5 [alice]: Hello there"
_TIME = r"(?:\d+:)?(?:\d+:)?\d+(?:[.,]\d+)?"
_ROW = re.compile(rf"^\s*(?P<start>{_TIME})\s*-\s*(?P<end>{_TIME})\s*(?:\[(?P<voice>[^\]]*)\])?\s*:\s*(?P<text>.*)$")


def _seconds(value: str) -> float:
    parts = value.replace(",", ".").split(":")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def parse_rows(text: str, *, duration: float | None = None, mode: Mode = "auto", source: str = "dialogue rows",
               sequence: SequenceConfig = SEQUENCE, windows: WindowConfig = WINDOWS) -> SpeechTrack:
    """Dialogue rows, one ``start-end [voice]: text`` per row (times in seconds or ``m:ss.s``; the voice is
    optional; blank rows and rows starting with ``#`` are skipped), as a checked :class:`SpeechTrack`.  A row's cue
    number is its row number."""
    items = []
    for number, row in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff").split("\n"), 1):
        if not row.strip() or row.lstrip().startswith("#"):
            continue
        match = _ROW.match(row)
        if match is None:
            raise SpeechTrackError(f"{source}, row {number} ({row.strip()!r}): not a dialogue row; write "
                                   f"'start-end [voice]: text' with times in seconds, e.g. {ROW_EXAMPLE!r}")
        if not match["text"].strip():
            raise SpeechTrackError(f"{source}, row {number}: has no text; write the words to be spoken after the "
                                   "colon, or remove the row")
        voice = match["voice"].strip() if match["voice"] is not None else None
        items.append({"text": match["text"].strip(), "start": _seconds(match["start"]), "end": _seconds(match["end"]),
                      "voice": voice or None, "cue": number})
    return make_track(items, duration=duration, mode=mode, source=source, unit="row", sequence=sequence,
                      windows=windows)


def describe_rows(text: str, duration: float | None = None, mode: Mode = "auto",
                  sequence: SequenceConfig = SEQUENCE) -> list[dict[str, Any]]:
    """For a live timeline: each row's line with its times, voice, phoneme tokens and latent frames (raises
    :class:`SpeechTrackError` with the row's number for a bad row)."""
    track = parse_rows(text, duration=duration, mode=mode, sequence=sequence)
    out = []
    for line in track.lines:
        lead, frames = line.frames(duration, sequence)
        out.append({"row": line.cue, "start": line.start, "end": line.end, "voice": line.voice, "text": line.text,
                    "tokens": list(line.tokens), "first_frame": lead, "frames": frames})
    return out


def lines_of(track: SpeechTrack, duration: float | None = None) -> Sequence[tuple[float, float, str | None]]:
    """``(start, end, voice)`` of every line, for planners and evaluators that need only the times."""
    return [(*line.interval(duration), line.voice) for line in track.lines]
