"""Editing instead of regenerating: held frames follow the flow path under every solver, the flow starts where the
strength says, ranges are checked with clear errors, and outside the ranges the output is the input, exactly."""

from __future__ import annotations

import math

import pytest
import torch

from vssflow_core.config import SEQUENCE
from vssflow_core.flow.edit import (AudioEdit, HeldFrames, HeldVelocity, TimeRange, check_ranges, parse_ranges,
                                    start_state)
from vssflow_core.flow.solvers import SOLVER_NAMES, make_solver
from vssflow_core.windows import KnownFrames, plan_windows

RATE = SEQUENCE.sample_rate


class CoupledField:
    """Any velocity that couples the frames, as attention does; records what it saw."""

    evaluations = 0

    def __init__(self, length: int):
        self.mixing = torch.randn(length, length, generator=torch.Generator().manual_seed(1)) / length
        self.seen: list[tuple[float, torch.Tensor]] = []

    def __call__(self, t, x):
        self.seen.append((float(t), x.clone()))
        return torch.tanh(x @ self.mixing) - x


# --------------------------------------------------------------------------------------------------------------------
# Held frames on the flow path
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVER_NAMES)
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_held_frames_are_on_the_path_at_every_stage_under_every_solver(solver, strength):
    torch.manual_seed(0)
    noise, known = torch.randn(2, 4, 30), torch.randn(1, 4, 30)
    keep = torch.zeros(30, dtype=torch.bool)
    keep[:8] = keep[20:] = True  # a range in the middle: frames on both sides held
    held = HeldFrames(known, keep)
    field = CoupledField(30)
    x, t0 = start_state(noise, known, strength, held)
    assert t0 == pytest.approx(1 - strength)
    out = make_solver(solver, steps=8, atol=1e-6, rtol=1e-6).solve(held.constrain(field, noise), x, t0, 1.0).x
    torch.testing.assert_close(out[..., keep], known.expand(2, -1, -1)[..., keep], atol=1e-4, rtol=0)
    for t, state in field.seen:
        on_path = (1 - t) * noise + t * known
        torch.testing.assert_close(state[..., keep], on_path[..., keep], atol=1e-4, rtol=0)
    assert not torch.allclose(out[..., ~keep], known.expand(2, -1, -1)[..., ~keep], atol=1e-2)


def test_the_window_continuation_is_held_frames_of_the_leading_overlap():
    plan = plan_windows(25.0)
    previous = torch.randn(1, 4, SEQUENCE.latent_length)
    known = KnownFrames.from_previous(previous, plan, 1)
    overlap = plan.overlap_frames(1)
    assert isinstance(known, HeldFrames) and int(known.keep.sum()) == overlap and bool(known.keep[:overlap].all())
    torch.testing.assert_close(known.latent[..., :overlap], previous[..., -overlap:])
    # a range's held frames merge with it; the continuation's values win where both hold
    edit_keep = torch.zeros(SEQUENCE.latent_length, dtype=torch.bool)
    edit_keep[: overlap + 5] = True
    merged = known.merged(HeldFrames(torch.zeros_like(previous), edit_keep))
    assert int(merged.keep.sum()) == overlap + 5
    torch.testing.assert_close(merged.latent[..., :overlap], previous[..., -overlap:])
    assert isinstance(known.constrain(CoupledField(SEQUENCE.latent_length), previous), HeldVelocity)


def test_strength_endpoints_start_from_the_noise_or_from_the_input():
    noise, latent = torch.randn(1, 4, 10), torch.randn(1, 4, 10)
    x, t0 = start_state(noise, latent, 1.0)
    assert t0 == 0.0 and x is noise  # strength 1: exactly a fresh generation's start
    x, t0 = start_state(noise, latent, 0.0)
    assert t0 == 1.0 and torch.equal(x, latent)  # strength 0: the encoded input itself
    x, t0 = start_state(noise, latent, 0.25)
    torch.testing.assert_close(x, 0.25 * noise + 0.75 * latent)


# --------------------------------------------------------------------------------------------------------------------
# Ranges
# --------------------------------------------------------------------------------------------------------------------


def test_ranges_are_read_sorted_and_merged():
    assert parse_ranges("2.0-3.5") == (TimeRange(2.0, 3.5),)
    assert parse_ranges("5-6, 2-3.5; 3-4") == (TimeRange(5, 6), TimeRange(2, 3.5), TimeRange(3, 4))
    assert parse_ranges(["1-2", (3, 4)]) == (TimeRange(1, 2), TimeRange(3, 4))
    assert parse_ranges(None) == () and parse_ranges("") == ()
    assert check_ranges(parse_ranges("5-6, 2-3.5, 3-4"), 10.0) == (TimeRange(2, 4), TimeRange(5, 6))
    assert check_ranges(parse_ranges("9-10.0005"), 10.0) == (TimeRange(9, 10.0),)  # timestamp rounding


@pytest.mark.parametrize("text, message", [
    ("3.5-2.0", "ends before it starts"),
    ("2-2", "ends before it starts"),
    ("8-12", "outside the clip"),
    ("-1-2", "outside the clip"),
    ("11-12", "outside the clip"),
    ("nan-3", "finite"),
    ("2-inf", "finite"),
    ("two-three", "not a number"),
    ("2", "cannot read"),
    ("2.00-2.01", "shorter than its crossfades"),
])
def test_bad_ranges_get_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        check_ranges(parse_ranges(text), 10.0)


def test_bad_edit_settings_are_refused():
    audio = torch.zeros(RATE)
    for strength in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="strength"):
            AudioEdit.prepare(audio, 1.0, sample_rate=RATE, strength=strength)
    with pytest.raises(ValueError, match="crossfade"):
        AudioEdit.prepare(audio, 1.0, sample_rate=RATE, ranges="0.2-0.5", crossfade_sec=-0.01)
    with pytest.raises(ValueError, match="sample rate"):
        AudioEdit.prepare(audio, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        AudioEdit.prepare(torch.full((RATE,), math.nan), 1.0, sample_rate=RATE)


def test_the_track_is_brought_to_the_clip():
    stereo = torch.randn(2, RATE * 3)  # 3 s of 16 kHz stereo for a 2 s clip
    edit = AudioEdit.prepare(stereo, 2.0, sample_rate=RATE)
    torch.testing.assert_close(edit.audio, stereo.mean(0)[: 2 * RATE])
    short = AudioEdit.prepare((torch.ones(8000), 8000), 2.0)  # 1 s at 8 kHz: resampled, padded with silence
    assert short.samples == 2 * RATE and float(short.audio[-RATE // 2:].abs().max()) == 0.0


def test_the_output_is_the_input_outside_the_ranges_and_fades_inside_their_edges():
    audio = torch.randn(4 * RATE)
    edit = AudioEdit.prepare(audio, 4.0, sample_rate=RATE, ranges="1-2, 3-4", crossfade_sec=0.05)
    generated = torch.randn(2, 4 * RATE)
    out = edit.compose(generated)
    t = (torch.arange(4 * RATE) + 0.5) / RATE
    outside = (t < 1) | ((t >= 2) & (t < 3))
    assert torch.equal(out[:, outside], audio[outside].expand(2, -1))  # sample-identical
    middle = (t >= 1.05) & (t < 1.95) | (t >= 3.05)  # no fade at the clip's own end
    assert torch.equal(out[:, middle], generated[:, middle])
    weight = edit.generated_weight()
    assert float(weight[int(1.025 * RATE)]) == pytest.approx(0.5, abs=0.01)  # half way through the fade in


def test_held_latent_frames_are_those_that_touch_no_range():
    edit = AudioEdit.prepare(torch.zeros(25 * RATE), 25.0, sample_rate=RATE, ranges="2.02-3.5")
    plan = plan_windows(25.0)
    keep = edit.keep_frames(plan, 0)
    rate = SEQUENCE.latent_rate
    assert bool(keep[: int(2.0 * rate)].all()) and not keep[int(2.0 * rate)]  # the frame 2.00-2.04 touches it
    assert not keep[int(3.46 * rate)] and bool(keep[math.ceil(3.5 * rate):].all())
    padded = plan_windows(24.5)  # its last window runs past the clip's end
    later = AudioEdit.prepare(torch.zeros(RATE), 24.5, sample_rate=RATE, ranges="2-3").keep_frames(padded, 2)
    assert bool(later.any()) and not bool(later[-1])  # past the clip's end: free
    assert AudioEdit.prepare(torch.zeros(RATE), 1.0, sample_rate=RATE).keep_frames(plan, 0) is None
