"""``python -m vssflow_core download``: fetch the public component weights into a models folder (or the hub cache)
and check them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .errors import MissingWeightsError, UnsupportedComponentError, WeightsVerificationError
from .hub import resolve
from .registry import DOWNLOADABLE_INFERENCE_COMPONENTS, REGISTRY, get_component
from .sources import MODELS_DIR_ENV
from .verify import verify_file

def _registry_table() -> str:
    rows = []
    for comp in REGISTRY.values():
        if not comp.supported:
            source = "not supported"
        elif comp.repo_id is None:
            source = "no public weights"
        else:
            source = comp.repo_id + (" (gated)" if comp.gated else "")
        files = ", ".join(f.repo_path for f in comp.files)
        rows.append(f"{comp.name:<13} {comp.used_for:<9} {source:<38} {files}\n{'':<24}{comp.approx_size}; {comp.license}")
    return "\n".join(rows)


def download_main(argv: Sequence[str] | None = None) -> int:
    """``python -m vssflow_core download``: fetch components into a models folder (or the hub cache).

    Returns a process exit status: 0 when every component is present and checked, 1 when any is missing or bad,
    2 for a usage error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m vssflow_core download",
        description="Download and check the pretrained weights VSSFlow needs.",
        epilog="'all' means: " + " ".join(DOWNLOADABLE_INFERENCE_COMPONENTS)
        + ". stable_audio (training only, gated) must be named.",
    )
    parser.add_argument("components", nargs="*", metavar="COMPONENT", help=f"one of {', '.join(REGISTRY)}, or all")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help=f"folder to download into, as <dir>/<component>/... (default: ${MODELS_DIR_ENV}, else the hub cache)",
    )
    parser.add_argument("--list", action="store_true", help="list every component and its source, then exit")
    parser.add_argument(
        "--verify-hash", action="store_true", help="also compare SHA-256 where the published hash is known (slow)"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors; the caller wants a status
        return int(exc.code or 0)
    if args.list:
        print(_registry_table())
        return 0
    if not args.components:
        parser.print_usage(sys.stderr)
        print("error: name at least one component, or all (see --list)", file=sys.stderr)
        return 2

    names: list[str] = []
    for name in args.components:
        if name.lower() == "all":
            names.extend(DOWNLOADABLE_INFERENCE_COMPONENTS)
            continue
        try:
            names.append(get_component(name).name)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    failures = 0
    for name in dict.fromkeys(names):  # de-duplicate, keep order
        try:
            result = resolve(name, models_dir=args.models_dir, download=True)
            if args.verify_hash:
                for file in get_component(name).files:
                    if file.filename in result.files:
                        verify_file(result.files[file.filename], name, file, check_sha256=True)
        except (MissingWeightsError, WeightsVerificationError, UnsupportedComponentError) as exc:
            failures += 1
            print(f"{name}: FAILED\n{exc}\n", file=sys.stderr)
            continue
        where = {"download": "downloaded", "hf_cache": "in the hub cache", "models_dir": "in the models folder"}
        print(f"{name}: ok ({where.get(result.origin, result.origin)}) {result.weights}")
    return 1 if failures else 0

