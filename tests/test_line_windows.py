"""Line-aware window plans: no seam cuts a line, a window speaks in one voice, clear errors naming the lines."""

from __future__ import annotations

import pytest

from vssflow_core.line_windows import (MARGIN_SEC, LinePlanError, check_line_plan, owners, plan_line_windows,
                                       speech_lines, speech_plan, window_voices)
from vssflow_core.text.speech import parse_rows
from vssflow_core.windows import plan_windows

FIVE_LINES = [(2.0, 5.0, "alice"), (10.5, 13.0, "bob"), (17.0, 20.5, "alice"), (24.5, 28.0, "bob"),
              (33.0, 36.5, "alice")]


def fades(plan):
    rate = plan.sequence.sample_rate
    return [(plan.fade(k)[0] / rate, sum(plan.fade(k)) / rate) for k in range(1, plan.count)]


def test_no_lines_keep_the_evenly_spaced_plan():
    assert plan_line_windows(40.0, []) == plan_windows(40.0)
    assert plan_line_windows(8.0, [(1.0, 3.0, "a")]) == plan_windows(8.0)


def test_no_seam_cuts_a_line_and_each_window_has_one_voice():
    plan = plan_line_windows(40.0, FIVE_LINES)
    assert plan != plan_windows(40.0)  # the even plan's seams would cut lines
    for a, b in fades(plan):
        assert all(b + MARGIN_SEC <= s or a - MARGIN_SEC >= e for s, e, _ in FIVE_LINES)
    check_line_plan(plan, FIVE_LINES)
    voices = window_voices(plan, FIVE_LINES)
    assert [voices[k] for k in owners(plan, FIVE_LINES)] == [v for _, _, v in FIVE_LINES]
    assert all(plan.starts[k] <= s and e <= plan.starts[k] + plan.window_sec
               for k, (s, e, _) in zip(owners(plan, FIVE_LINES), FIVE_LINES))


def test_lines_without_a_reference_only_need_uncut_seams():
    lines = [(1.0, 3.0, None), (4.0, 6.0, None), (8.6, 9.8, None), (10.5, 12.0, None)]
    plan = plan_line_windows(30.0, lines)
    check_line_plan(plan, lines)


def test_errors_name_the_lines():
    with pytest.raises(LinePlanError, match=r"line 1 \(1.00-12.00 s \[a\]\) is longer than one generation window"):
        plan_line_windows(40.0, [(1.0, 12.0, "a")])
    with pytest.raises(LinePlanError, match=r"line 1 \(1.00-3.00 s \[a\]\), line 2 \(4.00-6.00 s \[b\]\) fall in one "
                                            r"generation window \(0.0-10.0 s\), which speaks in one voice"):
        plan_line_windows(40.0, [(1.0, 3.0, "a"), (4.0, 6.0, "b")])
    with pytest.raises(LinePlanError, match=r"no window plan keeps every line inside one window: line \d"):
        plan_line_windows(40.0, [(1.0, 3.0, None), (6.5, 9.2, None), (9.4, 12.0, None), (20.0, 28.0, None)])


def test_the_speech_track_plans_with_the_voices_that_have_references():
    track = parse_rows("1-3 [alice]: Hello there\n4-6 [bob]: Hi Alice")
    assert speech_lines(track) == [(1.0, 3.0, None), (4.0, 6.0, None)]
    assert speech_plan(20.0, track).count == plan_windows(20.0).count  # no references: voices do not split
    with pytest.raises(LinePlanError, match="speaks in one voice"):
        speech_plan(20.0, track, ["alice", "bob"])
    with pytest.raises(ValueError, match="ends after the end of the clip"):
        speech_plan(5.0, track)
