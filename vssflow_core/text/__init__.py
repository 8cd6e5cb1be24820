"""Transcript -> phoneme condition: tacotron cleaner, offline g2p_en-style G2P, and the official id table.

Usage: ``phonemize("Hello there.", speech_start_sec=1.0, speech_end_sec=3.5).frame_ids`` -> (250,) int64.
Nothing here downloads anything; the G2P resources load on first use.
"""

from .cleaner import clean_transcript
from .g2p import get_g2p
from .phonemes import (
    BLANK,
    BLANK_ID,
    PAD_ID,
    PHONES,
    TOKEN_IDS,
    PhonemeSequence,
    looks_like_arpabet,
    parse_arpabet,
    phonemize,
    silent_frame_ids,
    stretch_ids,
    text_to_tokens,
    tokens_to_ids,
    transcript_to_tokens,
)

__all__ = [
    "BLANK",
    "BLANK_ID",
    "PAD_ID",
    "PHONES",
    "TOKEN_IDS",
    "PhonemeSequence",
    "clean_transcript",
    "get_g2p",
    "looks_like_arpabet",
    "parse_arpabet",
    "phonemize",
    "silent_frame_ids",
    "stretch_ids",
    "text_to_tokens",
    "tokens_to_ids",
    "transcript_to_tokens",
]
