"""Training checkpoints: a folder per save, written whole or not at all.

``<out_dir>/checkpoints/step_00012000/``
    ``vssflow.safetensors``        the network in the official key layout, its configuration in the metadata: any
                                   loader of the library (``load_vssflow``, the pipeline, the nodes) reads it as is
    ``training_state.safetensors`` AdamW's moments (one tensor per parameter and moment, named by the parameter),
                                   the RNG states, and in the metadata: the step, the scheduler, the optimizer's
                                   hyper-parameters, the data-loader position and the configuration
``<out_dir>/checkpoints/latest``   the name of the newest complete checkpoint folder

The folder is written under a temporary name and renamed into place, then ``latest`` is replaced atomically, so a
run killed at any moment leaves the previous checkpoint intact and findable.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..weights.checkpoint import VSSFLOW_FILE, read_state_dict, save_safetensors_atomic, save_vssflow, to_model_keys

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
STATE_FILE = "training_state.safetensors"
STATE_METADATA_KEY = "vssflow_training"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class TrainingCheckpointError(RuntimeError):
    """A training checkpoint that cannot be resumed from."""


@dataclass
class TrainingState:
    """What a checkpoint says about where training stands."""

    step: int  # optimizer steps done
    epoch: int  # data-loader position: the next micro-batch is batch ``batch_in_epoch`` of epoch ``epoch``
    batch_in_epoch: int
    samples_seen: int
    global_batch: int  # samples per optimizer step (batch x accumulation x processes) when it was written
    micro_batch: int  # samples per global micro-batch (batch x processes)
    meta: dict[str, Any]


def checkpoint_dir(out_dir: str | os.PathLike, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS_DIR / f"step_{step:08d}"


def _is_complete(folder: Path) -> bool:
    return (folder / VSSFLOW_FILE).is_file() and (folder / STATE_FILE).is_file()


def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and _is_complete(p)]
    return [p for _, p in sorted(found)]


def find_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run (the one ``latest`` names, else the highest step), or None."""
    root = Path(out_dir) / CHECKPOINTS_DIR
    latest = root / LATEST_FILE
    if latest.is_file():
        folder = root / latest.read_text(encoding="utf-8").strip()
        if _is_complete(folder):
            return folder
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------- RNG states


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)], "python": [version, list(internal), gauss]}
    return tensors, meta


def set_rng_state(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"].to(torch.uint8))
    cuda = sorted((int(k.rsplit(".", 1)[1]), v) for k, v in tensors.items() if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        states = [v.to(torch.uint8) for _, v in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    if "rng.numpy" in tensors and "numpy" in meta:
        kind, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    if "python" in meta:
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------------------------------------------- optimizer


def _param_names(model: torch.nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def optimizer_tensors(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> tuple[dict[str, torch.Tensor],
                                                                                        dict[str, Any]]:
    """The optimizer's per-parameter state as named tensors, and its groups (parameters by name) for the metadata."""
    names = _param_names(model)
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    groups = []
    for group in optimizer.param_groups:
        hyper = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
        groups.append({**hyper, "params": [names[id(p)] for p in group["params"]]})
        for p in group["params"]:
            name = names[id(p)]
            for key, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{name}.{key}"] = value
                else:
                    scalars.setdefault(name, {})[key] = value
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                           tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    names = _param_names(model)
    saved_groups = meta["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups):
        raise TrainingCheckpointError("the checkpoint's optimizer has a different number of parameter groups")
    state: dict[int, dict[str, Any]] = {}
    groups = []
    index = 0
    for group, saved in zip(optimizer.param_groups, saved_groups):
        current = [names[id(p)] for p in group["params"]]
        if current != saved["params"]:
            missing = sorted(set(saved["params"]) ^ set(current))[:5]
            raise TrainingCheckpointError(f"the checkpoint's optimizer holds other parameters than the model "
                                          f"(differences: {missing}); was it written for another model?")
        ids = []
        for name in current:
            entry = {k.rsplit(".", 1)[1]: v for k, v in tensors.items()
                     if k.startswith(f"optimizer.{name}.") and k.count(".") == name.count(".") + 2}
            entry.update(meta.get("scalars", {}).get(name, {}))
            if entry:
                state[index] = entry
            ids.append(index)
            index += 1
        hyper = {k: (tuple(v) if k == "betas" else v) for k, v in saved.items() if k != "params"}
        groups.append({**hyper, "params": ids})
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ---------------------------------------------------------------------------------------------------- save / load


def save_training_checkpoint(
    out_dir: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainingState,
    keep: int | None = None,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write the checkpoint of ``state.step`` (see the module docstring); returns its folder.  ``extra_files``: more
    text files (name -> content) written into the folder before it appears."""
    final = checkpoint_dir(out_dir, state.step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        save_vssflow(model, tmp / VSSFLOW_FILE, overwrite=True)
        opt_tensors, opt_meta = optimizer_tensors(optimizer, model)
        rng_tensors, rng_meta = rng_state()
        scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
        meta = {
            **state.meta,
            "step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch,
            "samples_seen": state.samples_seen, "global_batch": state.global_batch, "micro_batch": state.micro_batch,
            "optimizer": opt_meta, "scheduler": scheduler_state, "rng": rng_meta,
        }
        save_safetensors_atomic({**opt_tensors, **rng_tensors}, tmp / STATE_FILE,
                                metadata={STATE_METADATA_KEY: json.dumps(meta)}, overwrite=True)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _write_text_atomic(root / LATEST_FILE, final.name + "\n")
    if keep is not None:
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_training_state(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    folder = Path(folder)
    if not _is_complete(folder):
        raise TrainingCheckpointError(f"{folder} is not a complete training checkpoint (it needs {VSSFLOW_FILE} and "
                                      f"{STATE_FILE})")
    tensors, metadata = read_state_dict(folder / STATE_FILE)
    if STATE_METADATA_KEY not in metadata:
        raise TrainingCheckpointError(f"{folder / STATE_FILE} has no training metadata")
    return tensors, json.loads(metadata[STATE_METADATA_KEY])


def load_training_checkpoint(
    folder: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    restore_rng: bool = True,
) -> TrainingState:
    """Restore the network, the optimizer, the scheduler (and the RNG states) from a checkpoint folder."""
    from ..weights.checkpoint import check_state_dict, split_components

    folder = Path(folder)
    tensors, meta = read_training_state(folder)
    weights, _ = read_state_dict(folder / VSSFLOW_FILE)
    model_state = to_model_keys(split_components(weights).get("vssflow", {}))
    check_state_dict(model.state_dict(), model_state, f"VSSFlow ({folder})")
    # copied into the existing parameters (not assigned), so the optimizer keeps pointing at them
    model.load_state_dict(model_state, strict=True)
    load_optimizer_tensors(optimizer, model, {k: v for k, v in tensors.items() if k.startswith("optimizer.")},
                           meta["optimizer"])
    scheduler.load_state_dict({**meta["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    if restore_rng:
        set_rng_state({k: v for k, v in tensors.items() if k.startswith("rng.")}, meta.get("rng", {}))
    return TrainingState(step=int(meta["step"]), epoch=int(meta["epoch"]), batch_in_epoch=int(meta["batch_in_epoch"]),
                         samples_seen=int(meta["samples_seen"]), global_batch=int(meta["global_batch"]),
                         micro_batch=int(meta["micro_batch"]), meta=meta)
