"""ODE solvers that carry noise (t = 0) to data (t = 1) along a velocity field ``v(t, x)``.

Fixed-step methods on a time grid (:mod:`.schedules`: uniform or error-balanced): the Runge-Kutta methods Euler,
midpoint, Heun and RK4, and the two-step Adams-Bashforth method (``ab2``: second order for one evaluation per step,
reusing the previous step's velocity); and the adaptive Dormand-Prince 5(4) method that the
official sampler uses (torchdiffeq ``dopri5`` through facebookresearch/flow_matching: RMS error norm over the whole
state, step-size control with safety 0.9 and growth in [0.2, 10], the Hairer initial-step heuristic, steps that may
overshoot t = 1 with the endpoint read from the dense-output polynomial).  Every solver reports how many velocity
evaluations it used; a callback after each step gives progress and a place to interrupt, and every velocity evaluation
checks :func:`vssflow_core.progress.check_interrupted`.

Every solve is bounded, so no setting can run or allocate without end: fixed-step solvers take at most
:data:`MAX_FIXED_STEPS` steps; dopri5 stops with a :class:`SolverError` after :data:`MAX_EVALUATIONS` evaluations,
when its step shrinks below :data:`MIN_STEP_FRACTION` of the span (a field too steep to follow, e.g. a huge
guidance scale, or tolerances finer than the arithmetic resolves), or when the state stops being finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from ..progress import check_interrupted
from .schedules import UNIFORM, time_grid

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# callback(step, total_steps or None when adaptive, t) -> None; may raise to interrupt
StepCallback = Callable[[int, "int | None", float], None]


@dataclass
class Solution:
    x: torch.Tensor  # state at the end time
    evaluations: int  # velocity-field evaluations used
    steps: int  # accepted steps
    rejected_steps: int = 0


class SolverError(RuntimeError):
    pass


class EvaluationLimitReached(SolverError):
    """dopri5 stopped at its ``max_evaluations`` before the end of the flow (a benchmark may cap a run on purpose)."""


# The bounds (README, "Input handling"). 10,000 steps is 40,000 evaluations of RK4, far past any measured need (the
# demo model's figures stop at 64 steps); 5,000 evaluations is 17x the most dopri5 needed at the official tolerance
# on 12 held-out clips (290).  A step below a billionth of the span moves the flow time by nothing the field can
# tell apart: the field is too steep to follow.
MAX_FIXED_STEPS = 10_000
MAX_EVALUATIONS = 5_000
MIN_STEP_FRACTION = 1e-9


def _adaptive_advice() -> str:
    return (f"lower the guidance scale, loosen atol/rtol (official: {OFFICIAL_ATOL:g}), or use a fixed-step solver "
            "(e.g. --solver heun --steps 16)")


def check_fixed_steps(steps: int) -> int:
    """``steps`` as an int within 1..MAX_FIXED_STEPS, checked before anything is allocated for them."""
    if isinstance(steps, bool) or not isinstance(steps, (int, float)) or steps != steps or steps != int(steps):
        raise ValueError(f"steps must be a whole number, got {steps!r}")
    if not 1 <= steps <= MAX_FIXED_STEPS:
        raise ValueError(f"steps must be between 1 and {MAX_FIXED_STEPS:,}, got {int(steps):,}; fixed-step solvers "
                         f"need tens of steps (default {DEFAULT_FIXED_STEPS})")
    return int(steps)


class Solver(Protocol):
    name: str

    def solve(self, velocity: Velocity, x: torch.Tensor, t_start: float = 0.0, t_end: float = 1.0,
              callback: StepCallback | None = None) -> Solution: ...


def _check_finite(x: torch.Tensor, t: float, what: str = "state") -> None:
    if not torch.isfinite(x).all():
        raise SolverError(f"the sampler produced non-finite values ({what}) at t={t:.4g}; the model or its inputs "
                          "are broken, or the guidance scale is too large (check the conditions for NaN/inf, lower "
                          "the guidance scale, or use float32)")


# --------------------------------------------------------------------------------------------------------------------
# Fixed-step methods
# --------------------------------------------------------------------------------------------------------------------


# A step function returns the increment of x over [t, t + h]; ``memory`` persists over one solve (multistep methods).
def _euler(v: Velocity, t: torch.Tensor, x: torch.Tensor, h: torch.Tensor, memory: dict) -> torch.Tensor:
    return h * v(t, x)


def _midpoint(v: Velocity, t: torch.Tensor, x: torch.Tensor, h: torch.Tensor, memory: dict) -> torch.Tensor:
    half = 0.5 * h
    return h * v(t + half, x + half * v(t, x))


def _heun(v: Velocity, t: torch.Tensor, x: torch.Tensor, h: torch.Tensor, memory: dict) -> torch.Tensor:
    k1 = v(t, x)
    k2 = v(t + h, x + h * k1)
    return 0.5 * h * (k1 + k2)


def _rk4(v: Velocity, t: torch.Tensor, x: torch.Tensor, h: torch.Tensor, memory: dict) -> torch.Tensor:
    half = 0.5 * h
    k1 = v(t, x)
    k2 = v(t + half, x + half * k1)
    k3 = v(t + half, x + half * k2)
    k4 = v(t + h, x + h * k3)
    return h / 6 * (k1 + 2 * (k2 + k3) + k4)


def _ab2(v: Velocity, t: torch.Tensor, x: torch.Tensor, h: torch.Tensor, memory: dict) -> torch.Tensor:
    """Adams-Bashforth 2 for steps of any length: integrates the line through this and the previous velocity."""
    f = v(t, x)
    previous = memory.get("previous")
    memory["previous"] = (t, f)
    if previous is None:  # the first step has no history: Euler
        return h * f
    t_previous, f_previous = previous
    r = h / (2 * (t - t_previous))
    return h * ((1 + r) * f - r * f_previous)


# method -> (step function, velocity evaluations per step)
_STEP_FUNCTIONS = {"euler": (_euler, 1), "midpoint": (_midpoint, 2), "heun": (_heun, 2), "rk4": (_rk4, 4),
                   "ab2": (_ab2, 1)}


class FixedStepSolver:
    """``steps`` steps of one explicit method on a time grid (``schedule``: see :mod:`.schedules`)."""

    def __init__(self, method: str, steps: int, schedule: str = UNIFORM):
        if method not in _STEP_FUNCTIONS:
            raise ValueError(f"unknown fixed-step method '{method}'; choose one of {sorted(_STEP_FUNCTIONS)}")
        self.name, self.steps = method, check_fixed_steps(steps)
        self._step, self.evaluations_per_step = _STEP_FUNCTIONS[method]
        self.grid = time_grid(schedule, self.steps)  # float64 on [0, 1]; checks the step count and the schedule

    def solve(self, velocity: Velocity, x: torch.Tensor, t_start: float = 0.0, t_end: float = 1.0,
              callback: StepCallback | None = None) -> Solution:
        counted = _CountingVelocity(velocity)
        grid = (t_start + (t_end - t_start) * self.grid).to(dtype=x.dtype, device=x.device)
        grid[0], grid[-1] = t_start, t_end
        memory: dict = {}
        for i in range(self.steps):
            t0, t1 = grid[i], grid[i + 1]
            x = x + self._step(counted, t0, x, t1 - t0, memory)
            _check_finite(x, float(t1))
            if callback is not None:
                callback(i + 1, self.steps, float(t1))
        return Solution(x=x, evaluations=counted.count, steps=self.steps)


class _CountingVelocity:
    def __init__(self, velocity: Velocity):
        self.velocity, self.count = velocity, 0

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        check_interrupted()  # per evaluation: one dopri5 step is six network passes
        self.count += 1
        return self.velocity(t, x)


# --------------------------------------------------------------------------------------------------------------------
# Adaptive Dormand-Prince 5(4)
# --------------------------------------------------------------------------------------------------------------------

_DP_C = (1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),  # = 5th-order weights (first-same-as-last)
)
# 5th-order minus embedded 4th-order weights: the local error estimate
_DP_ERROR = (35 / 384 - 1951 / 21600, 0.0, 500 / 1113 - 22642 / 50085, 125 / 192 - 451 / 720,
             -2187 / 6784 + 12231 / 42400, 11 / 84 - 649 / 6300, -1 / 60)
# weights of the state at the step's midpoint (they sum to 1/2), used by the dense-output polynomial
_DP_MID = tuple(c / 2 for c in (6025192743 / 30085553152, 0.0, 51252292925 / 65400821598, -2691868925 / 45128329728,
                                 187940372067 / 1594534317056, -1776094331 / 19743644256, 11237099 / 235043384))


def _rms(x: torch.Tensor) -> float:
    return float(x.double().pow(2).mean().sqrt())


def _combine(x: torch.Tensor, h: float, weights, stages: list[torch.Tensor]) -> torch.Tensor:
    out = x
    for w, k in zip(weights, stages):
        if w != 0.0:
            out = out + (h * w) * k
    return out


class Dopri5Solver:
    name = "dopri5"

    def __init__(self, atol: float = 1e-5, rtol: float = 1e-5, max_evaluations: int = MAX_EVALUATIONS,
                 safety: float = 0.9, min_factor: float = 0.2, max_factor: float = 10.0,
                 min_step_fraction: float = MIN_STEP_FRACTION):
        if not (atol > 0 and rtol > 0 and math.isfinite(atol) and math.isfinite(rtol)):
            raise ValueError(f"tolerances must be positive finite numbers, got atol={atol}, rtol={rtol}")
        if not max_evaluations >= 1:
            raise ValueError(f"max_evaluations must be at least 1, got {max_evaluations}")
        self.atol, self.rtol, self.max_evaluations = float(atol), float(rtol), int(max_evaluations)
        self.min_step_fraction = float(min_step_fraction)
        self.safety, self.min_factor, self.max_factor = safety, min_factor, max_factor

    def _initial_step(self, v: Velocity, t0: float, x0: torch.Tensor, f0: torch.Tensor) -> float:
        """Hairer, Norsett & Wanner, Solving ODEs I, II.4 (order 4 for the step estimate, as torchdiffeq)."""
        scale = self.atol + x0.abs() * self.rtol
        d0, d1 = _rms(x0 / scale), _rms(f0 / scale)
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        f1 = v(torch.tensor(t0 + h0, dtype=x0.dtype, device=x0.device), x0 + h0 * f0)
        d2 = _rms((f1 - f0) / scale) / h0
        if d1 <= 1e-15 and d2 <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        else:
            h1 = (0.01 / max(d1, d2)) ** (1.0 / 5)
        return min(100 * h0, h1)

    def _next_step(self, h: float, error_ratio: float) -> float:
        if error_ratio == 0:
            return h * self.max_factor
        lower = 1.0 if error_ratio < 1 else self.min_factor
        return h * min(self.max_factor, max(self.safety / error_ratio ** (1 / 5), lower))

    def solve(self, velocity: Velocity, x: torch.Tensor, t_start: float = 0.0, t_end: float = 1.0,
              callback: StepCallback | None = None) -> Solution:
        v = _CountingVelocity(velocity)

        def at(t: float) -> torch.Tensor:
            return torch.tensor(t, dtype=x.dtype, device=x.device)

        t, f = float(t_start), v(at(t_start), x)
        _check_finite(f, t, "velocity")
        h = self._initial_step(v, t, x, f)
        min_step = self.min_step_fraction * abs(t_end - t_start)
        accepted = rejected = 0
        while True:
            if not (math.isfinite(h) and h >= min_step):
                resolution = torch.finfo(x.dtype).eps
                finer = (f" (finer than {x.dtype} resolves, about {resolution:.0e})"
                         if min(self.atol, self.rtol) < resolution else "")
                raise SolverError(f"dopri5's step size collapsed to {h:.3g} at t={t:.3g} after {accepted} steps "
                                  f"({rejected} rejected): the guided velocity field is too steep to follow at "
                                  f"atol={self.atol:g}, rtol={self.rtol:g}{finer}; {_adaptive_advice()}")
            if v.count + 6 > self.max_evaluations:
                raise EvaluationLimitReached(f"dopri5 reached its limit of {self.max_evaluations:,} velocity "
                                             f"evaluations at t={t:.4f} ({accepted} steps, {rejected} rejected); "
                                             f"{_adaptive_advice()}")
            stages = [f]
            for c, a in zip(_DP_C, _DP_A):
                stages.append(v(at(t + c * h), _combine(x, h, a, stages)))
            x_new = _combine(x, h, _DP_A[-1], stages)
            error = _combine(torch.zeros_like(x), h, _DP_ERROR, stages)
            tolerance = self.atol + self.rtol * torch.maximum(x.abs(), x_new.abs())
            error_ratio = _rms(error / tolerance)
            if error_ratio <= 1:
                if t + h >= t_end:  # the step covers the end: read the endpoint from the dense-output polynomial
                    x_mid = _combine(x, h, _DP_MID, stages)
                    x = _quartic_interpolation(x, x_new, x_mid, stages[0], stages[-1], h, (t_end - t) / h)
                    _check_finite(x, t_end)
                    accepted += 1
                    if callback is not None:
                        callback(accepted, None, t_end)
                    return Solution(x=x, evaluations=v.count, steps=accepted, rejected_steps=rejected)
                t, x, f = t + h, x_new, stages[-1]
                _check_finite(x, t)
                accepted += 1
                if callback is not None:
                    callback(accepted, None, t)
            else:
                rejected += 1
            if not math.isfinite(error_ratio):
                raise SolverError(f"the sampler produced non-finite values at t={t:.4g} (the error estimate is "
                                  f"{error_ratio}); {_adaptive_advice()}")
            h = self._next_step(h, error_ratio)


def _quartic_interpolation(y0, y1, y_mid, f0, f1, h: float, s: float) -> torch.Tensor:
    """Dense output of one Dormand-Prince step at fraction s in [0, 1] of the step."""
    a = 2 * h * (f1 - f0) - 8 * (y1 + y0) + 16 * y_mid
    b = h * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * y_mid
    c = h * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * y_mid
    d = h * f0
    return y0 + s * (d + s * (c + s * (b + s * a)))


SOLVER_NAMES = (*_STEP_FUNCTIONS, "dopri5")  # the fixed-step table and the adaptive solver: the one list

OFFICIAL_SOLVER = "dopri5"  # torchdiffeq's, through flow_matching's ODESolver
OFFICIAL_ATOL = 1e-5
OFFICIAL_RTOL = 1e-5
# The default sampler stays the official one: no fixed-step setting with at most a third of its evaluations stays
# within 1 dB of it on every measured clip (bench/sampler_efficiency.py on the demo model; figures in the README).
DEFAULT_SOLVER = OFFICIAL_SOLVER
DEFAULT_FIXED_STEPS = 25  # only for the fixed-step solvers; dopri5 chooses its own steps
DEFAULT_SCHEDULE = UNIFORM  # their time grid (schedules.py); balanced is measured, not yet shown better everywhere


def make_solver(name: str, steps: int = DEFAULT_FIXED_STEPS, atol: float = OFFICIAL_ATOL, rtol: float = OFFICIAL_RTOL,
                schedule: str = UNIFORM, max_evaluations: int = MAX_EVALUATIONS) -> FixedStepSolver | Dopri5Solver:
    """A solver by name: fixed-step ones use ``steps`` on the ``schedule``'s grid; dopri5 uses ``atol``/``rtol``
    and at most ``max_evaluations`` velocity evaluations."""
    if check_solver(name) == "dopri5":
        return Dopri5Solver(atol=atol, rtol=rtol, max_evaluations=max_evaluations)
    return FixedStepSolver(name, steps, schedule)


def check_solver(name: str) -> str:
    """``name`` when it is one of :data:`SOLVER_NAMES`; otherwise a ValueError listing them (the one solver-name
    check, for :func:`make_solver` and :class:`~.settings.SamplerSettings`)."""
    if name not in SOLVER_NAMES:
        raise ValueError(f"unknown solver '{name}'; choose one of {', '.join(SOLVER_NAMES)}")
    return name
