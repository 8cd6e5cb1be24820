"""The transcript cleaner of the official pipeline: ESPnet's ``TextCleaner("tacotron")``.

The official ``infer.py`` first splits digits from letters (``10am`` -> ``10 am``, ``H2O`` -> ``H 2 O``) and then
runs ``tacotron_cleaner.cleaners.custom_english_cleaners`` from the ``espnet_tts_frontend`` package.  That package
also pulls in Chinese and Japanese front-ends (pypinyin, jaconv) we never use, so the cleaner is re-implemented here
step for step; ``tests/test_text_cleaner.py`` checks it against the package on a set of sentences.

Steps, in order (the order matters: ASCII transliteration runs before number expansion, so ``£5`` becomes ``PS5``
and is never read as pounds, exactly as in the original):

1. transliterate to ASCII (unidecode), 2. lower-case, 3. spell out numbers, 4. expand abbreviations,
5. ``;`` and ``:`` -> ``,``, ``-`` -> space, ``&`` -> ``and``, 6. drop brackets and double quotes,
7. upper-case, 8. collapse runs of whitespace into one space (leading/trailing spaces are kept, as upstream).
"""

from __future__ import annotations

import re

from .numbers import normalize_numbers

_DIGIT_LETTER_BOUNDARY = re.compile(r"(?<=\d)(?=[a-zA-Z])|(?<=[a-zA-Z])(?=\d)")
_WHITESPACE = re.compile(r"\s+")
_DROPPED_SYMBOLS = re.compile(r'[()\[\]<>"]+')

# Applied one after the other in this order, like upstream: a replacement can hide a later abbreviation from its
# word boundary ("co.jr." -> "companyjr."), so a single alternation regex would not give the same text.
_ABBREVIATIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"\b{short}\.", re.IGNORECASE), long)
    for short, long in (
        ("mrs", "misess"),  # sic: the spelling g2p then pronounces; the model was trained on it
        ("mr", "mister"),
        ("dr", "doctor"),
        ("st", "saint"),
        ("co", "company"),
        ("jr", "junior"),
        ("maj", "major"),
        ("gen", "general"),
        ("drs", "doctors"),
        ("rev", "reverend"),
        ("lt", "lieutenant"),
        ("hon", "honorable"),
        ("sgt", "sergeant"),
        ("capt", "captain"),
        ("esq", "esquire"),
        ("ltd", "limited"),
        ("col", "colonel"),
        ("ft", "fort"),
    )
)

_SYMBOL_WORDS = str.maketrans({";": ",", ":": ",", "-": " ", "&": "and"})


def split_digits_from_letters(text: str) -> str:
    """Put spaces between digits and letters that touch (``2kg`` -> ``2  kg``), as ``infer.py`` does first.

    Without it, ``5th`` would be read as an ordinal and ``10am`` would reach g2p as one unknown word.
    """
    return _DIGIT_LETTER_BOUNDARY.sub("  ", text)


def to_ascii(text: str) -> str:
    from unidecode import unidecode  # imported here: only cleaning needs it

    return unidecode(text)


def expand_abbreviations(text: str) -> str:
    for pattern, replacement in _ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    return text


def expand_symbols(text: str) -> str:
    """Punctuation that g2p would drop silently becomes a pause (``,``) or a word."""
    return _DROPPED_SYMBOLS.sub("", text.translate(_SYMBOL_WORDS))


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text)


def tacotron_english_cleaner(text: str) -> str:
    """``custom_english_cleaners`` of ESPnet's tacotron cleaner (steps 1-8 of the module docstring)."""
    text = to_ascii(text).lower()
    text = normalize_numbers(text)
    text = expand_abbreviations(text)
    text = expand_symbols(text)
    return collapse_whitespace(text.upper())


def clean_transcript(text: str) -> str:
    """The official transcript cleaning: digits split from letters, then the tacotron English cleaner.

    >>> clean_transcript("(Hello-World); & jr. & dr.")
    'HELLO WORLD, AND JUNIOR AND DOCTOR'
    """
    return tacotron_english_cleaner(split_digits_from_letters(text))
