"""Sampler efficiency: how close each ODE solver gets to a tight dopri5 reference, against its model evaluations.

What it measures
    For a VSSFlow network (a small random one by default, or a checkpoint with ``--checkpoint``), random but fixed
    conditions (CLIP, Synchformer, phoneme ids; no lip, no speaker, as the in-the-wild inference) and a fixed noise
    draw, it integrates the classifier-free-guided flow from t = 0 to 1, as the pipeline samples it
    (``CachedGuidedVelocity``, w = 3 by default), with:
      - euler, midpoint, heun, rk4 at several step counts (``--steps``),
      - dopri5 at several tolerances (atol = rtol, ``--tols``; 1e-5 is the official setting),
    and compares each endpoint's latent channels with a reference: dopri5 at atol = rtol = 1e-7 (``--ref-tol``) with
    the network in float64.  Each row gives the guided-velocity evaluations (each one network pass over
    [unconditional ; conditional] with guidance on), the RMS distance from the reference, that distance relative to
    the RMS of the reference latent, and the evaluations as a fraction of the official dopri5 (1e-5)'s.  Rows are
    sorted by evaluations; the last lines name the cheapest fixed-step setting whose error is at most the official
    dopri5's.

    Random networks are not trained flows: their velocity fields are smoother or rougher than the real model's, so
    the ranking is indicative, not the final word: the default sampler is chosen with ``--checkpoint`` on a trained
    network (any path ``load_network`` accepts: a ``.safetensors`` with its configuration, a converted folder, an
    official ``.ckpt``, or ``demo`` for the shipped demo model).  The runs are float64 by default so the comparison
    is not limited by float32 round-off; ``--dtype float32`` / ``bfloat16`` run the network as the pipeline would
    (ODE state float32), which is how to choose a sampler for bf16.  The reference has an error of its own: errors
    that stop falling as the step count grows (rk4 plateaus around 2e-6 relative on the default model) measure the
    reference, not the solver.

Run
    .venv/bin/python bench/sampler_efficiency.py                       # small random model, ~15 s on 2 cores
    .venv/bin/python bench/sampler_efficiency.py --checkpoint PATH --dtype float32        # 250 latent frames
    .venv/bin/python bench/sampler_efficiency.py --checkpoint PATH --dtype bfloat16 --tols 1e-3,1e-4,1e-5
Options: ``--layers``, ``--width-heads`` (heads of 16), ``--tokens`` (latent frames; default 100, or the 10 s
window's 250 with a checkpoint), ``--head-dim`` (only for an official ``.ckpt`` of another head size),
``--guidance``, ``--seed``, ``--steps 4,8,16,32``, ``--tols 1e-3,1e-4,1e-5,1e-6``, ``--ref-tol``, ``--init-std``
(re-draw every weight matrix from N(0, std^2) instead of PyTorch's default init, for a rougher field),
``--threads``.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vssflow_core.config import SEQUENCE, VSSFlowConfig  # noqa: E402
from vssflow_core.flow.guidance import CachedGuidedVelocity  # noqa: E402
from vssflow_core.flow.solvers import Dopri5Solver, FixedStepSolver  # noqa: E402
from vssflow_core.model.vssflow import VSSFlow  # noqa: E402

OFFICIAL_TOL = 1e-5


def small_config(layers: int, heads: int) -> VSSFlowConfig:
    return VSSFlowConfig(num_layers=layers, num_heads=heads, head_dim=16, num_kv_heads=max(1, heads // 2),
                         time_proj_dim=64, context_dim=128, lip_channels=64, phone_channels=16, synch_channels=64,
                         clip_dim=128, synch_dim=128, speaker_dim=32, lip_dim=64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width-heads", type=int, default=8, help="attention heads of 16 (width = 16 x heads)")
    parser.add_argument("--tokens", type=int, default=None, help="latent frames (100; 250 with a checkpoint)")
    parser.add_argument("--head-dim", type=int, default=None)
    parser.add_argument("--video", default=None, help="with --checkpoint: condition on this video's features "
                                                       "(encoded by the checkpoint's components) instead of noise")
    parser.add_argument("--transcript", default=None, help="with --video: speech over the whole clip")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", default="2,4,8,16,32,64")
    parser.add_argument("--tols", default="1e-2,1e-3,1e-4,1e-5,1e-6")
    parser.add_argument("--ref-tol", type=float, default=1e-7)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32", "bfloat16"])
    parser.add_argument("--init-std", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    dtype = getattr(torch, args.dtype)
    state_dtype = torch.float64 if dtype == torch.float64 else torch.float32  # the pipeline's float32 ODE state
    torch.manual_seed(args.seed)
    if args.checkpoint:
        from vssflow_core.pipeline import load_network

        reference_model = load_network(args.checkpoint, device="cpu", dtype=torch.float64, head_dim=args.head_dim)
        source = args.checkpoint
    else:
        reference_model = VSSFlow(small_config(args.layers, args.width_heads))
        if args.init_std is not None:
            for name, p in reference_model.named_parameters():
                if p.ndim >= 2:
                    torch.nn.init.normal_(p, std=args.init_std)
        source = f"random ({args.layers} layers, width {reference_model.cfg.width}, init {args.init_std or 'default'})"
    reference_model = reference_model.double().eval().requires_grad_(False)
    model = reference_model if dtype == torch.float64 else copy.deepcopy(reference_model).to(dtype)
    cfg = model.cfg
    length = args.tokens or (SEQUENCE.latent_length if args.checkpoint else 100)

    gen = torch.Generator().manual_seed(args.seed + 1)
    clip = torch.randn(1, max(1, length * 10 // 25), cfg.clip_dim, generator=gen, dtype=torch.float64)
    synch = torch.randn(1, max(1, length * 24 // 25), cfg.synch_dim, generator=gen, dtype=torch.float64)
    phones = torch.randint(1, cfg.phone_vocab, (1, length), generator=gen)
    if args.video:  # real conditions: what the default sampler will actually integrate
        from vssflow_core.pipeline import PipelineComponents, phoneme_frame_ids

        visual = PipelineComponents.load(args.checkpoint, device="cpu").encode_video(args.video)
        clip, synch = visual.clip.double(), visual.synch.double()
        phones = phoneme_frame_ids(args.transcript, None, None, visual.duration)[None]
    # one set of conditions (projected in float64) for every run, so only the sampling differs
    conditions = reference_model.prepare_conditions(clip=clip, synch=synch, phone_ids=phones, latent_length=length)
    noise = torch.randn(1, cfg.latent_channels, length, generator=gen, dtype=torch.float64)
    lat = cfg.latent_channels

    def run(solver, network=model):
        x0 = torch.cat([noise, conditions.latent_cond], dim=1)
        x0 = x0 if network is reference_model else x0.to(state_dtype)
        velocity = CachedGuidedVelocity(network, conditions, args.guidance)
        start = time.perf_counter()
        sol = solver.solve(velocity, x0, 0.0, 1.0)
        return sol, time.perf_counter() - start

    params = sum(p.numel() for p in model.parameters())
    print(f"model: {source}, {params / 1e6:.2f} M parameters, {length} latent frames, guidance {args.guidance}, "
          f"{args.dtype}, threads {torch.get_num_threads()}")
    ref, ref_time = run(Dopri5Solver(atol=args.ref_tol, rtol=args.ref_tol), reference_model)
    ref_x = ref.x[:, :lat].double()
    ref_rms = float(ref_x.pow(2).mean().sqrt())
    print(f"reference: dopri5 atol=rtol={args.ref_tol:g}: {ref.evaluations} evaluations, {ref.steps} steps "
          f"({ref.rejected_steps} rejected), {ref_time:.1f} s; RMS of the reference latent {ref_rms:.4f}")

    rows = []
    for tol in [float(v) for v in args.tols.split(",") if v]:
        sol, seconds = run(Dopri5Solver(atol=tol, rtol=tol))
        rows.append((f"dopri5 tol={tol:g}", sol, seconds, tol))
    for method in ("euler", "midpoint", "heun", "rk4"):
        for steps in [int(v) for v in args.steps.split(",") if v]:
            sol, seconds = run(FixedStepSolver(method, steps))
            rows.append((f"{method} {steps} steps", sol, seconds, None))

    def err(sol) -> float:
        return float((sol.x[:, :lat].double() - ref_x).pow(2).mean().sqrt())

    official = next((r for r in rows if r[3] is not None and math.isclose(r[3], OFFICIAL_TOL)), None)
    official_evals = official[1].evaluations if official else None
    official_err = err(official[1]) if official else None

    print()
    print(f"{'solver':<24} {'evals':>6} {'RMS err':>11} {'rel err':>10} {'evals/official':>15} {'time (s)':>9}")
    for name, sol, seconds, _ in sorted(rows, key=lambda r: (r[1].evaluations, r[0])):
        e = err(sol)
        frac = f"{sol.evaluations / official_evals:.3f}" if official_evals else "-"
        print(f"{name:<24} {sol.evaluations:>6} {e:>11.3e} {e / ref_rms:>10.3e} {frac:>15} {seconds:>9.2f}")

    if official is not None:
        print()
        print(f"official dopri5 (atol=rtol={OFFICIAL_TOL:g}): {official_evals} evaluations, RMS err {official_err:.3e}")
        fixed = [r for r in rows if r[3] is None and err(r[1]) <= official_err]
        if fixed:
            best = min(fixed, key=lambda r: (r[1].evaluations, err(r[1])))
            print(f"cheapest fixed-step setting within that error: {best[0]} ({best[1].evaluations} evaluations, "
                  f"{best[1].evaluations / official_evals:.3f} of the official's, RMS err {err(best[1]):.3e})")
        else:
            print("no fixed-step setting measured reaches the official dopri5's error")


if __name__ == "__main__":
    main()
