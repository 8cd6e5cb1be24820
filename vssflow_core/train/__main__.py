"""``python -m vssflow_core.train --config run.toml``: build the feature cache if needed, then train.

    python -m vssflow_core.train --config run.json                       # one process (CPU or one GPU)
    torchrun --nproc_per_node 4 -m vssflow_core.train --config run.json  # DDP over 4 GPUs (gloo on CPUs)
    python -m vssflow_core.train --config run.json --cache-only          # only compute the feature cache
    python -m vssflow_core.train --config run.json --set train.max_steps=1000 --set data.batch_size=8

A run resumes from the newest checkpoint in ``train.out_dir`` by default (``train.resume = "auto"``).
"""

from __future__ import annotations

import argparse
import logging
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vssflow_core.train", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--config", required=True, help="training configuration (.json or .toml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one configuration value (repeatable); the value is read as JSON if it parses")
    parser.add_argument("--cache-only", action="store_true", help="build the feature cache and stop")
    parser.add_argument("--skip-cache", action="store_true",
                        help="do not look for missing cache items (train on what the cache holds; missing items fail)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from ..weights.hub import MissingWeightsError
    from .checkpoint import TrainingCheckpointError
    from .config import ConfigError, load_config
    from .features import CacheError, build_cache, extractor_from_config, extractors_fingerprint
    from .manifest import ManifestError, read_manifests
    from .trainer import Trainer, barrier, build_dataset, setup_distributed, teardown_distributed

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
        if args.no_progress:
            cfg.train.progress = False
        rows = read_manifests(cfg.manifest_paths)
    except (ConfigError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    info = setup_distributed(cfg.train.device)
    try:
        if not args.skip_cache:
            try:
                fingerprint = extractors_fingerprint(cfg)
                factory = lambda: extractor_from_config(cfg)  # noqa: E731 - loaded only if an item needs it
            except MissingWeightsError as exc:
                # without the extractors a complete cache is still usable; an incomplete one fails with how to fetch
                fingerprint, missing = None, exc

                def factory():
                    raise missing

            report = build_cache(rows, cfg.cache_dir, factory, sequence=cfg.sequence,
                                 keep_waveform=cfg.data.keeps_waveform, extractors_fingerprint=fingerprint,
                                 rank=info.rank, world_size=info.world_size,
                                 progress=cfg.train.progress and info.is_main)
            if info.is_main:
                print(f"feature cache {cfg.cache_dir}: {report.computed} computed, {report.skipped} already there "
                      f"(this process's share of {len(rows)} items)")
            barrier(info)
        if args.cache_only:
            return 0
        trainer = Trainer(cfg, dataset=build_dataset(cfg, rows), dist=info)
        result = trainer.fit()
        if info.is_main:
            where = f"; checkpoint {result.checkpoint}" if result.checkpoint else ""
            print(f"trained to step {result.last_step}{where}")
        return 0
    except (MissingWeightsError, CacheError, TrainingCheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"error (process {info.rank}): {exc}", file=sys.stderr)
        return 1
    finally:
        teardown_distributed()


if __name__ == "__main__":
    sys.exit(main())
