"""Spelling out numbers the way keithito's tacotron front-end does.

Both halves of the official phoneme pipeline carry this same normaliser: ESPnet's tacotron cleaner runs it on the
transcript, and g2p_en runs it again on whatever reaches it.  The rules are reproduced here (not improved upon)
because the model was trained on their output: ``$25.50`` becomes ``25 dollars, 50 cents``, years between 1000 and
3000 are read in pairs (``1999`` -> ``nineteen ninety-nine``), and every other integer is read in full.

One departure, where the original fails: an integer too long to have a name (more than :data:`MAX_NAMED_DIGITS`
digits: inflect stops at decillions, and Python refuses to convert 4,300 digits or more) is read digit by digit, as a
person reads out a long code (``"0042..."`` -> ``zero zero four two ...``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # inflect is imported lazily: building its engine costs ~0.1 s at import time
    import inflect

# A digit, then digits and commas, then a digit: "1,234,567" (commas inside a number are dropped).
_GROUPED_NUMBER = re.compile(r"([0-9][0-9,]+[0-9])")
_DECIMAL = re.compile(r"([0-9]+\.[0-9]+)")
_POUNDS = re.compile(r"£([0-9,]*[0-9]+)")
_DOLLARS = re.compile(r"\$([0-9.,]*[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_INTEGER = re.compile(r"[0-9]+")

MAX_NAMED_DIGITS = 36  # inflect names integers below 10**36 (up to decillions)
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _named(digits: str) -> bool:
    return len(digits) <= MAX_NAMED_DIGITS


def _digit_by_digit(digits: str) -> str:
    return " ".join(_DIGIT_WORDS[int(d)] for d in digits)


def _amount(digits: str) -> int | str:
    """An amount's count: an int when it has a name, else the digits themselves (never one, so plural)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if _named(digits) else digits


@lru_cache(maxsize=1)
def _engine() -> "inflect.engine":
    import inflect

    return inflect.engine()


def _unit(count: int, singular: str) -> str:
    return singular if count == 1 else singular + "s"


def _spell_dollars(match: re.Match[str]) -> str:
    amount = match.group(1)
    pieces = amount.split(".")
    if len(pieces) > 2:  # "$1.2.3" is no amount; keep the digits and let the integer rule read them
        return f"{amount} dollars"
    dollars = _amount(pieces[0]) if pieces[0] else 0
    cents = _amount(pieces[1]) if len(pieces) == 2 and pieces[1] else 0
    if dollars and cents:
        return f"{dollars} {_unit(dollars, 'dollar')}, {cents} {_unit(cents, 'cent')}"
    if dollars:
        return f"{dollars} {_unit(dollars, 'dollar')}"
    if cents:
        return f"{cents} {_unit(cents, 'cent')}"
    return "zero dollars"


def _spell_ordinal(match: re.Match[str]) -> str:
    digits = match.group(0)[: -len(match.group(1))]
    if _named(digits):
        return _engine().number_to_words(match.group(0))
    return _digit_by_digit(digits[:-1]) + " " + _engine().ordinal(_DIGIT_WORDS[int(digits[-1])])


def _spell_integer(match: re.Match[str]) -> str:
    if not _named(match.group(0)):
        return _digit_by_digit(match.group(0))
    value = int(match.group(0))
    engine = _engine()
    if not 1000 < value < 3000:
        return engine.number_to_words(value, andword="")
    # Years are read in pairs of digits, with the exceptions English speakers make.
    if value == 2000:
        return "two thousand"
    if 2000 < value < 2010:
        return "two thousand " + engine.number_to_words(value % 100)
    if value % 100 == 0:
        return engine.number_to_words(value // 100) + " hundred"
    return engine.number_to_words(value, andword="", zero="oh", group=2).replace(", ", " ")


def normalize_numbers(text: str) -> str:
    """Replace every number in ``text`` by words (tacotron rules, lower case)."""
    text = _GROUPED_NUMBER.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _POUNDS.sub(r"\1 pounds", text)
    text = _DOLLARS.sub(_spell_dollars, text)
    text = _DECIMAL.sub(lambda m: m.group(1).replace(".", " point "), text)
    text = _ORDINAL.sub(_spell_ordinal, text)
    return _INTEGER.sub(_spell_integer, text)
