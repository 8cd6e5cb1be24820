"""Offline G2P: no network, no nltk.download, g2p_en's behaviour (checked against g2p_en itself where possible)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterator

import pytest

from offline import network_forbidden

import vssflow_core.text.g2p as g2p_module
from vssflow_core.text.g2p import G2p, NounTagger, get_g2p, load_pos_tagger, sentence_features


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[list]:
    """The whole module runs with the network forbidden and the G2P rebuilt under that rule."""
    with network_forbidden() as downloads:
        yield downloads
    assert downloads == []


@pytest.fixture(scope="module")
def converter() -> G2p:
    return get_g2p()


def test_loads_offline_with_crf_tagger(converter: G2p, offline: list) -> None:
    assert type(converter.tagger).__name__ == "CrfPosTagger"
    assert offline == []


def test_no_word_space_tokens(converter: G2p) -> None:
    phones = converter("Hello, world! How are you?")
    assert " " not in phones
    assert phones == "HH AH0 L OW1 , W ER1 L D ! HH AW1 AA1 R Y UW1 ?".split()


@pytest.mark.parametrize(
    ("sentence", "readings"),
    [
        ("I refuse to collect the refuse.", ["R IH0 F Y UW1 Z", "R EH1 F Y UW2 Z"]),
        ("We will record a new record.", ["R IH0 K AO1 R D", "R EH1 K ER0 D"]),
        ("I present the present.", ["P R IY0 Z EH1 N T", "P R EH1 Z AH0 N T"]),
    ],
)
def test_homographs_follow_part_of_speech(converter: G2p, sentence: str, readings: list[str]) -> None:
    joined = " ".join(converter(sentence))
    first, second = readings
    assert joined.index(first) < joined.index(second)


def test_noun_fallback_reads_every_homograph_as_noun(converter: G2p) -> None:
    joined = " ".join(converter.with_tagger(NounTagger())("I refuse to collect the refuse."))
    assert joined.count("R EH1 F Y UW2 Z") == 2


def test_missing_tagger_packages_fall_back_with_one_warning(monkeypatch, caplog) -> None:
    monkeypatch.setattr(g2p_module, "_package_dir", lambda name: None)
    with caplog.at_level(logging.WARNING, logger=g2p_module.__name__):
        tagger = load_pos_tagger()
    assert isinstance(tagger, NounTagger)
    assert len(caplog.records) == 1 and "gruut-lang-en" in caplog.records[0].getMessage()


def test_out_of_vocabulary_words_use_the_neural_model(converter: G2p) -> None:
    assert "activationist" not in converter.lexicon
    assert converter("activationist") == "AE2 K T IH0 V EY1 SH AH0 N IH0 S T".split()
    assert converter("blorptastic") == "B L AO2 R P T AE1 S T IH0 K".split()


def test_numbers_are_spelled_out(converter: G2p) -> None:
    assert " ".join(converter("I have $250")) == (
        "AY1 HH AE1 V T UW1 HH AH1 N D R AH0 D F IH1 F T IY0 D AA1 L ER0 Z"
    )


def test_crf_features_use_the_trained_attribute_names() -> None:
    features = sentence_features(["the", "cat"])
    assert features[0]["word"] == "the" and features[0]["+1:word[-2:]"] == "at"
    assert features[0]["BOS"] == 1.0 and "EOS" not in features[0] and features[1]["EOS"] == 1.0
    assert sentence_features([","])[0]["word.ispunctuation"] == 1.0


def test_lazy_init_runs_once_across_threads(monkeypatch) -> None:
    calls = []

    def slow_load(*args, **kwargs):
        calls.append(1)
        time.sleep(0.05)
        return object()

    monkeypatch.setattr(g2p_module, "_instance", None)
    monkeypatch.setattr(G2p, "load", staticmethod(slow_load))
    results = []
    threads = [threading.Thread(target=lambda: results.append(get_g2p())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1


# ---------------------------------------------------------------------------------------------------------------------
# Parity with g2p_en itself, fed the same dictionary and tagger (its own downloads are stubbed out for the import).


@pytest.fixture(scope="module")
def reference(converter: G2p):
    import nltk  # already patched by `offline`: g2p_en's import-time downloads hit the spy...

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nltk, "download", lambda *a, **k: False)  # ...so let this one import pass silently
        g2p_en = pytest.importorskip("g2p_en.g2p")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(g2p_en, "cmudict", type("Lexicon", (), {"dict": staticmethod(lambda: converter.lexicon)}))
        mp.setattr(g2p_en, "pos_tag", lambda words: list(zip(words, converter.tagger.tag(words))))
        model = g2p_en.G2p()
        yield (lambda text: [p for p in model(text) if p != " "]), model


REFERENCE_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "I refuse to collect the refuse around here; we will record a new record!",
    "I'm an activationist... blorptastic zxqv kubernetes-native photosynthesis?",
    "Popular pets, e.g. cats and dogs, i.e. mammals.",
    "Café déjà vu: naïve Zoë paid $3.50 on the 21st, 1999.",
    "rock'n'roll isn't dead -- 'quoted' words!!!! go.home now",
    "THE PATIENT WASN'T PATIENT, SHE READ WHAT I WILL READ.",
]


@pytest.mark.parametrize("text", REFERENCE_SENTENCES)
def test_matches_g2p_en(converter: G2p, reference, text: str) -> None:
    official, _ = reference
    assert converter(text) == official(text)


def test_letter_to_sound_matches_g2p_en(converter: G2p, reference) -> None:
    _, model = reference
    words = sorted(converter.lexicon)[::1500] + ["activationist", "blorptastic", "zxqv", "it's", "x-y.z"]
    for word in words:
        assert list(converter.letter_to_sound.predict(word)) == model.predict(word), word
