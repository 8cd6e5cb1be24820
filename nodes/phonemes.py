"""Phoneme Tokenizer (VSSFlow): the transcript as phonemes, placed between a speech start and end."""

from __future__ import annotations

from ..vssflow_core.config import WINDOWS
from ..vssflow_core.text.track import phoneme_track
from .common import CATEGORY, PHONEMES

MODES = ["auto", "text", "arpabet"]


class VSSFlowPhonemeTokenizer:
    DESCRIPTION = ("Turns the words to be spoken into the phonemes VSSFlow pronounces, spread evenly between "
                   "speech_start and speech_end (0 = the end of the clip). English text is converted offline; a "
                   "transcript written in ARPAbet (e.g. 'HH AH0 L OW1') is used as is. Leave the transcript empty for "
                   "sound effects only.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (PHONEMES,)
    RETURN_NAMES = ("phonemes",)
    OUTPUT_TOOLTIPS = ("The phonemes on the clip's time axis, for the FlowDiT Sampler.",)
    FUNCTION = "tokenize"

    @classmethod
    def INPUT_TYPES(cls):
        window = WINDOWS.max_duration_sec
        return {
            "required": {
                "transcript": ("STRING", {
                    "multiline": True, "default": "",
                    "tooltip": "Words to be spoken (English), or ARPAbet phones. Empty: no speech."}),
                "speech_start": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": window, "step": 0.01,
                    "tooltip": "Second of the clip where the speech starts."}),
                "speech_end": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": window, "step": 0.01,
                    "tooltip": "Second of the clip where the speech ends; 0 = the end of the clip."}),
                "mode": (MODES, {
                    "default": "auto",
                    "tooltip": "auto: ARPAbet when every word looks like a phone and one has a stress digit, else "
                               "English text; text / arpabet: force one."}),
            },
            "optional": {
                "duration": ("FLOAT", {
                    "forceInput": True,
                    "tooltip": "The clip's duration (VideoLoader's duration output), so the window is checked and drawn "
                               "against the real clip."}),
            },
        }

    def tokenize(self, transcript: str, speech_start: float, speech_end: float, mode: str, duration=None):
        track = phoneme_track(transcript, speech_start, speech_end if speech_end > 0 else None, duration, mode=mode)
        start, end = track.window(duration)
        ui = {"tokens": list(track.tokens), "start": start, "end": end, "duration": duration}
        return {"ui": {"vssflow_phonemes": [ui]}, "result": (track,)}
