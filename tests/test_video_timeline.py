"""Sampling rules on timestamps alone (no decoding): the official index rule, the frame-shown rule and FFmpeg's fps
filter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vssflow_core.config import SEQUENCE
from vssflow_core.video.errors import InvalidFrameRateError
from vssflow_core.video.timeline import (
    fps_filter_indices,
    is_constant_rate,
    official_indices,
    select_frames,
    shown_indices,
    window_count,
)

NTSC_FILM = 24000 / 1001
NTSC = 30000 / 1001


def official_rule(raw_fps: float, num_frames: int, target: int = 10, duration: float = 10.0) -> list[int]:
    """The index rule of the official ``feature/extract_clip.py``, restated: indices ``round(i * raw_fps / target)``
    for ``i < int(duration * target)``, out-of-range ones dropped."""
    ids = [round(i * raw_fps / target) for i in range(int(duration * target))]
    return [x for x in ids if 0 <= x <= num_frames - 1]


def cfr(raw_fps: float, seconds: float) -> np.ndarray:
    return np.arange(int(seconds * raw_fps)) / raw_fps


@pytest.mark.parametrize("raw_fps", [NTSC_FILM, 24, 25, NTSC, 30, 50, 60, 0.5, 240, 12.5, 1000 / 3])
@pytest.mark.parametrize("seconds", [3.0, 10.0, 12.0])
def test_official_indices_equal_the_official_expression(raw_fps: float, seconds: float) -> None:
    n = int(seconds * raw_fps)
    ids = official_indices(n, raw_fps, SEQUENCE.clip_fps, SEQUENCE.clip_frames)
    assert ids.size == SEQUENCE.clip_frames == 100
    expected = official_rule(raw_fps, n)
    # The official code drops out-of-range indices, then pads at the end: the real ones form a prefix.
    assert ids[: len(expected)].tolist() == expected
    assert (ids[len(expected) :] == -1).all()


def test_official_rule_keeps_pythons_half_to_even_rounding() -> None:
    # 25 fps at 10 fps: i * 2.5 has exact ties; Python rounds 2.5 -> 2 and 7.5 -> 8.
    ids = official_indices(1000, 25.0, 10, 6)
    assert ids.tolist() == [0, 2, 5, 8, 10, 12]


@pytest.mark.parametrize("raw_fps", [10, 20, 30, 50, 60, 120, 240])
def test_official_and_shown_rules_agree_when_the_source_rate_is_a_multiple_of_10(raw_fps: float) -> None:
    """Each 10 fps instant then falls exactly on a source frame, so the nearest frame is the one being shown."""
    ts = cfr(raw_fps, 10.0)
    end = ts.size / raw_fps
    instants = np.arange(100) / 10
    official = official_indices(ts.size, raw_fps, 10, 100)
    shown = shown_indices(ts, end, instants)
    assert (official == shown).all()
    assert (official >= 0).all()


@pytest.mark.parametrize("raw_fps", [NTSC_FILM, 25, NTSC, 0.5, 12.5, 1000 / 3])
def test_elsewhere_the_official_rule_takes_the_nearest_frame_at_most_one_later(raw_fps: float) -> None:
    """Off the grid the official rule rounds to the nearest frame, the shown rule floors: they differ by <= 1 frame,
    and both stay within a frame period of the instant."""
    ts = cfr(raw_fps, 10.0)
    end = ts.size / raw_fps
    instants = np.arange(100) / 10
    official = official_indices(ts.size, raw_fps, 10, 100)
    shown = shown_indices(ts, end, instants)
    both = (official >= 0) & (shown >= 0)
    diff = official[both] - shown[both]
    assert set(np.unique(diff).tolist()) <= {0, 1}
    assert np.any(diff == 1)  # they do differ somewhere
    assert np.all(diff[(instants[both] * raw_fps) % 1 == 0] == 0)  # on an exact frame time they agree
    assert np.all(np.abs(ts[official[both]] - instants[both]) <= 0.5 / raw_fps + 1e-9)  # nearest
    assert np.all((ts[shown[both]] <= instants[both] + 1e-9) & (instants[both] - ts[shown[both]] < 1 / raw_fps))


def test_shown_rule_on_variable_frame_rate() -> None:
    # 30 fps for 1 s, 10 fps for 1 s, then ~59 fps: index math from the average rate would drift; timestamps do not.
    ts = np.concatenate([np.arange(30) / 30, 1 + np.arange(10) / 10, 2 + np.arange(20) / 59])
    end = ts[-1] + 1 / 59
    idx, instants, rule = select_frames(ts, end, 10, source_fps=ts.size / end)
    assert rule == "shown"
    assert idx.tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27] + list(range(30, 40)) + [40, 45, 51, 57]
    # Every pick is the frame on screen at its instant.
    assert np.all(ts[idx] <= instants + 1e-9)
    nxt = np.append(ts, end)[idx + 1]
    assert np.all(instants < nxt)


def test_auto_rule_follows_the_timing() -> None:
    ts = cfr(NTSC, 3.0)
    assert select_frames(ts, ts.size / NTSC, 10, source_fps=NTSC)[2] == "official"
    jittery = ts.copy()
    jittery[10:] += 0.02  # one long frame
    assert select_frames(jittery, jittery[-1] + 1 / NTSC, 10, source_fps=NTSC)[2] == "shown"


def test_constant_rate_detection_tolerates_time_base_rounding() -> None:
    # 29.97 fps in a 1/15360 time base: intervals alternate between 512 and 511 ticks.
    ts = np.round(np.arange(300) / NTSC * 15360) / 15360
    assert is_constant_rate(ts, NTSC)
    assert not is_constant_rate(np.concatenate([np.arange(30) / 30, 1 + np.arange(10) / 10]), 20.0)


@pytest.mark.parametrize("raw_fps", [NTSC_FILM, 25, NTSC, 50, 60, 0.5, 240])
def test_fps_filter_rule_is_the_frame_shown_half_an_output_period_later(raw_fps: float) -> None:
    ts = cfr(raw_fps, 4.0) if raw_fps >= 1 else np.arange(3) / raw_fps
    end = ts.size / raw_fps
    instants = np.arange(math.floor(end * 25 - 0.5 + 1e-9) + 1) / 25
    idx = fps_filter_indices(ts, end, instants, 25)
    # Direct statement of FFmpeg's rule: output k takes the last frame whose time rounds (half up) to <= k.
    slots = np.floor(ts * 25 + 0.5 + 1e-9)
    expected = np.array([int(np.nonzero(slots <= k)[0][-1]) for k in range(instants.size)])
    assert (idx == expected).all()
    if raw_fps == 25:
        assert (idx == np.arange(ts.size)).all()


def test_window_padding_and_open_ended_windows() -> None:
    ts = cfr(25, 3.0)  # 75 frames, 3 s
    idx, instants, _ = select_frames(ts, 3.0, 10, source_fps=25, count=window_count(10.0, 10))
    assert idx.size == 100
    assert (idx[:30] >= 0).all() and (idx[30:] == -1).all()  # round(30 * 2.5) = 75 is past the end
    idx, instants, _ = select_frames(ts, 3.0, 10, source_fps=25, rule="shown")  # duration=None: to the end
    assert idx.size == 30 and (idx >= 0).all()
    idx, instants, _ = select_frames(ts, 3.0, 10, source_fps=25, start=1.0, count=5, rule="shown")
    assert instants.tolist() == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4])
    assert idx.tolist() == [25, 27, 30, 32, 35]
    idx, _, _ = select_frames(ts, 3.0, 10, source_fps=25, start=5.0, count=3)
    assert (idx == -1).all()  # a window after the end is all padding


def test_window_count_matches_int_of_duration_times_rate() -> None:
    assert window_count(SEQUENCE.duration_sec, SEQUENCE.clip_fps) == SEQUENCE.clip_frames == 100
    assert window_count(SEQUENCE.duration_sec, SEQUENCE.synch_fps) == SEQUENCE.synch_frames == 250
    assert window_count(0.3, 10) == 3
    assert window_count(0.35, 10) == 3


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "fast"])
def test_bad_rates_raise(bad: object) -> None:
    with pytest.raises(InvalidFrameRateError):
        select_frames(np.arange(10) / 25, 0.4, bad, source_fps=25)  # type: ignore[arg-type]
    with pytest.raises(InvalidFrameRateError):
        select_frames(np.arange(10) / 25, 0.4, 10, source_fps=bad)  # type: ignore[arg-type]


def test_unknown_rule_and_negative_start_raise() -> None:
    with pytest.raises(ValueError, match="rule"):
        select_frames(np.arange(10) / 25, 0.4, 10, source_fps=25, rule="nearest")
    with pytest.raises(ValueError, match="start"):
        select_frames(np.arange(10) / 25, 0.4, 10, source_fps=25, start=-1.0)
