"""Reading and writing VSSFlow checkpoints: the official Lightning ``.ckpt`` and our safetensors files.

The official checkpoint is one Lightning ``state_dict`` holding every module of the training worker under a prefix:
``vaflow.*`` (the DiT) and the projections belong to the VSSFlow network; ``image_encoder.*``, ``vae.*`` and
``vocoder.*`` are the frozen CLIP tower, VAE and vocoder, routed to their own components.

Pickled files are only ever opened with ``torch.load(weights_only=True)``: nothing in them can run code.  Lightning
stores training hyper-parameters next to the weights, sometimes as config objects (omegaconf, argparse); those few
known data classes are replaced by inert placeholders so the tensors can be read, and anything else (``os.system``
and friends) is refused with a clear error.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Mapping

import torch

from ..config import VSSFlowConfig

# official state-dict prefix -> component
COMPONENT_PREFIXES = {
    "vaflow.": "vssflow",
    "lip_proj.": "vssflow",
    "synch_proj.": "vssflow",
    "ref_proj.": "vssflow",
    "cond_proj.": "vssflow",
    "phone_embedding.": "vssflow",
    "image_encoder.": "clip",
    "vae.": "vae",
    "vocoder.": "vocoder",
}
# Inside the VSSFlow module the DiT is called ``dit``; the checkpoint calls it ``vaflow``.
_OFFICIAL_DIT, _MODEL_DIT = "vaflow.", "dit."
# Only the VSSFlow network's keys stay prefixed in its own file; the frozen components are stored in their native
# layouts (OpenAI CLIP ``visual.*``, diffusers VAE, transformers vocoder) so their own loaders read them unchanged.
_STRIP_PREFIX = {"clip": "image_encoder.", "vae": "vae.", "vocoder": "vocoder."}

CONFIG_METADATA_KEY = "vssflow_config"
VSSFLOW_FILE = "vssflow.safetensors"  # the network's file inside a converted folder
_PLACEHOLDER_MODULES = ("omegaconf.", "argparse.", "pathlib.", "collections.", "pytorch_lightning.", "lightning.",
                        "lightning_fabric.", "typing.", "enum.")
_MAX_PLACEHOLDERS = 64


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with a message that says why and what to do."""


# --------------------------------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------------------------------


def _placeholder_class(qualified_name: str) -> type:
    """An inert stand-in for a hyper-parameter config class: it accepts any construction and keeps nothing."""

    def accept(self, *args, **kwargs):
        pass

    return type(qualified_name.rsplit(".", 1)[-1], (), {"__init__": accept, "__setstate__": accept,
                                                       "__setitem__": accept, "append": accept, "extend": accept})


def _load_pickled(path: Path) -> object:
    placeholders: list[tuple[type, str]] = []
    while True:
        try:
            with torch.serialization.safe_globals(placeholders):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            match = re.search(r"GLOBAL ([\w.]+)", str(exc))
            name = match.group(1) if match else None
            if name is None or not name.startswith(_PLACEHOLDER_MODULES) or len(placeholders) >= _MAX_PLACEHOLDERS:
                what = f"'{name}'" if name else "a Python object"
                raise CheckpointError(
                    f"refusing to load {path}: it references {what}, which is not plain weights and could run code "
                    "when unpickled. Only tensor checkpoints are accepted; export the weights with "
                    "safetensors (or torch.save of a plain state dict) and load that file instead."
                ) from None
            placeholders.append((_placeholder_class(name), name))
        except (RuntimeError, EOFError, OSError) as exc:
            raise CheckpointError(f"cannot read {path}: the file is damaged or truncated ({exc}). "
                                  "Download or copy it again.") from None


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a ``.safetensors`` file or a pickled checkpoint (Lightning ``state_dict``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
                return {key: f.get_tensor(key) for key in f.keys()}, metadata
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {path}: not a valid safetensors file, or truncated ({exc}). "
                                  "Download or copy it again.") from None
    loaded = _load_pickled(path)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]  # Lightning checkpoint
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (expected a Lightning checkpoint with "
                              "'state_dict', or a plain dict of tensors)")
    return dict(loaded), {}


def split_components(state_dict: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Route an official state dict to its components; frozen components lose their routing prefix."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, tensor in state_dict.items():
        prefix = next((p for p in COMPONENT_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            unknown.append(key)
            continue
        component = COMPONENT_PREFIXES[prefix]
        strip = _STRIP_PREFIX.get(component, "")
        parts.setdefault(component, {})[key[len(strip):]] = tensor
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} keys belong to no VSSFlow component (first: {unknown[:3]}); "
            f"expected prefixes {sorted(COMPONENT_PREFIXES)}. Is this a VSSFlow checkpoint?"
        )
    return parts


def to_model_keys(official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official VSSFlow-network keys (``vaflow.*``, projections) -> keys of :class:`VSSFlow` (``dit.*``, ...)."""
    return {(_MODEL_DIT + k[len(_OFFICIAL_DIT):] if k.startswith(_OFFICIAL_DIT) else k): v for k, v in official.items()}


def to_official_keys(model_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {(_OFFICIAL_DIT + k[len(_MODEL_DIT):] if k.startswith(_MODEL_DIT) else k): v for k, v in model_state.items()}


# --------------------------------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------------------------------


def check_state_dict(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], what: str,
                     show: int = 5) -> None:
    """Raise a CheckpointError naming the first missing, unexpected and mis-shaped keys, if there are any."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    misshaped = [f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
                 for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or misshaped):
        return
    lines = [f"the checkpoint does not match the {what} model:"]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
        if items:
            more = f" (and {len(items) - show} more)" if len(items) > show else ""
            lines.append(f"  {len(items)} {label}: {', '.join(items[:show])}{more}")
    lines.append("Check that the file is a checkpoint of this model and that it was written completely.")
    raise CheckpointError("\n".join(lines))


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], what: str,
                dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> torch.nn.Module:
    """Load ``state_dict`` into ``module`` (which may live on the meta device), strictly, converting on the way."""
    check_state_dict(module.state_dict(), state_dict, what)
    converted = {}
    for key, tensor in state_dict.items():
        target = dtype if (dtype is not None and tensor.is_floating_point()) else tensor.dtype
        converted[key] = tensor.to(device=device or "cpu", dtype=target)
    module.load_state_dict(converted, strict=True, assign=True)
    return module


# --------------------------------------------------------------------------------------------------------------------
# VSSFlow network
# --------------------------------------------------------------------------------------------------------------------


def vssflow_config_of(model_state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None,
                      head_dim: int | None = None) -> VSSFlowConfig:
    """The configuration stored with a checkpoint, else the one its tensor shapes imply."""
    if metadata and CONFIG_METADATA_KEY in metadata and head_dim is None:
        return VSSFlowConfig.from_dict(json.loads(metadata[CONFIG_METADATA_KEY]))
    return VSSFlowConfig.from_state_dict(model_state, **({} if head_dim is None else {"head_dim": head_dim}))


def load_vssflow(path: str | os.PathLike, head_dim: int | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None):
    """Build the VSSFlow network from an official ``.ckpt``, its safetensors conversion, or our own checkpoint.

    The network is created on the meta device and the weights are assigned directly in ``dtype`` on ``device``, so the
    model is never materialised twice.
    """
    from ..model.vssflow import VSSFlow

    if Path(path).is_dir():  # a folder written by ``python -m vssflow_core.convert``
        path = Path(path) / VSSFLOW_FILE
    state, metadata = read_state_dict(path)
    parts = split_components(state)
    if "vssflow" not in parts:
        raise CheckpointError(f"{path} has no VSSFlow network weights (no 'vaflow.*' keys); "
                              f"it holds {sorted(parts)} weights only")
    model_state = to_model_keys(parts["vssflow"])
    try:
        cfg = vssflow_config_of(model_state, metadata, head_dim)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot read the model configuration of {path}: {exc}") from None
    with torch.device("meta"):
        model = VSSFlow(cfg)
    # compare in the checkpoint's own key names, so the error names keys the user can find in the file
    check_state_dict(to_official_keys(model.state_dict()), parts["vssflow"], f"VSSFlow ({path})")
    load_strict(model, model_state, f"VSSFlow ({path})", dtype=dtype, device=device)
    return model.eval()


def save_safetensors_atomic(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike,
                            metadata: Mapping[str, str] | None = None, overwrite: bool = False) -> Path:
    """Write a safetensors file through a temporary file and a rename, so no half-written file is ever visible."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another name or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=dict(metadata or {}))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_vssflow(model, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save the VSSFlow network in the official key layout, with its configuration in the file's metadata."""
    return save_safetensors_atomic(to_official_keys(model.state_dict()), path,
                                   metadata={CONFIG_METADATA_KEY: model.cfg.to_json()}, overwrite=overwrite)
