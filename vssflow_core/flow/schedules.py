"""Time grids for the fixed-step solvers: where in flow time (0 = noise, 1 = data) their steps go.

``uniform``
    Equal steps.
``balanced``
    Steps placed so that each adds about the same error to the result.  Not every step's error costs the same:
    one made early is carried and amplified by the rest of the integration (the flow is still deciding what the
    sound will be; on the demo model an error in the first sixteenth of the time grows about tenfold), one made near
    the data barely moves the result.  Adaptive solvers do the opposite: they control the *local* error, which is
    largest near the data, and spend most of their steps there.

    The grid equidistributes a measured error density.  ``ERROR_CONTRIBUTION[i]`` is how far one Heun step over the
    i-th of ``len(ERROR_CONTRIBUTION)`` equal parts of [0, 1], taken from the exact trajectory and then carried
    exactly to t = 1, moves the decoded log-mel (largest bin difference, dB; mean over held-out clips of the demo
    model: ``bench/sampler_efficiency.py --checkpoint demo --contributions``).  A second-order method's step of
    length h errs by about D(t) h^3, so n steps with density rho(t) err by about the integral of D / rho^2 (up to
    a constant), which is smallest for rho proportional to D^(1/3).  Re-measure the table for other weights.
"""

from __future__ import annotations

import torch

UNIFORM = "uniform"
BALANCED = "balanced"
SCHEDULES = (UNIFORM, BALANCED)

# dB, per sixteenth of flow time from noise to data (see the module docstring for how it is measured)
ERROR_CONTRIBUTION = (4.89, 1.62, 0.693, 0.188, 0.17, 0.13, 0.118, 0.0917, 0.0596, 0.0435, 0.0247, 0.0326, 0.0937, 0.13,
                      0.977, 0.72)
# the step density of a method whose local error is of order 3 (Heun, midpoint, ab2) equidistributes D h^3
BALANCING_EXPONENT = 1.0 / 3.0


def balanced_density(contribution=ERROR_CONTRIBUTION, exponent: float = BALANCING_EXPONENT) -> torch.Tensor:
    """Relative step density over equal parts of [0, 1] (sums to 1)."""
    density = torch.as_tensor(contribution, dtype=torch.float64).clamp_min(1e-12) ** exponent
    return density / density.sum()


def grid_from_density(density: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps + 1`` times from 0 to 1 with equal probability mass of the piecewise-constant ``density`` between
    neighbours (inverse of its cumulative distribution, linear within each part)."""
    parts = density.numel()
    cdf = torch.cat([density.new_zeros(1), density.cumsum(0)])
    cdf = cdf / cdf[-1]
    quantiles = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    part = torch.searchsorted(cdf, quantiles, right=True).clamp(1, parts) - 1
    fraction = (quantiles - cdf[part]) / (cdf[part + 1] - cdf[part])
    grid = (part + fraction) / parts
    grid[0], grid[-1] = 0.0, 1.0
    return grid


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown time schedule '{schedule}'; choose one of {', '.join(SCHEDULES)}")


def time_grid(schedule: str, steps: int) -> torch.Tensor:
    """The ``steps + 1`` float64 times, from 0 to 1, of a fixed-step solver on ``schedule``."""
    if steps < 1:
        raise ValueError(f"the number of steps must be at least 1, got {steps}")
    check_schedule(schedule)
    if schedule == UNIFORM:
        return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    return grid_from_density(balanced_density(), steps)
