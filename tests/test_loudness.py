"""The delivered level: loudness normalisation to a target within 0.5 LU with the true peak under the ceiling, a
limiter that runs by default so nothing clips, one gain for every signal, and ducking driven by the speech lines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vssflow_core.media.loudness import (LOUDNESS_PRESETS, Delivery, Ducking, deliver, delivery_gain, ducking_gain,
                                         integrated_loudness, loudness_target, true_peak, true_peak_db)

RATE = 16_000


def programme(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """Speech-like material: noise bursts and tones with a large crest factor, peaking at full scale."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t))
    x += 0.1 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.7 * t) > 0.3)
    for onset in rng.uniform(0, seconds - 0.05, 12):  # clicks: where an unlimited gain would clip
        i = int(onset * RATE)
        x[i:i + 40] += rng.choice([-1, 1]) * np.hanning(40)
    return (x / np.abs(x).max()).astype(np.float32)


def test_measurements_come_from_the_libraries_and_agree_with_the_standard_tone():
    # BS.1770: a 997 Hz sine at -3.01 dBFS... i.e. amplitude 1 reads -3.01 LUFS on one channel; at 0.1: -23.01
    t = np.arange(5 * RATE) / RATE
    tone = 0.1 * np.sin(2 * np.pi * 997 * t)
    assert integrated_loudness(tone, RATE) == pytest.approx(-23.01, abs=0.1)
    assert true_peak(tone, RATE) == pytest.approx(0.1, rel=0.01)
    assert integrated_loudness(np.zeros(RATE), RATE) == -math.inf


@pytest.mark.parametrize("target", [LOUDNESS_PRESETS["broadcast"], LOUDNESS_PRESETS["streaming"], -18.0])
def test_normalisation_lands_within_half_a_lu_with_the_true_peak_under_the_ceiling(target):
    x = programme()
    delivery = Delivery(loudness=target, true_peak_db=-1.0)
    out, report = deliver(x, RATE, delivery)
    assert abs(integrated_loudness(out, RATE) - target) <= 0.5
    assert true_peak_db(out, RATE) <= delivery.true_peak_db
    assert report.loudness_after == pytest.approx(integrated_loudness(out, RATE))


def test_the_limiter_runs_by_default_so_nothing_clips():
    loud = 1.6 * programme(seed=1)  # the level the issue measured in the AAC track
    out, report = deliver(loud, RATE)
    assert true_peak_db(out, RATE) <= Delivery().true_peak_db
    assert np.abs(out).max() < 1.0
    assert report.limited_fraction > 0
    quiet = 0.1 * programme(seed=2)  # under the ceiling: untouched
    assert np.array_equal(deliver(quiet, RATE)[0], quiet)


def test_the_limiter_gain_is_smooth_and_only_acts_near_peaks():
    x = 0.05 * programme(seconds=4, seed=3)
    x[2 * RATE] = 1.5  # one peak in the middle of quiet material
    gain, _ = delivery_gain(x, RATE)
    assert gain[2 * RATE] * 1.5 <= 10 ** (-1 / 20)
    assert np.all(gain[:RATE] == 1) and np.all(gain[3 * RATE:] == 1)
    assert np.abs(np.diff(gain)).max() < 0.01  # ramps, no jump


def test_one_gain_keeps_every_signal_under_the_ceiling():
    generated = 0.8 * programme(seed=4)
    original = 0.8 * programme(seed=5)
    mix = generated + original
    gain, report = delivery_gain(mix, RATE, Delivery(loudness=-14), also=[generated])
    for signal in (mix, generated):
        assert true_peak_db(signal * gain, RATE) <= -1.0
    assert abs(integrated_loudness(mix * gain, RATE) - (-14)) <= 0.5


def test_loudness_targets_read_presets_numbers_and_off():
    assert loudness_target("broadcast") == -23.0
    assert loudness_target("streaming") == -14.0
    assert loudness_target("-16") == -16.0 and loudness_target(-9.5) == -9.5
    assert loudness_target("off") is None and loudness_target(None) is None
    for bad in ("loud", "nan", 5, -90):
        with pytest.raises(ValueError, match="loudness"):
            loudness_target(bad)
    with pytest.raises(ValueError, match="true-peak"):
        Delivery(true_peak_db=3)
    with pytest.raises(ValueError, match="NaN"):
        deliver(np.array([0.0, np.nan]), RATE)


def test_ducking_is_applied_where_lines_are_and_released_elsewhere():
    ducking = Ducking(depth_db=12, attack_ms=100, release_ms=400)
    lines = [(1.0, 2.0), (4.0, 4.5)]
    gain = ducking_gain(lines, 6 * RATE, RATE, ducking)
    db = 20 * np.log10(gain)

    def at(seconds: float) -> float:
        return float(db[int(seconds * RATE)])

    for inside in (1.0, 1.5, 2.0, 4.2):
        assert at(inside) == pytest.approx(-12, abs=0.01)
    for away in (0.5, 2.6, 3.5, 5.5):
        assert at(away) == 0.0
    assert -12 < at(0.95) < 0  # attack: going down before the line
    assert at(2.2) == pytest.approx(-12 * 0.5, abs=0.1)  # release: half way back 200 ms after the line
    assert np.array_equal(ducking_gain([], RATE, RATE, ducking), np.ones(RATE, dtype=np.float32))
    with pytest.raises(ValueError, match="ducking"):
        Ducking(depth_db=-3)
    with pytest.raises(ValueError, match="speech line"):
        ducking_gain([(2.0, 1.0)], RATE, RATE)
