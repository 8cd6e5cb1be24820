"""Procedural audio-visual data with known timing: bouncing, flashing and sliding objects with their sounds, and
drawn faces speaking espeak-ng speech.  ``python -m vssflow_core.synthetic --out DIR`` writes a data set.

:mod:`.scenes` draws the clips, :mod:`.generator` writes files and manifests, :mod:`.analysis` measures onsets and
mouth openings (for the held-out evaluation and the tests).
"""

from .analysis import audio_onsets, decode_clip, mouth_opening, onset_f1, pearson
from .generator import DatasetCounts, generate_dataset, generate_item, write_video
from .scenes import EVENT_KINDS, Clip, SceneSpec, espeak_available, make_sound_clip, make_talking_clip, make_tts_audio

__all__ = [
    "EVENT_KINDS",
    "Clip",
    "DatasetCounts",
    "SceneSpec",
    "audio_onsets",
    "decode_clip",
    "espeak_available",
    "generate_dataset",
    "generate_item",
    "make_sound_clip",
    "make_talking_clip",
    "make_tts_audio",
    "mouth_opening",
    "onset_f1",
    "pearson",
    "write_video",
]
