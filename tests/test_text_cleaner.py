"""The tacotron cleaner re-implementation against ESPnet's own (``espnet_tts_frontend``, a test-only dependency)."""

from __future__ import annotations

import re

import pytest

from vssflow_core.text.cleaner import clean_transcript, split_digits_from_letters, tacotron_english_cleaner

SENTENCES = [
    "(Hello-World); & jr. & dr.",
    "I paid $25.50 for 3 tickets on Jan. 5th.",
    "Dr. Smith & Mr. Jones met at 10am.",
    "Mrs. Co. St. Ft. Col. drs. Capt. Lt. Sgt. Hon. Esq. Ltd. Maj. Gen. Rev.",
    "co.jr. st.dr.",  # sequential abbreviation rules hide the second one
    "1,234,567 people in 1999, 2000, 2005, 1900, 2026 and 1000 or 3000.",
    "$1.2.3 $0.01 $1 $.5 $0 $1,000,000.99",
    "£5 and €3, ¥100",  # transliterated before number expansion: '£' -> 'PS'
    "3.14159 and 21st 102nd 3rd 11th",
    'Café naïve — “quotes” «x» <b>[y]</b> {z}',
    "  a\t\nb  ",
    "😀 !!! ... ?!",
    'ACME\'s CEO said: "We\'ll ship it!"',
    "Mix 2kg of flour with H2O; the R2D2 unit's 3D printer.",
    "x-ray, e.g. twenty-one; i.e. 50% off #1 @home",
    "Zoë's Ångström déjà-vu: Straße, Øresund, Ærø.",
    "",
]


def _official(text: str) -> str:
    cleaners = pytest.importorskip("tacotron_cleaner.cleaners")
    # infer.py's digit split, written independently of ours (its replacement inserts two spaces)
    return cleaners.custom_english_cleaners(re.sub(r"(?<=\d)(?=[a-zA-Z])|(?<=[a-zA-Z])(?=\d)", "  ", text))


@pytest.mark.parametrize("text", SENTENCES)
def test_matches_espnet_tacotron_cleaner(text: str) -> None:
    assert clean_transcript(text) == _official(text)


def test_spec_example() -> None:
    assert tacotron_english_cleaner("(Hello-World); & jr. & dr.") == "HELLO WORLD, AND JUNIOR AND DOCTOR"


def test_digits_split_from_letters() -> None:
    assert split_digits_from_letters("10am H2O 5th").split() == ["10", "am", "H", "2", "O", "5", "th"]
    assert clean_transcript("10am H2O") == "TEN AM H TWO O"
