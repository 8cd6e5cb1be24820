"""The speed half of the distillation benchmark (``bench/distill.py --speed-full`` and ``--speed-demo``; what is
timed is in that file's docstring): one sampler run timed on the pipeline's fast path, the full-size random network's
run and the demo's end-to-end run."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from distill_quality import passes_per_evaluation  # noqa: E402
from sampler_efficiency import small_config  # noqa: E402
from vssflow_core.config import SEQUENCE, VSSFlowConfig  # noqa: E402
from vssflow_core.distill.pairs import TEACHER_SAMPLER  # noqa: E402
from vssflow_core.flow.guidance import CachedGuidedVelocity  # noqa: E402
from vssflow_core.flow.settings import SamplerSettings  # noqa: E402
from vssflow_core.flow.solvers import EvaluationLimitReached  # noqa: E402
from vssflow_core.model.vssflow import VSSFlow  # noqa: E402


def random_conditions(model: VSSFlow, length: int, seed: int):
    """Random but fixed conditions of a 10 s clip (CLIP, Synchformer, phoneme ids; no lip, no speaker) and noise."""
    cfg, g = model.cfg, torch.Generator().manual_seed(seed)
    clip = torch.randn(1, SEQUENCE.clip_frames, cfg.clip_dim, generator=g)
    synch = torch.randn(1, SEQUENCE.synch_segments, SEQUENCE.synch_tokens_per_segment, cfg.synch_dim, generator=g)
    phones = torch.randint(1, cfg.phone_vocab, (1, length), generator=g)
    noise = torch.randn(1, cfg.latent_channels, length, generator=g)
    device = next(model.parameters()).device
    with torch.inference_mode():
        conditions = model.prepare_conditions(clip.to(device), synch.to(device), phones.to(device),
                                              latent_length=length)
    return conditions, noise.to(device)


@dataclass
class Timed:
    name: str
    sampler: str
    evaluations: int
    passes: int
    seconds: float
    capped: bool = False  # dopri5 stopped at --max-evals before t = 1

    @property
    def seconds_per_pass(self) -> float:
        return self.seconds / max(1, self.passes)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def time_sampler(model: VSSFlow, conditions, noise: torch.Tensor, settings: SamplerSettings, name: str) -> Timed:
    """One sampling run from ``noise`` to t = 1 on the pipeline's fast path (``CachedGuidedVelocity``, batched
    guidance; the ODE state float32), timed; a dopri5 run that reaches ``settings.max_evaluations`` is cut there."""
    velocity = CachedGuidedVelocity(model, conditions, settings.guidance_scale, batched=settings.batched_guidance)
    x = torch.cat([noise.float(), conditions.latent_cond.float()], dim=1)
    solver = settings.make_solver()
    device = noise.device
    capped = False
    _synchronize(device)
    start = time.perf_counter()
    try:
        solver.solve(velocity, x, 0.0, 1.0)
    except EvaluationLimitReached:
        capped = True
    _synchronize(device)
    seconds = time.perf_counter() - start
    return Timed(name, settings.describe(), velocity.evaluations,
                 velocity.evaluations * passes_per_evaluation(settings), seconds, capped)


def print_speed(rows: list[Timed], per_pass: bool = True) -> None:
    """The (teacher, student) timings; ``per_pass``: also seconds per pass (the sampler alone: end to end it would
    spread the encoders' and the decoder's time over the passes)."""
    print(f"{'run':<10} {'sampler':<26} {'evaluations':>11} {'network passes':>14} {'seconds':>9}"
          + (f" {'s per pass':>10}" if per_pass else ""))
    for r in rows:
        print(f"{r.name:<10} {r.sampler:<26} {r.evaluations:>11} {r.passes:>14} {r.seconds:>9.2f}"
              + (f" {r.seconds_per_pass:>10.4f}" if per_pass else "")
              + ("   (capped: stopped at --max-evals)" if r.capped else ""))
    teacher, student = rows
    bound = "at least " if teacher.capped else ""
    print(f"teacher / student: {bound}{teacher.seconds / student.seconds:.1f}x the wall time, "
          f"{bound}{teacher.passes / student.passes:.1f}x the network passes")


def speed_full(*, tiny: bool = False, student_steps: int = 4, max_evals: int | None = None, seed: int = 0,
               dtype: torch.dtype = torch.float32, device: str = "cpu") -> list[Timed]:
    """The ``--speed-full`` run (module docstring): (teacher, student) timings on one random network."""
    cfg = small_config(2, 8) if tiny else VSSFlowConfig()
    torch.manual_seed(seed)
    model = VSSFlow(cfg).to(device=device, dtype=dtype).eval().requires_grad_(False)
    conditions, noise = random_conditions(model, SEQUENCE.latent_length, seed + 1)
    teacher = TEACHER_SAMPLER if max_evals is None else replace(TEACHER_SAMPLER, max_evaluations=max_evals)
    student = SamplerSettings(solver="euler", steps=student_steps, guidance_scale=1.0)
    params = sum(p.numel() for p in model.parameters())
    print(f"network: {'tiny' if tiny else 'full-size'} random weights, {params / 1e6:.1f} M parameters, "
          f"{str(dtype).removeprefix('torch.')} on {device}, {SEQUENCE.latent_length} latent frames, threads "
          f"{torch.get_num_threads()}; one run each, the sampler only (the DiT)", flush=True)
    return [time_sampler(model, conditions, noise, teacher, "teacher"),
            time_sampler(model, conditions, noise, student, "student")]


def speed_demo(teacher_checkpoint: str, student_checkpoint: str, video: str, *, transcript: str | None = None,
               seed: int = 0, warmup: bool = True) -> list[Timed]:
    """The ``--speed-demo`` run (module docstring): (teacher, student) end-to-end ``generate`` timings."""
    from vssflow_core.pipeline import VSSFlowPipeline

    runs = []
    for name, checkpoint in (("teacher", teacher_checkpoint), ("student", student_checkpoint)):
        pipeline = VSSFlowPipeline.load(checkpoint, device="cpu")
        settings = TEACHER_SAMPLER if name == "teacher" else pipeline.default_settings  # the student's recommendation
        if warmup:  # first-call costs (lexicon, allocator, decoder set-up) are not the sampler's
            pipeline.generate(video, transcript=transcript, seed=seed, settings=SamplerSettings("euler", steps=1))
        start = time.perf_counter()
        result = pipeline.generate(video, transcript=transcript, seed=seed, settings=settings)
        seconds = time.perf_counter() - start
        evaluations = result.stats.evaluations
        runs.append(Timed(name, settings.describe(), evaluations, evaluations * passes_per_evaluation(settings),
                          seconds))
    return runs
