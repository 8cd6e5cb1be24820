"""A transcript as phonemes placed on the clip's time axis: prepared before the clip is known (the speech window's
end can stay "the end of the clip") and stretched over the window's latent frames once it is."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..config import SEQUENCE, WINDOWS, SequenceConfig, WindowConfig
from ..windows import WindowPlan, check_duration, plan_windows
from . import silent_frame_ids, stretch_ids, tokens_to_ids, transcript_to_tokens
from .phonemes import Mode, check_speech_rate, check_speech_window

__all__ = ["PhonemeTrack", "phoneme_frame_ids", "phoneme_track"]


@dataclass(frozen=True)
class PhonemeTrack:
    """A transcript as phonemes, placed on the clip's time axis.

    ``end`` None means "the end of the clip": it is fixed only when the clip's duration is known (:meth:`frame_ids`),
    so a transcript can be prepared before, or independently of, the video.  No ids means a clip without speech.
    """

    tokens: tuple[str, ...] = ()  # with <blank> at both ends; punctuation kept (it maps to <blank>)
    ids: tuple[int, ...] = ()  # one id per token
    start: float = 0.0  # seconds
    end: float | None = None  # seconds, None = the end of the clip

    @property
    def silent(self) -> bool:
        return not self.ids

    def window(self, duration: float | None = None, sequence: SequenceConfig = SEQUENCE,
               windows: WindowConfig = WINDOWS) -> tuple[float, float]:
        """``(start, end)`` in seconds, checked, for a clip of ``duration`` seconds.  With the clip unknown, "the end
        of the clip" reads as one window and the end may be anywhere up to the longest video allowed (the sampler
        checks it against the real clip).  Raises ``ValueError`` when the speech would lie outside the clip."""
        if duration is None:
            limit, default_end = windows.max_duration_sec, sequence.duration_sec
        else:
            limit = default_end = check_duration(duration, windows, max_duration=math.inf)
        end = default_end if self.end is None else float(self.end)
        if end > limit + 1e-6:
            where = "the end of the clip" if duration is not None else "the longest video allowed"
            raise ValueError(f"the speech window ends at {end:g} s, after {where} ({limit:.2f} s); move the speech "
                             f"window inside the video")
        check_speech_window(float(self.start), end, dataclasses.replace(sequence, duration_sec=max(limit, end)))
        return float(self.start), end

    def frame_ids(self, duration: float | None = None, sequence: SequenceConfig = SEQUENCE,
                  windows: WindowConfig = WINDOWS) -> torch.Tensor:
        """Per-latent-frame phoneme ids (int64) over the whole timeline of a clip of ``duration`` seconds
        (:attr:`WindowPlan.timeline`: ``[250]`` for a clip of one window, cut per window with
        :meth:`WindowPlan.window_slice`); all zeros when silent."""
        timeline = sequence if duration is None else plan_windows(duration, sequence, windows).timeline
        return self._ids_on(timeline, duration, sequence, windows)

    def frame_ids_on(self, plan: WindowPlan) -> torch.Tensor:
        """:meth:`frame_ids` on the window plan made once for the clip (its duration, rates and timeline)."""
        return self._ids_on(plan.timeline, plan.duration, plan.sequence, plan.windows)

    def _ids_on(self, timeline: SequenceConfig, duration: float | None, sequence: SequenceConfig,
                windows: WindowConfig) -> torch.Tensor:
        if self.silent:
            return silent_frame_ids(timeline)
        start, end = self.window(duration, sequence, windows)
        check_speech_rate(len(self.ids), start, end, sequence)
        return stretch_ids(self.ids, start, end, timeline)


def phoneme_track(
    transcript: str | None,
    speech_start: float | None = None,
    speech_end: float | None = None,
    duration: float | None = None,
    mode: Mode = "auto",
    sequence: SequenceConfig = SEQUENCE,
) -> PhonemeTrack:
    """The transcript (English text or ARPAbet, see ``mode``) as a :class:`PhonemeTrack`.

    No transcript (None, or only white space) gives a silent track.  The speech window is checked before any G2P
    work, against the clip when ``duration`` is known and against the longest video allowed otherwise;
    ``speech_end`` None stays "the end of the clip".  A transcript with more phonemes than the window has frames is
    refused as soon as the window is known.
    """
    if transcript is None or not transcript.strip():
        return PhonemeTrack()
    track = PhonemeTrack(start=0.0 if speech_start is None else float(speech_start),
                         end=None if speech_end is None else float(speech_end))
    start, end = track.window(duration, sequence)  # a bad window fails fast and cheaply
    tokens = transcript_to_tokens(transcript, mode)
    ids = tuple(tokens_to_ids(tokens))
    if duration is not None or track.end is not None:
        check_speech_rate(len(ids), start, end, sequence)
    return PhonemeTrack(tokens=tuple(tokens), ids=ids, start=track.start, end=track.end)


def phoneme_frame_ids(
    transcript: str | None,
    speech_start: float | None = None,
    speech_end: float | None = None,
    duration: float | None = None,
    sequence: SequenceConfig = SEQUENCE,
    windows: WindowConfig = WINDOWS,
) -> torch.Tensor:
    """Per-latent-frame phoneme ids (int64) over the timeline of a clip of ``duration`` seconds (see
    :meth:`PhonemeTrack.frame_ids`; ``[250]`` for a clip of one window).

    No transcript (None, or only white space) means a clip without speech: all ids are 0, as VGGSound clips were
    trained.  Otherwise the phonemes are stretched over ``[speech_start, speech_end]`` (default: the whole clip,
    which is what training did: the utterance's duration was the clip's) and the window must lie inside the clip.
    """
    track = phoneme_track(transcript, speech_start, speech_end, duration, sequence=sequence)
    return track.frame_ids(duration, sequence, windows)
