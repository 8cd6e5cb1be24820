"""The one-line speech of the official widgets (a transcript over a speech window), under the names the pipeline
used before dialogue: it is the :class:`~vssflow_core.text.speech.SpeechTrack` of a single line."""

from __future__ import annotations

import torch

from ..config import SEQUENCE, WINDOWS, SequenceConfig, WindowConfig
from .speech import SpeechTrack, one_line_track

__all__ = ["PhonemeTrack", "phoneme_frame_ids", "phoneme_track"]

PhonemeTrack = SpeechTrack  # a track of no lines is a clip without speech
phoneme_track = one_line_track


def phoneme_frame_ids(transcript: str | None, speech_start: float | None = None, speech_end: float | None = None,
                      duration: float | None = None, sequence: SequenceConfig = SEQUENCE,
                      windows: WindowConfig = WINDOWS) -> torch.Tensor:
    """The transcript's per-latent-frame phoneme ids on the timeline of a clip of ``duration`` seconds (see
    :meth:`SpeechTrack.frame_ids`); no transcript: all zeros, as VGGSound clips were trained."""
    track = one_line_track(transcript, speech_start, speech_end, duration, sequence=sequence, windows=windows)
    return track.frame_ids(duration, sequence, windows)
