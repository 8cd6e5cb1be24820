"""How to sample, as one value (:class:`SamplerSettings`: checked once, makes the solver), and what a sampling run
cost (:class:`SamplingStats`: seeds, solver, steps, evaluations, totalled over windows with ``+``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from .guidance import OFFICIAL_GUIDANCE_SCALE
from .schedules import check_schedule
from .solvers import (DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER, MAX_EVALUATIONS, OFFICIAL_ATOL,
                      OFFICIAL_RTOL, Dopri5Solver, FixedStepSolver, check_fixed_steps, check_solver, make_solver)

__all__ = ["SamplerSettings", "SamplingStats", "SAMPLER_METADATA_KEY", "recommended_settings", "sampler_metadata"]


@dataclass(frozen=True)
class SamplerSettings:
    """Which solver integrates the guided flow, and how.

    ``solver``: dopri5 (official, adaptive: ``atol``/``rtol``) or euler / midpoint / heun / rk4 / ab2 (``steps`` on the
    ``schedule``'s time grid: ``balanced`` or ``uniform``).  The speed flags change the cost, not the field:
    ``batched_guidance`` runs the unconditional and conditional inputs as one batch, ``cache`` computes what is
    constant over the generation once (with a bfloat16 network it also keeps the residual stream and time features in
    float32), ``compile`` runs the network through ``torch.compile`` (slow to start; falls back with a warning where it
    cannot compile).  ``cache=False, batched_guidance=False`` is the reference path: two plain passes per evaluation,
    as official.

    Bad names and values are refused when the settings are made, before any video is read; ``steps`` is bounded by
    :data:`~.solvers.MAX_FIXED_STEPS`, and dopri5 stops after ``max_evaluations`` velocity evaluations per window.
    """

    solver: str = DEFAULT_SOLVER
    steps: int = DEFAULT_FIXED_STEPS
    schedule: str = DEFAULT_SCHEDULE
    guidance_scale: float = OFFICIAL_GUIDANCE_SCALE
    atol: float = OFFICIAL_ATOL
    rtol: float = OFFICIAL_RTOL
    batched_guidance: bool = True
    cache: bool = True
    compile: bool = False
    max_evaluations: int = MAX_EVALUATIONS

    def __post_init__(self) -> None:
        check_solver(self.solver)
        check_schedule(self.schedule)
        object.__setattr__(self, "steps", check_fixed_steps(self.steps))  # bounded even when dopri5 ignores it
        if not math.isfinite(self.guidance_scale):
            raise ValueError(f"guidance scale must be a finite number, got {self.guidance_scale}")
        for name, official in (("atol", OFFICIAL_ATOL), ("rtol", OFFICIAL_RTOL)):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, got {value} (official: {official:g})")
        if not self.max_evaluations >= 1:
            raise ValueError(f"max_evaluations must be at least 1, got {self.max_evaluations}")

    @property
    def fixed_steps(self) -> bool:
        """Whether the solver takes ``steps`` steps (every solver but the adaptive dopri5)."""
        return self.solver != "dopri5"

    def make_solver(self) -> FixedStepSolver | Dopri5Solver:
        return make_solver(self.solver, steps=self.steps, atol=self.atol, rtol=self.rtol, schedule=self.schedule,
                           max_evaluations=self.max_evaluations)

    def describe(self) -> str:
        """``dopri5 atol=rtol=1e-05`` / ``euler 25 steps (uniform)``, for logs and reports."""
        if self.fixed_steps:
            return f"{self.solver} {self.steps} steps ({self.schedule})"
        if self.atol == self.rtol:
            return f"{self.solver} atol=rtol={self.atol:g}"
        return f"{self.solver} atol={self.atol:g} rtol={self.rtol:g}"


@dataclass(frozen=True)
class SamplingStats:
    """What one sampling run took: the seed of every batch item (of the first window), the solver, the accepted steps
    and the guided-velocity evaluations (each one network pass over [uncond ; cond] by default).  ``a + b`` is the run
    of ``a``'s windows followed by ``b``'s."""

    seeds: tuple[int, ...] = ()
    solver: str = DEFAULT_SOLVER
    steps: int = 0
    evaluations: int = 0

    def __add__(self, other: "SamplingStats") -> "SamplingStats":
        return SamplingStats(seeds=self.seeds or other.seeds, solver=self.solver, steps=self.steps + other.steps,
                             evaluations=self.evaluations + other.evaluations)


# ---------------------------------------------------------------------------------------------------------------------
# A checkpoint's recommended sampler (a distilled student carries one: vssflow_core.distill)
# ---------------------------------------------------------------------------------------------------------------------

SAMPLER_METADATA_KEY = "vssflow_sampler"  # the safetensors metadata entry: JSON of the fields below plus facts
_RECOMMENDED_FIELDS = ("solver", "steps", "schedule", "guidance_scale", "atol", "rtol")


def sampler_metadata(settings: SamplerSettings, **facts: Any) -> dict[str, str]:
    """The metadata entry that makes ``settings`` a checkpoint's default sampler; ``facts`` (JSON values, e.g.
    ``guidance_folded=True``) are stored beside them for people and tools to read."""
    recommended = {name: getattr(settings, name) for name in _RECOMMENDED_FIELDS}
    return {SAMPLER_METADATA_KEY: json.dumps({**facts, **recommended}, sort_keys=True)}


def recommended_settings(metadata: Mapping[str, str] | None, base: SamplerSettings | None = None,
                         **overrides: Any) -> SamplerSettings:
    """The settings a checkpoint's metadata recommends, on top of ``base`` (default :class:`SamplerSettings`), with
    the user's explicit ``overrides`` on top of them (a None value means "not given").  A checkpoint without a
    recommendation gives ``base`` with the overrides; an unreadable one is refused by name."""
    settings = base if base is not None else SamplerSettings()
    text = (metadata or {}).get(SAMPLER_METADATA_KEY)
    if text:
        try:
            stored = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the checkpoint's '{SAMPLER_METADATA_KEY}' metadata is not valid JSON ({exc}); "
                             "write the checkpoint again (python -m vssflow_core distill)") from None
        if not isinstance(stored, dict):
            raise ValueError(f"the checkpoint's '{SAMPLER_METADATA_KEY}' metadata is not a JSON object")
        settings = replace(settings, **{k: stored[k] for k in _RECOMMENDED_FIELDS if k in stored})
    known = {f.name for f in fields(SamplerSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown sampler settings {unknown}; choose from {sorted(known)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(settings, **given) if given else settings
