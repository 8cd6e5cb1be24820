"""Convert an official VSSFlow checkpoint into safetensors files, one per component, plus a small JSON config.

    python -m vssflow_core.convert path/to/last.ckpt -o models/vssflow/official

writes ``vssflow.safetensors`` (DiT and projections, official key names, config in the metadata), and where the
checkpoint holds them ``clip_visual.safetensors`` (OpenAI ``visual.*`` layout), ``vae.safetensors`` (diffusers
AutoencoderKL layout) and ``vocoder.safetensors`` (transformers SpeechT5HifiGan layout), and ``config.json``.
The pickled input is read with ``weights_only`` loading only; the outputs never execute code when loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from .model.vssflow import VSSFlow
from .weights.checkpoint import (CONFIG_METADATA_KEY, VSSFLOW_FILE, CheckpointError, check_state_dict, read_state_dict,
                                 save_safetensors_atomic, split_components, to_model_keys, to_official_keys,
                                 vssflow_config_of)

COMPONENT_FILES = {"vssflow": VSSFLOW_FILE, "clip": "clip_visual.safetensors", "vae": "vae.safetensors",
                   "vocoder": "vocoder.safetensors"}
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def convert_checkpoint(source: str | os.PathLike, out_dir: str | os.PathLike, head_dim: int | None = None,
                       dtype: torch.dtype | None = None, overwrite: bool = False) -> dict:
    """Convert ``source`` into ``out_dir``; returns the written config.  Nothing is written if anything is wrong."""
    source, out_dir = Path(source), Path(out_dir)
    parts = split_components(read_state_dict(source)[0])
    if "vssflow" not in parts:
        raise CheckpointError(f"{source} holds no VSSFlow network weights (no 'vaflow.*' keys)")
    model_state = to_model_keys(parts["vssflow"])
    cfg = vssflow_config_of(model_state, head_dim=head_dim)
    with torch.device("meta"):
        expected = to_official_keys(VSSFlow(cfg).state_dict())
    check_state_dict(expected, parts["vssflow"], f"VSSFlow ({source})")

    targets = {name: out_dir / COMPONENT_FILES[name] for name in parts}
    clashes = [str(p) for p in [*targets.values(), out_dir / CONFIG_FILE] if p.exists()]
    if clashes and not overwrite:
        raise FileExistsError(f"refusing to overwrite {clashes}; pass --overwrite or choose another output folder")

    def cast(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if dtype is None:
            return tensors
        return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tensors.items()}

    for name, tensors in parts.items():
        metadata = {CONFIG_METADATA_KEY: cfg.to_json()} if name == "vssflow" else {}
        save_safetensors_atomic(cast(tensors), targets[name], metadata=metadata, overwrite=overwrite)
    config = {
        "format_version": FORMAT_VERSION,
        "source": source.name,
        "vssflow": json.loads(cfg.to_json()),
        "files": {name: path.name for name, path in targets.items()},
        "dtype": str(dtype).removeprefix("torch.") if dtype is not None else "as stored",
    }
    _write_text_atomic(out_dir / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return config


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vssflow_core.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="official Lightning .ckpt (or a safetensors file with the same keys)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--head-dim", type=int, default=None,
                        help="attention head size, if not the official 64 (the only size shapes cannot reveal)")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default=None, help="store weights in this dtype")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    try:
        config = convert_checkpoint(args.checkpoint, args.output, head_dim=args.head_dim,
                                    dtype=_DTYPES.get(args.dtype), overwrite=args.overwrite)
    except (CheckpointError, FileExistsError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cfg = config["vssflow"]
    print(f"wrote {', '.join(config['files'].values())} and {CONFIG_FILE} to {args.output} "
          f"({cfg['num_layers']} layers, width {cfg['num_heads'] * cfg['head_dim']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
