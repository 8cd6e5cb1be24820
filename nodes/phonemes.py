"""Phoneme Tokenizer (VSSFlow): the transcript as phonemes, placed between a speech start and end."""

from __future__ import annotations

import math

from ..vssflow_core.config import WINDOWS
from ..vssflow_core.text.phonemes import MODES
from ..vssflow_core.text.track import phoneme_track
from .comfy_bridge import io
from .common import CATEGORY, PhonemesType



def mode_input():
    """How the text is read (shared by the Phoneme Tokenizer and the Dialogue node)."""
    return io.Combo.Input("mode", options=list(MODES), default="auto",
                          tooltip="auto: ARPAbet when every word looks like a phone and one has a stress digit, "
                                  "else English text; text / arpabet: force one.")


class VSSFlowPhonemeTokenizer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        window = WINDOWS.max_duration_sec
        return io.Schema(
            node_id="VSSFlowPhonemeTokenizer", display_name="Phoneme Tokenizer (VSSFlow)", category=CATEGORY,
            description="Turns the words to be spoken into the phonemes VSSFlow pronounces, spread evenly between "
                        "speech_start and speech_end (0 = the end of the clip). English text is converted offline; "
                        "a transcript written in ARPAbet (e.g. 'HH AH0 L OW1') is used as is. Leave the transcript "
                        "empty for sound effects only.",
            search_aliases=["text to speech", "lip sync", "dubbing", "transcript"],
            inputs=[
                io.String.Input("transcript", multiline=True, default="",
                                tooltip="Words to be spoken (English), or ARPAbet phones. Empty: no speech."),
                io.Float.Input("speech_start", default=0.0, min=0.0, max=window, step=0.01,
                               tooltip="Second of the clip where the speech starts."),
                io.Float.Input("speech_end", default=0.0, min=0.0, max=window, step=0.01,
                               tooltip="Second of the clip where the speech ends; 0 = the end of the clip."),
                mode_input(),
                io.Float.Input("duration", force_input=True, optional=True,
                               tooltip="The clip's duration (VideoLoader's duration output), so the window is "
                                       "checked and drawn against the real clip."),
            ],
            outputs=[PhonemesType.Output("phonemes", tooltip="The phonemes on the clip's time axis, for the FlowDiT "
                                                             "Sampler.")],
        )

    @classmethod
    def execute(cls, transcript: str, speech_start: float, speech_end: float, mode: str,
                duration=None) -> io.NodeOutput:
        track = tokenize(transcript, speech_start, speech_end, mode, duration)
        start, end = track.window(duration)
        ui = {"tokens": list(track.tokens), "start": start, "end": end, "duration": duration}
        return io.NodeOutput(track, ui={"vssflow_phonemes": [ui]})


def tokenize(transcript: str, speech_start: float = 0.0, speech_end: float = 0.0, mode: str = "auto",
             duration: float | None = None):
    """The tokenizer's work (also done by Add Sound to Video): the phoneme track.

    speech_end 0 or NaN (not a number, e.g. from a linked math node) is the clip's end, the widget's way of saying
    "none"; any other end must lie in the clip (the core refuses it otherwise, with the reason)."""
    end = None if speech_end == 0 or math.isnan(speech_end) else speech_end
    return phoneme_track(transcript, speech_start, end, duration, mode=mode)
