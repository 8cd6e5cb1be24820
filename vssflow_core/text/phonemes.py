"""Transcript -> VSSFlow phoneme ids, one per latent frame (the official ``infer.py::text_to_phoneme_ids``).

The model has no duration model: the phoneme ids of the whole utterance are stretched almost uniformly over the
speech window the user gives, and the lip and Synchformer features do the fine alignment.  The steps:

1. text -> tokens: digits split from letters, tacotron cleaner, g2p_en without word spaces, ``<blank>`` added at both
   ends.  Punctuation tokens are kept in :attr:`PhonemeSequence.tokens` (the official code returns them too) and map
   to ``<blank>``.  A transcript already written in ARPAbet (``"HH AH0 L OW1"``) is taken as is, after validation.
2. tokens -> ids with the official 70-entry table (``data/token_list.json``); 0 is padding / "no speech".
3. ids -> frames: stretched over ``int((end - start) * 25)`` frames (repeat every id ``ceil(frames / n)`` times, then
   nearest-neighbour resize), preceded by ``int(start * 25)`` zeros, then zero-padded or cropped to 250 frames.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..config import SEQUENCE, SequenceConfig

BLANK = "<blank>"
PAD_ID = 0  # padding and "no speech": a non-speech clip has all-zero phoneme ids

# data/token_list.json of the official code: 15 vowels x 3 stresses + 24 consonants + <blank>, ids 1..70.
TOKEN_IDS: Mapping[str, int] = MappingProxyType(
    {
        "AA0": 1, "DH": 2, "AY0": 3, "V": 4, "F": 5, "AH2": 6, "D": 7, "P": 8, "EH1": 9, "AW1": 10,
        "ER0": 11, "OW0": 12, "TH": 13, "UH1": 14, "OW2": 15, "IY2": 16, "HH": 17, "UW0": 18, "CH": 19, "AH1": 20,
        "JH": 21, "OY2": 22, "Z": 23, "AO2": 24, "IH0": 25, "NG": 26, "UH0": 27, "AE1": 28, "AO0": 29, "IH2": 30,
        "IY0": 31, "EH0": 32, "AY2": 33, "T": 34, "OY1": 35, "ER2": 36, "AA2": 37, "Y": 38, "AW0": 39, "UH2": 40,
        "M": 41, "UW2": 42, "IH1": 43, "R": 44, "SH": 45, "G": 46, "S": 47, "AE0": 48, "EH2": 49, "W": 50,
        "UW1": 51, "AW2": 52, "EY1": 53, "ZH": 54, "OY0": 55, "OW1": 56, "EY0": 57, "L": 58, BLANK: 59, "ER1": 60,
        "N": 61, "AA1": 62, "AY1": 63, "AO1": 64, "B": 65, "EY2": 66, "K": 67, "AH0": 68, "IY1": 69, "AE2": 70,
    }
)  # fmt: skip
BLANK_ID = TOKEN_IDS[BLANK]
PHONES: tuple[str, ...] = tuple(sorted(token for token in TOKEN_IDS if token != BLANK))

# Marks a user may put between ARPAbet phones; like punctuation from g2p they become <blank> (a pause).
PAUSE_MARKS = frozenset({",", ".", "!", "?", ";", ":", "-", "'", "..."})

Mode = Literal["auto", "text", "arpabet"]
MODES: tuple[str, ...] = Mode.__args__  # the same names as a sequence, for menus and checks

# A token that looks like ARPAbet: 1-2 letters with an optional stress digit, <blank>, or a pause mark.
_ARPABET_LIKE = re.compile(r"^(?:[A-Za-z]{1,2}[0-9]?|<blank>|[,.!?;:'\-]|\.\.\.)$", re.IGNORECASE)
_STRESSED = re.compile(r"^[A-Za-z]{1,2}[0-9]$")


@dataclass(frozen=True, eq=False)
class PhonemeSequence:
    """What the phoneme condition of one clip is made of."""

    tokens: tuple[str, ...]  # with <blank> at both ends; punctuation kept (it maps to <blank>)
    ids: tuple[int, ...]  # one id per token
    frame_ids: torch.Tensor  # (latent_length,) int64: ids stretched over the speech window, 0 elsewhere
    window: tuple[float, float]  # (speech_start_sec, speech_end_sec)


def tokens_to_ids(tokens: Iterable[str]) -> list[int]:
    """Official table lookup; anything not in it (punctuation, g2p's unstressed ``UW``) becomes ``<blank>``."""
    return [TOKEN_IDS.get(token, BLANK_ID) for token in tokens]


def _with_blank_ends(tokens: Sequence[str]) -> list[str]:
    # infer.py wraps every sequence in <blank>; a user-written ARPAbet sequence that already has them keeps one each.
    tokens = list(tokens)
    if not tokens or tokens[0] != BLANK:
        tokens.insert(0, BLANK)
    if len(tokens) == 1 or tokens[-1] != BLANK:
        tokens.append(BLANK)
    return tokens


def _require_speech(tokens: Sequence[str], transcript: str) -> None:
    if not any(token in TOKEN_IDS and token != BLANK for token in tokens):
        raise ValueError(
            f"transcript {transcript!r} has nothing to pronounce (only punctuation, symbols or emoji?); "
            "write the words to be spoken, or give no transcript for a clip without speech"
        )


def looks_like_arpabet(transcript: str) -> bool:
    """True when every token is phone-shaped (``HH``, ``AH0``, ``<blank>``, ``,``) and one carries a stress digit.

    The stress digit is what tells ``"HH AH0 L OW1"`` from ordinary upper-case text such as ``"OK GO"``.
    """
    tokens = transcript.split()
    return (
        bool(tokens)
        and all(_ARPABET_LIKE.match(token) for token in tokens)
        and any(_STRESSED.match(token) for token in tokens)
    )


def parse_arpabet(transcript: str) -> list[str]:
    """Validate a transcript written as ARPAbet tokens and return them with ``<blank>`` at both ends.

    Phones may be lower case; ``<blank>`` and the marks in :data:`PAUSE_MARKS` are pauses.
    """
    tokens = []
    for position, raw in enumerate(transcript.split()):
        token = BLANK if raw.lower() == BLANK else raw if raw in PAUSE_MARKS else raw.upper()
        if token not in TOKEN_IDS and token not in PAUSE_MARKS:
            hint = ""
            if token + "1" in TOKEN_IDS:
                hint = f" (vowels need a stress digit: {token}0, {token}1 or {token}2)"
            raise ValueError(
                f"invalid ARPAbet token {raw!r} at position {position}{hint}. Valid tokens: {' '.join(PHONES)}, "
                f"{BLANK} and the pause marks {' '.join(sorted(PAUSE_MARKS))}"
            )
        tokens.append(token)
    _require_speech(tokens, transcript)
    return _with_blank_ends(tokens)


def text_to_tokens(transcript: str) -> list[str]:
    """English text -> ``[<blank>, phones and punctuation..., <blank>]`` as the official pipeline produces them."""
    from .cleaner import clean_transcript
    from .g2p import g2p

    tokens = g2p(clean_transcript(transcript))
    _require_speech(tokens, transcript)
    return [BLANK, *tokens, BLANK]


def transcript_to_tokens(transcript: str, mode: Mode = "auto") -> list[str]:
    """Tokens of a transcript given as English text or as ARPAbet (``mode="auto"`` tells them apart)."""
    if not transcript or not transcript.strip():
        raise ValueError("empty transcript: give the words to be spoken, or no transcript for a clip without speech")
    if mode == "arpabet" or (mode == "auto" and looks_like_arpabet(transcript)):
        return parse_arpabet(transcript)
    if mode not in ("auto", "text"):
        raise ValueError(f"mode must be 'auto', 'text' or 'arpabet', not {mode!r}")
    return text_to_tokens(transcript)


def check_speech_window(
    speech_start_sec: float, speech_end_sec: float, sequence: SequenceConfig = SEQUENCE
) -> None:
    duration = sequence.duration_sec
    if not (math.isfinite(speech_start_sec) and math.isfinite(speech_end_sec)):
        raise ValueError(f"speech window must be finite, got {speech_start_sec}..{speech_end_sec} s; give its start "
                         f"and end in seconds of the video")
    if speech_end_sec <= speech_start_sec:
        raise ValueError(
            f"speech window end ({speech_end_sec} s) must be after its start ({speech_start_sec} s); swap or fix them"
        )
    if speech_start_sec < 0 or speech_end_sec > duration:
        raise ValueError(
            f"speech window {speech_start_sec}..{speech_end_sec} s lies outside the clip (0..{duration:g} s); move "
            f"the speech window inside the video"
        )
    if int((speech_end_sec - speech_start_sec) * sequence.phoneme_fps) < 1:
        raise ValueError(
            f"speech window {speech_start_sec}..{speech_end_sec} s is shorter than one frame "
            f"({1 / sequence.phoneme_fps} s); widen it"
        )


# Natural English speech runs at about this many phonemes per second; used only to suggest a speech window length.
NATURAL_PHONEMES_PER_SEC = 12


def check_speech_rate(
    num_ids: int, speech_start_sec: float, speech_end_sec: float, sequence: SequenceConfig = SEQUENCE
) -> None:
    """Refuse more phoneme ids than the speech window has frames: stretching them would silently drop the surplus."""
    frames = int((speech_end_sec - speech_start_sec) * sequence.phoneme_fps)
    if num_ids > frames:
        raise ValueError(
            f"the transcript has {num_ids} phonemes (pauses included) but the speech window "
            f"{speech_start_sec:g}..{speech_end_sec:g} s holds only {frames} frames ({sequence.phoneme_fps} per "
            f"second), so most of it could not be spoken; shorten the transcript or widen the speech window (natural "
            f"speech needs about {num_ids / NATURAL_PHONEMES_PER_SEC:.0f} s for it)"
        )


def stretch_ids(
    ids: Sequence[int],
    speech_start_sec: float,
    speech_end_sec: float,
    sequence: SequenceConfig = SEQUENCE,
) -> torch.Tensor:
    """Per-frame ids: ``ids`` spread over the speech window, zeros before and after, ``sequence.latent_length`` long.

    The official rule, kept bit for bit (the model was trained on it): repeat each id ``ceil(frames / len(ids))``
    times so the sequence is at least as long as the window, then resize with nearest neighbour.  Seven ids over 80
    frames give runs of 12, 11, 12, 11, 12, 11, 11 frames.
    """
    if len(ids) == 0:
        raise ValueError("no phoneme ids to stretch")
    check_speech_window(speech_start_sec, speech_end_sec, sequence)
    fps = sequence.phoneme_fps
    frames = int((speech_end_sec - speech_start_sec) * fps)  # truncation, as infer.py: 2.8 s -> 70 frames
    lead = int(speech_start_sec * fps)

    stretched = torch.tensor(list(ids), dtype=torch.long).repeat_interleave(math.ceil(frames / len(ids)))
    # nearest-neighbour resize on float, as upstream: PyTorch's index rounding is part of the rule
    stretched = F.interpolate(stretched[None, None].float(), size=frames, mode="nearest")[0, 0].long()

    out = torch.full((sequence.latent_length,), PAD_ID, dtype=torch.long)
    visible = max(0, min(frames, sequence.latent_length - lead))
    out[lead : lead + visible] = stretched[:visible]
    return out


def silent_frame_ids(sequence: SequenceConfig = SEQUENCE) -> torch.Tensor:
    """Per-frame ids of a clip without speech (all padding), what VGGSound clips were trained with."""
    return torch.full((sequence.latent_length,), PAD_ID, dtype=torch.long)


def phonemize(
    transcript: str,
    speech_start_sec: float = 0.0,
    speech_end_sec: float | None = None,
    *,
    mode: Mode = "auto",
    sequence: SequenceConfig = SEQUENCE,
) -> PhonemeSequence:
    """Transcript (English text or ARPAbet) and speech window -> per-frame phoneme ids for the model.

    ``speech_end_sec`` defaults to the end of the clip (``sequence.duration_sec``).
    """
    end = sequence.duration_sec if speech_end_sec is None else float(speech_end_sec)
    start = float(speech_start_sec)
    check_speech_window(start, end, sequence)  # before G2P: a bad window should fail fast and cheaply
    tokens = transcript_to_tokens(transcript, mode)
    ids = tokens_to_ids(tokens)
    return PhonemeSequence(
        tokens=tuple(tokens),
        ids=tuple(ids),
        frame_ids=stretch_ids(ids, start, end, sequence),
        window=(start, end),
    )
