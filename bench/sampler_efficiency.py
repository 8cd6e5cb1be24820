"""Sampler efficiency: how close each ODE solver gets to a tight dopri5 reference, against its model evaluations.

What it measures
    For a VSSFlow network (a small random one by default, or a checkpoint with ``--checkpoint``), random but fixed
    conditions (CLIP, Synchformer, phoneme ids; no lip, no speaker, as the in-the-wild inference) and a fixed noise
    draw, it integrates the classifier-free-guided flow from t = 0 to 1, as the pipeline samples it
    (``CachedGuidedVelocity``, w = 3 by default), with:
      - euler, midpoint, heun, rk4, ab2 (``--methods``) at several step counts (``--steps``) on each time grid
        (``--schedules``: uniform, balanced),
      - dopri5 at several tolerances (atol = rtol, ``--tols``; 1e-5 is the official setting),
    and compares each endpoint's latent channels with a reference: dopri5 at atol = rtol = 1e-7 (``--ref-tol``) with
    the network in float64.  Each row gives the guided-velocity evaluations (each one network pass over
    [unconditional ; conditional] with guidance on) and that as a fraction of the official dopri5 (1e-5)'s, the RMS
    distance from the reference relative to the RMS of the reference latent, and, with a checkpoint, the largest
    difference of any decoded log-mel bin from the reference's, in dB.  With several ``--video`` clips every figure
    is the worst over the clips, and a second table gives each clip's figure.  The last lines name the cheapest
    fixed-step setting (a) within the official dopri5's own error and (b) within the measured tolerance: every
    decoded mel bin within 1 dB (``--mel-tolerance-db``) of the reference, about the smallest level change a
    listener hears.

    Random networks are not trained flows: their velocity fields are smoother or rougher than the real model's, so
    the ranking is indicative, not the final word: the default sampler is chosen with ``--checkpoint`` on a trained
    network (any path ``load_network`` accepts: a ``.safetensors`` with its configuration, a converted folder, an
    official ``.ckpt``, or ``demo`` for the shipped demo model).  The runs are float64 by default so the comparison
    is not limited by float32 round-off; ``--dtype float32`` / ``bfloat16`` run the network as the pipeline would
    (ODE state float32), which is how to choose a sampler for bf16.  The reference has an error of its own: errors
    that stop falling as the step count grows (rk4 plateaus around 2e-6 relative on the default model) measure the
    reference, not the solver.

    ``--contributions PARTS`` measures instead where in time the sampling error comes from: for each of PARTS equal
    parts of [0, 1], one Heun step over the part from the exact trajectory, carried exactly to t = 1, against the
    reference (mean over the clips).  Its last lines are the table behind the balanced time grid
    (``vssflow_core/flow/schedules.py``).

    ``--stiffness TIMES`` tells why a sampler needs the evaluations it does: at each flow time, the fastest rate of
    the field on the exact trajectory (largest |eigenvalue| of its Jacobian; an explicit step of length h follows
    the field only while h times the rate is well below 1), and how much the exact result moves for a small random
    change of the starting noise (near x1 or below: nearby trajectories do not separate, the flow is not chaotic).

Run
    .venv/bin/python bench/sampler_efficiency.py                       # small random model, ~15 s on 2 cores
    .venv/bin/python bench/sampler_efficiency.py --checkpoint demo --video A.mp4 B.mp4  # 250 latent frames
    .venv/bin/python bench/sampler_efficiency.py --checkpoint PATH --dtype bfloat16 --tols 1e-3,1e-4,1e-5
    .venv/bin/python bench/sampler_efficiency.py --checkpoint demo --video A.mp4 B.mp4 --contributions 16 --ref-tol 1e-6
    .venv/bin/python bench/sampler_efficiency.py --checkpoint demo --video A.mp4 --stiffness 0,0.1,0.5,0.9
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
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vssflow_core.codec.vae import unpack_latent  # noqa: E402
from vssflow_core.config import SEQUENCE, VSSFlowConfig  # noqa: E402
from vssflow_core.flow.guidance import CachedGuidedVelocity  # noqa: E402
from vssflow_core.flow.schedules import SCHEDULES, balanced_density, grid_from_density  # noqa: E402
from vssflow_core.flow.solvers import Dopri5Solver, FixedStepSolver  # noqa: E402
from vssflow_core.loading import load_components, load_network  # noqa: E402
from vssflow_core.model.vssflow import VSSFlow  # noqa: E402
from vssflow_core.text.track import phoneme_frame_ids  # noqa: E402

OFFICIAL_TOL = 1e-5
# The tolerance on the decoded result: about the smallest level difference a listener can hear (the intensity
# just-noticeable difference is ~1 dB).  A sampler within it in every mel bin sounds like the reference.
MEL_TOLERANCE_DB = 1.0
DB_PER_LOG_UNIT = 20.0 / math.log(10.0)  # the mel is the natural log of an amplitude


def small_config(layers: int, heads: int) -> VSSFlowConfig:
    return VSSFlowConfig(num_layers=layers, num_heads=heads, head_dim=16, num_kv_heads=max(1, heads // 2),
                         time_proj_dim=64, context_dim=128, lip_channels=64, phone_channels=16, synch_channels=64,
                         clip_dim=128, synch_dim=128, speaker_dim=32, lip_dim=64)


def mel_difference_db(mel: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(largest, mean) absolute difference of decoded log-mel bins from the reference's, in dB: the bench's measure
    (a sampler is within tolerance when the largest is)."""
    diff = (mel.double() - reference.double()).abs() * DB_PER_LOG_UNIT
    return float(diff.max()), float(diff.mean())


@dataclass
class Clip:
    """One integration problem: conditions and starting noise, the tight reference, and the reference's log-mel."""

    name: str
    conditions: object
    noise: torch.Tensor
    reference: torch.Tensor | None = None
    reference_mel: torch.Tensor | None = None

    def start(self) -> torch.Tensor:
        """The ODE state at t = 0: the noise, then the condition channels."""
        return torch.cat([self.noise, self.conditions.latent_cond], dim=1)


def rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def relative_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    """RMS distance from the reference, relative to the reference's RMS."""
    return rms(x - reference) / rms(reference)


@dataclass
class Row:
    """One solver setting over every clip: the worst case of each figure."""

    name: str
    tol: float | None
    evaluations: list[int] = field(default_factory=list)
    fractions: list[float] = field(default_factory=list)
    rel_errors: list[float] = field(default_factory=list)
    mel_db: list[float] = field(default_factory=list)  # largest |difference| of any decoded log-mel bin, dB
    seconds: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width-heads", type=int, default=8, help="attention heads of 16 (width = 16 x heads)")
    parser.add_argument("--tokens", type=int, default=None, help="latent frames (100; 250 with a checkpoint)")
    parser.add_argument("--head-dim", type=int, default=None)
    parser.add_argument("--video", nargs="+", default=None,
                        help="with --checkpoint: condition on these videos' features (encoded by the checkpoint's "
                             "components) instead of noise; figures are the worst over the videos")
    parser.add_argument("--transcript", default=None, help="with --video: speech over the whole clip")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", default="2,4,8,16,32,64")
    parser.add_argument("--methods", default="euler,midpoint,heun,rk4,ab2")
    parser.add_argument("--schedules", default=",".join(SCHEDULES), help="time grids of the fixed-step solvers")
    parser.add_argument("--contributions", type=int, default=None, metavar="PARTS",
                        help="instead of the table: how much one Heun step over each of PARTS equal parts of the "
                             "time moves the result (the error density the balanced schedule equidistributes)")
    parser.add_argument("--stiffness", default=None, metavar="TIMES",
                        help="instead of the table: the field's fastest rate (largest |eigenvalue| of its Jacobian) "
                             "at these flow times on the exact trajectory, and how the flow map carries a small "
                             "change of the noise")
    parser.add_argument("--tols", default="1e-2,1e-3,1e-4,1e-5,1e-6")
    parser.add_argument("--ref-tol", type=float, default=1e-7)
    parser.add_argument("--mel-tolerance-db", type=float, default=MEL_TOLERANCE_DB)
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
    components = None
    if args.checkpoint:
        reference_model = load_network(args.checkpoint, device="cpu", dtype=torch.float64, head_dim=args.head_dim)
        source = args.checkpoint
        try:
            components = load_components(args.checkpoint, device="cpu")
        except Exception as error:  # noqa: BLE001 - without a decoder the table simply has no mel column
            print(f"(no decoder for the mel column: {error})")
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
    lat = cfg.latent_channels

    gen = torch.Generator().manual_seed(args.seed + 1)
    clips = []
    for video in args.video or [None]:
        if video is None:
            # as many CLIP frames and Synchformer tokens as ``length`` latent frames span
            clip_frames = int(length * SEQUENCE.clip_fps // SEQUENCE.latent_rate)
            synch_tokens = length * SEQUENCE.synch_tokens // SEQUENCE.latent_length
            clip = torch.randn(1, max(1, clip_frames), cfg.clip_dim, generator=gen, dtype=torch.float64)
            synch = torch.randn(1, max(1, synch_tokens), cfg.synch_dim, generator=gen, dtype=torch.float64)
            phones = torch.randint(1, cfg.phone_vocab, (1, length), generator=gen)
        else:  # real conditions: what the default sampler will actually integrate
            visual = components.encode_video(video)
            clip, synch = visual.clip.double(), visual.synch.double()
            phones = phoneme_frame_ids(args.transcript, None, None, visual.duration)[None]
        # one set of conditions (projected in float64) per clip for every run, so only the sampling differs
        conditions = reference_model.prepare_conditions(clip=clip, synch=synch, phone_ids=phones,
                                                        latent_length=length)
        noise = torch.randn(1, cfg.latent_channels, length, generator=gen, dtype=torch.float64)
        clips.append(Clip(Path(video).name if video else "random conditions", conditions, noise))

    def run(clip: Clip, solver, network=model):
        x0 = clip.start()
        x0 = x0 if network is reference_model else x0.to(state_dtype)
        velocity = CachedGuidedVelocity(network, clip.conditions, args.guidance)
        start = time.perf_counter()
        sol = solver.solve(velocity, x0, 0.0, 1.0)
        return sol, time.perf_counter() - start

    def log_mel(latent: torch.Tensor) -> torch.Tensor:
        latent = unpack_latent(latent.float(), components.vae.config.latent_channels)
        return components.vae.decode(latent)[:, 0].double()

    params = sum(p.numel() for p in model.parameters())
    print(f"model: {source}, {params / 1e6:.2f} M parameters, {length} latent frames, guidance {args.guidance}, "
          f"{args.dtype}, threads {torch.get_num_threads()}")
    for clip in clips:
        ref, ref_time = run(clip, Dopri5Solver(atol=args.ref_tol, rtol=args.ref_tol), reference_model)
        clip.reference = ref.x[:, :lat].double()
        clip.reference_mel = log_mel(clip.reference) if components is not None else None
        print(f"reference for {clip.name}: dopri5 atol=rtol={args.ref_tol:g}: {ref.evaluations} evaluations, "
              f"{ref.steps} steps ({ref.rejected_steps} rejected), {ref_time:.1f} s; RMS of the latent "
              f"{rms(clip.reference):.4f}")

    def measure(row: Row, clip: Clip, sol, seconds: float) -> None:
        x = sol.x[:, :lat].double()
        row.evaluations.append(sol.evaluations)
        row.rel_errors.append(relative_error(x, clip.reference))
        if clip.reference_mel is not None:
            row.mel_db.append(mel_difference_db(log_mel(x), clip.reference_mel)[0])
        row.seconds += seconds

    if args.contributions:
        measure_contributions(args.contributions, clips, reference_model, args.guidance, args.ref_tol,
                              log_mel if components is not None else None)
        return
    if args.stiffness:
        measure_stiffness([float(v) for v in args.stiffness.split(",")], clips, reference_model, args.guidance,
                          args.ref_tol)
        return

    settings = [(f"dopri5 tol={tol:g}", tol, Dopri5Solver(atol=tol, rtol=tol))
                for tol in [float(v) for v in args.tols.split(",") if v]]
    settings += [(f"{method} {steps} {schedule}", None, FixedStepSolver(method, steps, schedule))
                 for method in args.methods.split(",") if method
                 for schedule in args.schedules.split(",") if schedule
                 for steps in [int(v) for v in args.steps.split(",") if v]]
    rows = [Row(name, tol) for name, tol, _ in settings]
    official = next((r for r in rows if r.tol is not None and math.isclose(r.tol, OFFICIAL_TOL)), None)
    for clip in clips:
        for row, (_, _, solver) in zip(rows, settings):
            measure(row, clip, *run(clip, solver))
        for row in rows:  # the official solver's evaluations differ from clip to clip: compare on the same clip
            row.fractions.append(row.evaluations[-1] / official.evaluations[-1] if official else math.nan)

    worst = "worst over the clips" if len(clips) > 1 else "one clip"
    print()
    print(f"{'solver':<26} {'evals':>6} {'evals/official':>15} {'rel err':>10} {'mel max dB':>11} {'time (s)':>9}"
          f"   ({worst})")
    for row in sorted(rows, key=lambda r: (max(r.evaluations), r.name)):
        mel = f"{max(row.mel_db):.3f}" if row.mel_db else "-"
        print(f"{row.name:<26} {max(row.evaluations):>6} {max(row.fractions):>15.3f} {max(row.rel_errors):>10.3e} "
              f"{mel:>11} {row.seconds:>9.2f}")

    if len(clips) > 1:  # which clips are hard: the worst case above hides it
        by_mel = all(row.mel_db for row in rows)
        print(f"\nper clip ({'mel max dB' if by_mel else 'relative error'}): "
              + ", ".join(f"{i + 1} {clip.name}" for i, clip in enumerate(clips)))
        for row in sorted(rows, key=lambda r: (max(r.evaluations), r.name)):
            values = row.mel_db if by_mel else row.rel_errors
            print(f"{row.name:<26} " + " ".join(f"{v:>8.3g}" for v in values))

    if official is None:
        return
    print()
    print(f"official dopri5 (atol=rtol={OFFICIAL_TOL:g}): {max(official.evaluations)} evaluations at most, "
          f"relative error {max(official.rel_errors):.3e}")
    fixed = [r for r in rows if r.tol is None]
    criteria = [("the official dopri5's error", lambda r: max(r.rel_errors) <= max(official.rel_errors))]
    if official.mel_db:
        criteria.append((f"{args.mel_tolerance_db:g} dB of the reference in every decoded mel bin",
                         lambda r: max(r.mel_db) <= args.mel_tolerance_db))
    for label, within in criteria:
        passing = [r for r in fixed if within(r)]
        if not passing:
            print(f"no fixed-step setting measured is within {label}")
            continue
        best = min(passing, key=lambda r: (max(r.evaluations), max(r.rel_errors)))
        print(f"cheapest fixed-step setting within {label}: {best.name} ({max(best.evaluations)} evaluations, "
              f"at most {max(best.fractions):.3f} of the official's; relative error {max(best.rel_errors):.3e}"
              + (f", mel {max(best.mel_db):.3f} dB)" if best.mel_db else ")"))


def measure_contributions(parts: int, clips: list[Clip], network, guidance: float, tol: float, log_mel) -> None:
    """For each of ``parts`` equal parts of [0, 1]: start on the exact trajectory, take one Heun step over the part,
    carry the result exactly (dopri5 at ``tol``, as the reference) to t = 1 and compare with the reference.  The
    error of a solver is about the sum of these, scaled by (its step / the part)^3, which is what the balanced
    schedule distributes evenly; the last lines print the table for ``schedules.ERROR_CONTRIBUTION``."""
    one_heun_step = FixedStepSolver("heun", 1)
    exact = Dopri5Solver(atol=tol, rtol=tol)
    edges = torch.linspace(0.0, 1.0, parts + 1, dtype=torch.float64).tolist()
    lat = network.cfg.latent_channels
    mel_db = torch.zeros(len(clips), parts)
    rel = torch.zeros(len(clips), parts)
    for c, clip in enumerate(clips):
        velocity = CachedGuidedVelocity(network, clip.conditions, guidance)
        x = clip.start()
        end = clip.reference
        for i, (t0, t1) in enumerate(zip(edges[:-1], edges[1:])):
            stepped = one_heun_step.solve(velocity, x, t0, t1).x
            x = exact.solve(velocity, x, t0, t1).x  # the exact trajectory, part by part
            moved = (exact.solve(velocity, stepped, t1, 1.0).x if t1 < 1.0 else stepped)[:, :lat]
            rel[c, i] = relative_error(moved, end)
            if log_mel is not None:
                mel_db[c, i] = mel_difference_db(log_mel(moved), clip.reference_mel)[0]
            print(f"{clip.name} part {i + 1}/{parts} [{t0:.3f}, {t1:.3f}]: relative {rel[c, i]:.2e}"
                  + (f", mel {mel_db[c, i]:.2f} dB" if log_mel is not None else ""), flush=True)
    contribution = mel_db.mean(0) if log_mel is not None else rel.mean(0)
    unit = "dB" if log_mel is not None else "relative"
    print(f"\nmean contribution per part ({unit}, over {len(clips)} clips):")
    print("ERROR_CONTRIBUTION = (" + ", ".join(f"{v:.3g}" for v in contribution.tolist()) + ")")
    grid = grid_from_density(balanced_density(contribution.tolist()), parts)
    print(f"balanced grid of {parts} steps: " + " ".join(f"{v:.3f}" for v in grid.tolist()))


def measure_stiffness(times: list[float], clips: list[Clip], network, guidance: float, tol: float,
                      iterations: int = 25) -> None:
    """Per clip: the field's fastest rate at each of ``times`` (power iteration on finite differences of the
    guided field, latent channels) and the flow map's response to a small change of the noise (module docstring)."""
    exact = Dopri5Solver(atol=tol, rtol=tol)
    lat = network.cfg.latent_channels
    generator = torch.Generator().manual_seed(0)
    for clip in clips:
        velocity = CachedGuidedVelocity(network, clip.conditions, guidance)
        x = start = clip.start()
        rates, previous = [], 0.0
        for t in times:
            x = exact.solve(velocity, x, previous, t).x if t > previous else x
            previous = t
            tt = torch.tensor(t, dtype=x.dtype)
            v0 = velocity(tt, x)
            w = torch.zeros_like(x)
            w[:, :lat] = torch.randn(x[:, :lat].shape, generator=generator, dtype=x.dtype)
            scale = 1e-6 * float(x[:, :lat].norm())
            for _ in range(iterations):
                w = w / w.norm()
                jw = (velocity(tt, x + scale * w) - v0) / scale
                rate, w = float(jw.norm()), jw
            rates.append(f"t={t:g}: {rate:.1f}")
        change = 1e-4
        nudge = torch.randn(clip.noise.shape, generator=generator, dtype=clip.noise.dtype)
        nudge *= change * rms(clip.noise) / rms(nudge)
        moved = start.clone()
        moved[:, :lat] += nudge
        result = exact.solve(velocity, moved, 0.0, 1.0).x[:, :lat]
        carried = relative_error(result, clip.reference)
        print(f"{clip.name}: fastest rate (1/time) {', '.join(rates)}; a {change:g} relative change of the noise "
              f"moves the result by {carried:.2e} relative (x{carried / change:.2f})", flush=True)


if __name__ == "__main__":
    main()
