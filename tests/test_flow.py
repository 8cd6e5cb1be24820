"""Flow matching: the path, guidance and every ODE solver on problems with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from vssflow_core.flow.guidance import GuidedVelocity
from vssflow_core.flow.path import CondOTPath
from vssflow_core.flow.schedules import (BALANCED, ERROR_CONTRIBUTION, SCHEDULES, UNIFORM, balanced_density,
                                         grid_from_density, time_grid)
from vssflow_core.flow.solvers import SOLVER_NAMES, Dopri5Solver, FixedStepSolver, SolverError, make_solver
from vssflow_core.model.vssflow import Conditions

ORDERS = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4, "ab2": 2}


def rotation(t, x):
    """dx/dt = A x with A a rotation generator; the exact solution is x(t) = exp(tA) x0."""
    return torch.stack([-x[..., 1], x[..., 0]], dim=-1)


def exact_rotation(x0, t):
    c, s = math.cos(t), math.sin(t)
    return torch.stack([c * x0[..., 0] - s * x0[..., 1], s * x0[..., 0] + c * x0[..., 1]], dim=-1)


@pytest.fixture
def x0():
    return torch.tensor([[1.0, 0.5], [-0.3, 2.0]], dtype=torch.float64)


def test_cond_ot_path_interpolates_noise_to_data_with_constant_velocity():
    x0, x1 = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    t = torch.tensor([0.0, 0.25, 1.0])
    sample = CondOTPath().sample(x0, x1, t)
    torch.testing.assert_close(sample.x_t[0], x0[0])
    torch.testing.assert_close(sample.x_t[1], 0.75 * x0[1] + 0.25 * x1[1])
    torch.testing.assert_close(sample.x_t[2], x1[2])
    torch.testing.assert_close(sample.velocity, x1 - x0)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("method", sorted(ORDERS))
def test_fixed_step_solvers_converge_at_their_order(method, schedule, x0):
    errors = []
    for steps in (8, 16):
        solution = FixedStepSolver(method, steps, schedule).solve(rotation, x0)
        errors.append((solution.x - exact_rotation(x0, 1.0)).abs().max().item())
        assert solution.evaluations == steps * FixedStepSolver(method, steps).evaluations_per_step
    observed_order = math.log2(errors[0] / errors[1])
    assert observed_order == pytest.approx(ORDERS[method], abs=0.35)


def test_ab2_takes_one_evaluation_per_step_and_beats_euler_at_the_same_cost(x0):
    ab2, euler = FixedStepSolver("ab2", 16).solve(rotation, x0), FixedStepSolver("euler", 16).solve(rotation, x0)
    assert ab2.evaluations == euler.evaluations == 16
    exact = exact_rotation(x0, 1.0)
    assert (ab2.x - exact).abs().max() < (euler.x - exact).abs().max() / 10


def test_ab2_is_exact_for_a_velocity_linear_in_time_after_its_first_step(x0):
    """It integrates the line through the last two velocities, whatever the step lengths; the first step, with no
    history, is Euler's, which misses v = 2t's t1^2 over [0, t1]."""
    for schedule in SCHEDULES:
        t1 = float(time_grid(schedule, 9)[1])
        solution = FixedStepSolver("ab2", 9, schedule).solve(lambda t, x: torch.full_like(x, 2.0) * t, x0)
        torch.testing.assert_close(solution.x, x0 + 1.0 - t1 ** 2, rtol=0, atol=1e-12)


def test_time_grids_run_from_noise_to_data_in_increasing_steps():
    for schedule in SCHEDULES:
        for steps in (1, 2, 7, 56):
            grid = time_grid(schedule, steps)
            assert grid.shape == (steps + 1,) and grid.dtype == torch.float64
            assert grid[0] == 0.0 and grid[-1] == 1.0 and bool((grid.diff() > 0).all())
    torch.testing.assert_close(time_grid(UNIFORM, 4), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))


def test_the_balanced_grid_puts_small_steps_where_errors_grow_the_most():
    """The measured error density is largest at the start (noise) and smallest in the middle-to-late part of the
    flow, so the balanced steps are shortest first and longest there; each step's share of the (measured error)^(1/3)
    density is equal."""
    steps = time_grid(BALANCED, 56).diff()
    assert steps[0] == pytest.approx(float(steps.min())) and steps[0] < 1 / 56 < steps.max()
    assert steps[: len(steps) // 8].mean() < steps[len(steps) // 2:].mean() / 2
    density = balanced_density()
    assert int(density.argmax()) == 0 and density.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(density, torch.tensor(ERROR_CONTRIBUTION, dtype=torch.float64) ** (1 / 3)
                               / sum(v ** (1 / 3) for v in ERROR_CONTRIBUTION))


def test_a_grid_from_a_density_gives_every_step_equal_mass():
    density = torch.tensor([3.0, 1.0], dtype=torch.float64)  # three quarters of the mass in the first half
    torch.testing.assert_close(grid_from_density(density, 4),
                               torch.tensor([0.0, 1 / 6, 1 / 3, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(grid_from_density(torch.ones(5, dtype=torch.float64), 10), time_grid(UNIFORM, 10))


def test_unknown_schedules_are_listed():
    with pytest.raises(ValueError, match="choose one of uniform, balanced"):
        make_solver("heun", 8, schedule="karras")
    with pytest.raises(ValueError, match="at least 1"):
        time_grid(BALANCED, 0)


def test_dopri5_meets_its_tolerance_and_counts_evaluations(x0):
    solution = Dopri5Solver(atol=1e-8, rtol=1e-8).solve(rotation, x0)
    assert (solution.x - exact_rotation(x0, 1.0)).abs().max() < 1e-6
    # first-same-as-last: 2 evaluations to start (f0 and the initial-step probe) plus 6 per attempted step
    assert solution.evaluations == 2 + 6 * (solution.steps + solution.rejected_steps)


def test_dopri5_tighter_tolerance_costs_more_evaluations(x0):
    loose = Dopri5Solver(atol=1e-3, rtol=1e-3).solve(rotation, x0)
    tight = Dopri5Solver(atol=1e-9, rtol=1e-9).solve(rotation, x0)
    assert tight.evaluations > loose.evaluations


def test_dopri5_endpoint_is_exact_even_when_the_last_step_overshoots(x0):
    # the last step is allowed past t=1; the endpoint comes from the dense-output polynomial
    solution = Dopri5Solver(atol=1e-10, rtol=1e-10).solve(rotation, x0, t_end=0.7)
    torch.testing.assert_close(solution.x, exact_rotation(x0, 0.7), rtol=0, atol=1e-8)


def test_callbacks_report_every_step_and_can_interrupt(x0):
    seen = []
    FixedStepSolver("euler", 4).solve(rotation, x0, callback=lambda i, n, t: seen.append((i, n, t)))
    assert seen == [(1, 4, 0.25), (2, 4, 0.5), (3, 4, 0.75), (4, 4, 1.0)]

    class Stop(Exception):
        pass

    def stop_at_two(i, n, t):
        if i == 2:
            raise Stop

    with pytest.raises(Stop):
        make_solver("rk4", 10).solve(rotation, x0, callback=stop_at_two)


def test_non_finite_states_stop_the_solver_with_a_clear_error(x0):
    with pytest.raises(SolverError, match="non-finite"):
        FixedStepSolver("euler", 4).solve(lambda t, x: x * float("nan"), x0)


def test_unknown_solver_names_are_listed():
    with pytest.raises(ValueError, match="choose one of"):
        make_solver("ddim")
    assert set(SOLVER_NAMES) == {"euler", "midpoint", "heun", "rk4", "ab2", "dopri5"}


class RecordingModel:
    """A stand-in velocity network: v = context mean + x, recording what it was called with."""

    latent_channels = 2

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, context):
        self.calls.append((x.clone(), t.clone(), context.clone()))
        return x + context.mean(dim=(1, 2))[:, None, None]


def test_guidance_combines_unconditional_and_conditional_passes():
    model = RecordingModel()
    conditions = Conditions(context=torch.full((1, 3, 4), 2.0), latent_cond=torch.ones(1, 3, 5))
    x = torch.cat([torch.zeros(1, 2, 5), conditions.latent_cond], dim=1)
    v = GuidedVelocity(model, conditions, guidance_scale=3.0, batched=False)(torch.tensor(0.5), x)
    (x_u, t_u, ctx_u), (x_c, _, ctx_c) = model.calls
    # the unconditional pass sees zero conditions, in both routes
    assert torch.count_nonzero(x_u[:, 2:]) == 0 and torch.count_nonzero(ctx_u) == 0
    torch.testing.assert_close(x_c, x)
    assert t_u.shape == (1,)
    v_u, v_c = x_u + 0.0, x_c + 2.0
    torch.testing.assert_close(v[:, :2], (v_u + 3.0 * (v_c - v_u))[:, :2])
    assert torch.count_nonzero(v[:, 2:]) == 0  # the condition channels do not move


def test_batched_guidance_is_one_pass_over_unconditional_then_conditional_inputs():
    conditions = Conditions(context=torch.randn(2, 3, 4), latent_cond=torch.randn(2, 3, 5))
    x = torch.cat([torch.randn(2, 2, 5), conditions.latent_cond], dim=1)
    two, one = RecordingModel(), RecordingModel()
    two_passes = GuidedVelocity(two, conditions, guidance_scale=3.0, batched=False)
    one_pass = GuidedVelocity(one, conditions, guidance_scale=3.0)  # batched is the default
    torch.testing.assert_close(one_pass(torch.tensor(0.5), x), two_passes(torch.tensor(0.5), x), rtol=0, atol=1e-6)
    (x_both, t_both, ctx_both), = one.calls
    (x_u, _, ctx_u), (x_c, _, ctx_c) = two.calls
    torch.testing.assert_close(x_both, torch.cat([x_u, x_c]), rtol=0, atol=0)
    torch.testing.assert_close(ctx_both, torch.cat([ctx_u, ctx_c]), rtol=0, atol=0)
    assert t_both.shape == (4,)
    # one evaluation of the guided field either way; what differs is the number of network calls
    assert one_pass.evaluations == two_passes.evaluations == 1
    assert (one_pass.network_passes, two_passes.network_passes) == (1, 2)


def test_guidance_below_one_uses_the_unconditional_field_only_as_official():
    model = RecordingModel()
    conditions = Conditions(context=torch.ones(2, 3, 4), latent_cond=torch.ones(2, 3, 5))
    velocity = GuidedVelocity(model, conditions, guidance_scale=0.5)
    velocity(torch.tensor(0.1), torch.ones(2, 5, 5))
    assert len(model.calls) == 1 and torch.count_nonzero(model.calls[0][2]) == 0
    assert velocity.evaluations == 1
