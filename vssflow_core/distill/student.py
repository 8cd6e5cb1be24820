"""Step two of distillation: a student of the teacher's architecture, initialised from it, trained by rectified-flow
reflow on the teacher's pairs, with classifier-free guidance folded in.

Objective (reflow, Liu et al. 2022).  A pair couples noise x0 with the teacher's endpoint x1 = ODE(x0).  Along the
straight path x_t = (1 - t) x0 + t x1 the student learns the constant velocity x1 - x0 (MSE over the audio channels,
t ~ U(0, 1)).  A field whose paths are straight is integrated exactly by one Euler step, so the fewer steps the
student needs the better it has learnt; the loss and the endpoint error at 1..8 steps measure it directly.  It needs
nothing but the pairs, and no second network at inference.

Where on the path it learns (``time_distribution``).  ``uniform`` draws t ~ U(0, 1).  ``ends`` draws t with density
proportional to cosh(a (t - 1/2)), a = 4 (3.8x as likely at either end as in the middle; the U-shaped distribution of
Lee et al. 2024 for reflow): the sampler bench finds the teacher's field fastest, and a step's error largest, at
both ends of the flow, and the first step from the noise is the one every few-step schedule takes.

Guidance folded in, at a fixed scale (the teacher's, 3).  The pairs were made with the guided field, so reflow's
target already carries guidance; the student is trained to make it with one conditional pass, and is sampled at
guidance scale 1 (:attr:`~vssflow_core.flow.guidance.GuidedVelocity.conditional_only`: one pass, not two).  A fixed
scale rather than a scale input: the official scale is the only one the pairs hold, and an input would change the
architecture, so the student would no longer be an ordinary VSSFlow checkpoint.

At initialisation the student must already be the guided teacher, or its first steps would chase the gap between
the conditional and the guided field.  :class:`FoldedGuidance` is the student's training-time velocity::

    v = v_student(x, c) + (1 - fold) * (w - 1) * (v_teacher(x, c) - v_teacher(x, 0))

With the student equal to the teacher and ``fold = 0`` this is exactly the teacher's guided velocity
``u + w (c - u)`` (float32 rounding: tested to within 1e-5 of the field's scale).  ``fold`` rises linearly from 0 to 1
over the first ``fold_steps`` optimizer steps, moving the guidance from the frozen teacher's term into the student's
own weights; from then on the term is gone and the student alone is trained, as it is sampled.  The saved student
is the network alone; the last steps (``fold = 1``) train it exactly as it is sampled.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..flow.settings import SamplerSettings, sampler_metadata
from ..model.vssflow import VSSFlow
from ..weights.checkpoint import VSSFLOW_FILE, save_vssflow
from .pairs import CONDITION_KEYS, PairsDataset

log = logging.getLogger(__name__)

DISTILL_METADATA_KEY = "vssflow_distill"  # how the student was made (JSON), beside its recommended sampler


class FoldedGuidance(nn.Module):
    """The student's velocity during distillation (see the module docstring); ``teacher`` stays frozen."""

    def __init__(self, student: VSSFlow, teacher: VSSFlow, guidance_scale: float):
        super().__init__()
        if student.cfg != teacher.cfg:
            raise ValueError("the student must have the teacher's architecture (it starts as a copy of it)")
        self.student = student
        self.teacher = teacher.eval().requires_grad_(False)
        self.guidance_scale = float(guidance_scale)

    @staticmethod
    def _velocity(model: VSSFlow, latent: torch.Tensor, t: torch.Tensor, raw: Mapping[str, torch.Tensor],
                  unconditional: bool = False) -> torch.Tensor:
        cond = model.prepare_conditions(*(raw[k] for k in CONDITION_KEYS), latent_length=latent.shape[-1])
        if unconditional:
            cond = cond.zeros_like()
        x = torch.cat([latent, cond.latent_cond.to(latent.dtype)], dim=1)
        return model(x, t, cond.context)[:, : model.latent_channels]

    def forward(self, latent: torch.Tensor, t: torch.Tensor, raw: Mapping[str, torch.Tensor],
                fold: float = 1.0) -> torch.Tensor:
        """Velocity of the audio latent [B, C, L] at flow times t [B] on raw conditions (``CONDITION_KEYS``)."""
        v = self._velocity(self.student, latent, t, raw)
        if fold < 1.0 and self.guidance_scale != 1.0:
            with torch.no_grad():
                c = self._velocity(self.teacher, latent, t, raw)
                u = self._velocity(self.teacher, latent, t, raw, unconditional=True)
            v = v + (1.0 - fold) * (self.guidance_scale - 1.0) * (c - u)
        return v


def fold_at(step: int, fold_steps: int) -> float:
    """How much of the guidance the student carries itself at optimizer step ``step`` (0 -> 1 over ``fold_steps``)."""
    return 1.0 if fold_steps <= 0 else min(1.0, step / fold_steps)


TIME_DISTRIBUTIONS = ("uniform", "ends")
LR_DECAYS = ("constant", "cosine")
FINAL_LR_FRACTION = 0.1  # cosine decay ends at this fraction of the learning rate
ENDS_SHARPNESS = 4.0  # a in cosh(a (t - 1/2)): the ends 3.8x as likely as the middle


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


def sample_times(n: int, distribution: str, generator: torch.Generator) -> torch.Tensor:
    """``n`` flow times in [0, 1] from ``distribution`` (see the module docstring); ``ends`` by its inverse CDF."""
    _check_choice("time distribution", distribution, TIME_DISTRIBUTIONS)
    u = torch.rand(n, generator=generator)
    if distribution == "uniform":
        return u
    a = ENDS_SHARPNESS
    return (0.5 + torch.asinh((2 * u - 1) * math.sinh(a / 2)) / a).clamp(0.0, 1.0)


def reflow_loss(velocity: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """MSE of a predicted velocity against the straight path's x1 - x0."""
    return F.mse_loss(velocity, x1 - x0)


@dataclass(frozen=True)
class StudentPlan:
    """How the student is trained and how it will be sampled (its recommendation)."""

    max_steps: int = 2000
    batch_size: int = 8
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    seed: int = 0
    fold_steps: int = 200  # guidance moves from the teacher's term into the student over these steps
    solver: str = "euler"  # the recommended sampler: straight paths want the cheapest solver
    sample_steps: int = 4
    schedule: str = "uniform"
    time_distribution: str = "uniform"  # where on the path training draws t (TIME_DISTRIBUTIONS)
    lr_decay: str = "constant"  # or "cosine": down to a tenth of learning_rate by the last step
    log_every: int = 10

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "sample_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.fold_steps < self.max_steps:
            raise ValueError(f"fold_steps ({self.fold_steps}) must be below max_steps ({self.max_steps}): the "
                             "last steps train the student alone, as it is sampled")
        _check_choice("learning-rate decay", self.lr_decay, LR_DECAYS)
        _check_choice("time distribution", self.time_distribution, TIME_DISTRIBUTIONS)
        self.recommended()  # bad solver names are refused now, not after training

    def recommended(self) -> SamplerSettings:
        """The student's sampler: guidance scale 1 (folded in), one network pass per evaluation."""
        return SamplerSettings(solver=self.solver, steps=self.sample_steps, schedule=self.schedule,
                               guidance_scale=1.0)


def student_from(teacher: VSSFlow) -> VSSFlow:
    """A trainable copy of the teacher (same architecture and weights; the Fourier time weights stay frozen as in
    training)."""
    student = copy.deepcopy(teacher).train()
    with torch.device("meta"):  # which parameters training keeps frozen, without allocating a second network
        frozen = {n for n, p in VSSFlow(teacher.cfg).named_parameters() if not p.requires_grad}
    for name, p in student.named_parameters():
        p.requires_grad_(name not in frozen)
    return student


def _batch_seed(seed: int, step: int) -> int:
    state = np.random.SeedSequence([int(seed), int(step), 0x444953]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


@dataclass
class StudentResult:
    losses: list[float]
    path: Path
    learning_rates: list[float] = field(default_factory=list)  # the rate each optimizer step used


def train_student(teacher: VSSFlow, pairs: PairsDataset, out: str | os.PathLike, plan: StudentPlan = StudentPlan(), *,
                  teacher_path: str | os.PathLike | None = None, overwrite: bool = False,
                  progress: bool = True) -> StudentResult:
    """Train the student on ``pairs`` and write it to ``out`` (see :func:`save_student`)."""
    from tqdm.auto import tqdm

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite")
    device = next(teacher.parameters()).device
    guidance = float(pairs.meta.get("guidance_scale", 3.0))
    torch.manual_seed(plan.seed)
    folded = FoldedGuidance(student_from(teacher), teacher, guidance)
    params = [p for p in folded.student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=plan.learning_rate, weight_decay=plan.weight_decay)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, plan.max_steps - 1),
                                                            eta_min=plan.learning_rate * FINAL_LR_FRACTION)
                 if plan.lr_decay == "cosine" else None)
    rates: list[float] = []
    losses: list[float] = []
    bar = tqdm(range(plan.max_steps), desc="distilling", unit="step", disable=not progress, dynamic_ncols=True)
    for step in bar:
        g = torch.Generator().manual_seed(_batch_seed(plan.seed, step))
        index = torch.randint(len(pairs), (plan.batch_size,), generator=g).tolist()
        t = sample_times(plan.batch_size, plan.time_distribution, g)
        items = [pairs[i] for i in index]
        batch = {k: torch.stack([item[k] for item in items]).to(device) for k in (*CONDITION_KEYS, "noise",
                                                                                   "endpoint")}
        x0, x1, t = batch["noise"], batch["endpoint"], t.to(device)
        x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
        loss = reflow_loss(folded(x_t, t, batch, fold=fold_at(step, plan.fold_steps)), x0, x1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the distillation loss is {value} at step {step + 1}; lower the learning rate")
        losses.append(value)
        if (step + 1) % plan.log_every == 0:
            bar.set_postfix(loss=f"{value:.4f}", fold=f"{fold_at(step, plan.fold_steps):.2f}", refresh=False)
    bar.close()
    facts = {"teacher_guidance_scale": guidance, "pairs": len(pairs), "plan": asdict(plan),
             "objective": "reflow", "final_loss": losses[-1]}
    path = save_student(folded.student.eval(), out, plan.recommended(), facts, teacher_path=teacher_path,
                        overwrite=overwrite)
    return StudentResult(losses=losses, path=path, learning_rates=rates)


def save_student(student: VSSFlow, out: str | os.PathLike, recommended: SamplerSettings,
                 facts: Mapping[str, Any] | None = None, *, teacher_path: str | os.PathLike | None = None,
                 overwrite: bool = False) -> Path:
    """Write the student as an ordinary VSSFlow checkpoint whose metadata recommends its sampler (guidance folded:
    scale 1).  A teacher folder (the demo, a converted checkpoint) gives a folder: the student's network plus the
    teacher's other files (linked where the file system allows), so it loads with the same components; otherwise
    one ``.safetensors`` file.  Written whole or not at all."""
    out = Path(out)
    facts = dict(facts or {})
    metadata = {**sampler_metadata(recommended, guidance_folded=True),
                DISTILL_METADATA_KEY: json.dumps(facts, sort_keys=True, default=str)}
    teacher_dir = Path(teacher_path) if teacher_path is not None and Path(teacher_path).is_dir() else None
    if teacher_dir is None:
        if out.suffix != ".safetensors":
            out = out.with_suffix(".safetensors") if out.suffix == "" else out
        return save_vssflow(student, out, overwrite=overwrite, metadata=metadata)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for source in teacher_dir.iterdir():
            if source.is_file() and source.name != VSSFLOW_FILE:
                try:
                    os.link(source, tmp / source.name)
                except OSError:
                    shutil.copy2(source, tmp / source.name)
        save_vssflow(student, tmp / VSSFLOW_FILE, overwrite=True, metadata=metadata)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
