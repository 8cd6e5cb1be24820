"""Transcript -> per-frame phoneme ids, against the official pipeline's output (golden/phonemes.json), offline."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Iterator

import pytest

from offline import network_forbidden
import torch

from vssflow_core.config import SEQUENCE
from vssflow_core.text.phonemes import (
    BLANK,
    BLANK_ID,
    PHONES,
    TOKEN_IDS,
    looks_like_arpabet,
    phonemize,
    silent_frame_ids,
    stretch_ids,
)


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[list]:
    """The whole module runs with the network forbidden and the G2P rebuilt under that rule."""
    with network_forbidden() as downloads:
        yield downloads
    assert downloads == []


@pytest.fixture(scope="module")
def golden_cases(golden_dir: Path) -> list[dict]:
    return json.loads((golden_dir / "phonemes.json").read_text())["cases"]


def _runs(frame_ids: torch.Tensor) -> list[tuple[int, int]]:
    return [(int(k), len(list(g))) for k, g in itertools.groupby(frame_ids.tolist())]


# ---------------------------------------------------------------------------------------------------------------------
# The official table and the golden cases


def test_token_table_is_the_official_one() -> None:
    assert len(TOKEN_IDS) == 70 and sorted(TOKEN_IDS.values()) == list(range(1, 71))
    assert TOKEN_IDS[BLANK] == BLANK_ID == 59 and TOKEN_IDS["AA0"] == 1 and TOKEN_IDS["AE2"] == 70
    assert len(PHONES) == 69


def test_golden_cases_reproduced_exactly(golden_cases: list[dict], offline: list) -> None:
    assert len(golden_cases) >= 10
    for case in golden_cases:
        result = phonemize(case["text"], case["speech_start_sec"], case["speech_end_sec"])
        assert list(result.tokens) == case["phonemes"], case["text"]
        assert result.frame_ids.dtype == torch.long and result.frame_ids.shape == (SEQUENCE.latent_length,)
        assert result.frame_ids.tolist() == case["frame_ids"], case["text"]
        assert result.window == (case["speech_start_sec"], case["speech_end_sec"])
    assert offline == []


def test_homograph_is_disambiguated_by_the_tagger() -> None:
    tokens = " ".join(phonemize("I refuse to collect the refuse.").tokens)
    assert tokens.index("R IH0 F Y UW1 Z") < tokens.index("R EH1 F Y UW2 Z")


# ---------------------------------------------------------------------------------------------------------------------
# ARPAbet passthrough


def test_arpabet_passthrough_matches_text() -> None:
    written = phonemize("HH AH0 L OW1 , W ER1 L D")
    assert written.tokens == (BLANK, "HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", BLANK)
    assert written.ids == phonemize("Hello, world").ids
    assert phonemize("hh ah0 l ow1").tokens == (BLANK, "HH", "AH0", "L", "OW1", BLANK)
    assert phonemize("<blank> HH AH0 L OW1 <blank>").tokens == (BLANK, "HH", "AH0", "L", "OW1", BLANK)


def test_arpabet_detection() -> None:
    assert looks_like_arpabet("HH AH0 L OW1")
    assert not looks_like_arpabet("OK GO")  # upper-case text has no stress digits
    assert not looks_like_arpabet("A1 sauce is great")
    assert phonemize("OK GO").tokens[1:-1] == ("OW1", "K", "EY1", "G", "OW1")


def test_invalid_arpabet_names_the_token_and_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"invalid ARPAbet token 'OW' at position 3.*OW1.*Valid tokens: AA0 AA1"):
        phonemize("HH AH0 L OW")
    with pytest.raises(ValueError, match=r"'XX1'.*<blank>"):
        phonemize("HH AH0 XX1")
    with pytest.raises(ValueError, match=r"'hello'"):
        phonemize("hello", mode="arpabet")


# ---------------------------------------------------------------------------------------------------------------------
# Stretching over the speech window


def test_stretching_rule_spec_example() -> None:
    # 7 phones over 80 frames (3.2 s at 25 frames/s): runs of 12, 11, 12, 11, 12, 11, 11, then padding.
    frames = stretch_ids([1, 2, 3, 4, 5, 6, 7], 0.0, 3.2)
    assert _runs(frames) == [(1, 12), (2, 11), (3, 12), (4, 11), (5, 12), (6, 11), (7, 11), (0, 170)]


def test_window_start_pads_with_zeros_and_long_windows_are_cropped() -> None:
    assert _runs(stretch_ids([5, 6], 1.0, 2.0)) == [(0, 25), (5, 13), (6, 12), (0, 200)]
    assert _runs(stretch_ids([5, 6], 9.0, 10.0))[0] == (0, 225)
    assert silent_frame_ids().tolist() == [0] * SEQUENCE.latent_length


# ---------------------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_transcript(text: str) -> None:
    with pytest.raises(ValueError, match="empty transcript"):
        phonemize(text)


@pytest.mark.parametrize(
    ("text", "mode"), [("!!! ... ?", "auto"), ("\U0001f600\U0001f389", "auto"), ("<blank> , .", "arpabet")]
)
def test_transcript_without_pronounceable_content(text: str, mode: str) -> None:
    with pytest.raises(ValueError, match="nothing to pronounce"):
        phonemize(text, mode=mode)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (3.0, 3.0, "must be after its start"),
        (5.0, 2.0, "must be after its start"),
        (-1.0, 2.0, "outside the clip"),
        (2.0, 10.5, "outside the clip"),
        (1.0, 1.02, "shorter than one frame"),
        (0.0, float("nan"), "finite"),
    ],
)
def test_bad_speech_window(start: float, end: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        phonemize("Hello", start, end)


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        phonemize("Hello", mode="ipa")  # type: ignore[arg-type]
