"""``python -m vssflow_core distill``: make a few-step student of any VSSFlow checkpoint.

    # 1. teacher pairs from the training feature cache of a config (resumable; torchrun shards them)
    python -m vssflow_core distill pairs --config run.toml --teacher demo --out runs/distill/pairs
    torchrun --nproc_per_node 4 -m vssflow_core distill pairs --config run.toml --teacher ckpt.safetensors --out P
    # 2. the student, by reflow on the pairs, guidance folded in: an ordinary checkpoint recommending its sampler
    python -m vssflow_core distill train --teacher demo --pairs runs/distill/pairs --out runs/distill/student
"""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    from .student import LR_DECAYS, TIME_DISTRIBUTIONS

    parser = argparse.ArgumentParser(prog="python -m vssflow_core distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)

    pairs = steps.add_parser("pairs", help="write the teacher's (noise, conditions, endpoint) pairs")
    pairs.add_argument("--config", required=True, help="the training configuration whose manifests and feature cache "
                       "give the conditions (build the cache first: python -m vssflow_core train --config C "
                       "--cache-only)")
    pairs.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one configuration value (repeatable), e.g. data.manifests=[\"train.jsonl\"]")
    pairs.add_argument("--teacher", required=True, help="the teacher checkpoint (a file, a folder, or 'demo')")
    pairs.add_argument("--out", required=True, help="folder of the pair shards (a rerun resumes it)")
    pairs.add_argument("--seed", type=int, default=0, help="noise seed (same seed, same pairs)")
    pairs.add_argument("--shard-size", type=int, default=16, help="items per shard file (default 16)")
    pairs.add_argument("--limit", type=int, default=None, help="only the first N items of the manifests")
    pairs.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK when there is one), cpu, cuda...")
    pairs.add_argument("--no-progress", action="store_true")

    train = steps.add_parser("train", help="train the student on the pairs and write it")
    train.add_argument("--teacher", required=True, help="the teacher checkpoint the pairs were made with")
    train.add_argument("--pairs", required=True, nargs="+", help="the folder written by the pairs step (or several, "
                       "made with the same teacher and seed from different manifest rows)")
    train.add_argument("--out", required=True, help="the student: a folder when the teacher is one, else a "
                       ".safetensors file")
    train.add_argument("--steps", type=int, default=2000, help="optimizer steps (default 2000)")
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=1e-5, help="learning rate (default 1e-5)")
    train.add_argument("--fold-steps", type=int, default=200, help="steps over which the guidance moves from the "
                       "teacher's term into the student (default 200)")
    train.add_argument("--solver", default="euler", help="the student's recommended solver (default euler)")
    train.add_argument("--sample-steps", type=int, default=4, help="its recommended step count (default 4)")
    train.add_argument("--schedule", default="uniform", help="its recommended time grid (default uniform)")
    train.add_argument("--time-distribution", default="uniform", choices=TIME_DISTRIBUTIONS,
                       help="where on the path training draws the flow time: uniform (default) or ends (more "
                       "often near the noise and the data, where the teacher's field is fastest)")
    train.add_argument("--lr-decay", default="constant", choices=LR_DECAYS,
                       help="constant (default) or cosine: down to a tenth of --lr by the last step")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    train.add_argument("--no-progress", action="store_true")
    return parser


def _pairs(args) -> int:
    from ..loading import resolve_checkpoint
    from ..train.config import load_config
    from ..train.dataset import CachedFeatureDataset
    from ..train.manifest import read_manifests
    from ..train.trainer import barrier, setup_distributed, teardown_distributed
    from ..weights.checkpoint import load_vssflow
    from .pairs import PairsPlan, teacher_identity, write_pairs

    cfg = load_config(args.config, args.overrides)
    info = setup_distributed(args.device)
    try:
        path = resolve_checkpoint(args.teacher)
        teacher = load_vssflow(path, device=info.device).eval().requires_grad_(False)
        rows = read_manifests(cfg.manifest_paths)[: args.limit]
        dataset = CachedFeatureDataset(rows, cfg.cache_dir, teacher.cfg, cfg.sequence,
                                       synch_per_frame=cfg.uses_demo_frontend)
        plan = PairsPlan(seed=args.seed, shard_size=args.shard_size, teacher=teacher_identity(path))
        report = write_pairs(teacher, dataset, args.out, plan, rank=info.rank, world_size=info.world_size,
                             progress=not args.no_progress and info.is_main)
        barrier(info)
    finally:
        teardown_distributed()
    print(f"rank {info.rank}: {report.written} shards written, {report.skipped} already there "
          f"({report.evaluations} teacher evaluations) in {args.out}")
    return 0


def _train(args) -> int:
    from ..devices import default_device
    from ..loading import resolve_checkpoint
    from ..weights.checkpoint import load_vssflow
    from .pairs import PairsDataset, PairsError, teacher_identity
    from .student import StudentPlan, train_student

    plan = StudentPlan(max_steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
                       fold_steps=args.fold_steps, solver=args.solver, sample_steps=args.sample_steps,
                       schedule=args.schedule, time_distribution=args.time_distribution,
                       lr_decay=args.lr_decay, seed=args.seed)
    device = default_device() if args.device == "auto" else args.device
    path = resolve_checkpoint(args.teacher)
    teacher = load_vssflow(path, device=device).eval().requires_grad_(False)
    pairs = PairsDataset(*args.pairs)
    if pairs.meta.get("teacher") != teacher_identity(path):
        raise PairsError(f"the pairs in {' '.join(args.pairs)} were made by another teacher than {path} (or it "
                         "changed since); train with the teacher they were made with, or make the pairs again")
    result = train_student(teacher, pairs, args.out, plan, teacher_path=path, overwrite=args.overwrite,
                           progress=not args.no_progress)
    print(f"student written to {result.path} (loss {result.losses[0]:.4g} -> {result.losses[-1]:.4g}); it samples "
          f"with {plan.recommended().describe()} at guidance scale 1 by default")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ..train.config import ConfigError
    from ..train.features import CacheError
    from .pairs import PairsError

    try:
        return _pairs(args) if args.step == "pairs" else _train(args)
    except (ConfigError, CacheError, PairsError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
