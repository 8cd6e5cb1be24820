"""Reading and writing VSSFlow checkpoints: the official Lightning ``.ckpt`` and our safetensors files.

The official checkpoint is one Lightning ``state_dict`` holding every module of the training worker under a prefix:
``vaflow.*`` (the DiT) and the projections belong to the VSSFlow network; ``image_encoder.*``, ``vae.*`` and
``vocoder.*`` are the frozen CLIP tower, VAE and vocoder, routed to their own components.

This module is the one place where weights files are read and checked, for every component:
:func:`read_state_dict` (safetensors, pickled checkpoints, TorchScript archives), :func:`state_dict_from` (a path or
an in-memory state dict), :func:`check_state_dict` / :func:`load_strict` (strict key and shape matching, errors that
name the keys) and :func:`component_files` (diffusers/transformers component folders).

Pickled files are only ever opened with ``torch.load(weights_only=True)``: nothing in them can run code.  Lightning
stores training hyper-parameters next to the weights, sometimes as config objects (omegaconf, argparse); those few
known data classes are replaced by inert placeholders so the tensors can be read, and anything else (``os.system``
and friends) is refused with a clear error.  TorchScript archives (OpenAI CLIP's ``ViT-B-16.pt``) are read by the
restricted unpickler of :mod:`vssflow_core.weights.torchscript`, never by ``torch.jit.load``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Mapping

import torch

from ..config import VSSFlowConfig
from .formats import FileFormatError, inspect_weights_file
from .registry import WeightFormat
from .torchscript import TorchScriptFormatError, UnsafeGlobalError, read_torchscript_tensors

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
# keys a state dict is commonly wrapped under: Lightning, then the usual research-code names (RawNet3's model.pt)
_WRAPPER_KEYS = ("state_dict", "model", "module")


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


def _refusal(path: Path, what: str, accepted: str) -> str:
    return (f"refusing to load {path}: it references {what}, which is not plain weights and could run code when "
            f"unpickled. {accepted}; export the weights with safetensors (or torch.save of a plain state dict) and "
            "load that file instead.")


def _load_pickled(path: Path, mmap: bool = False) -> object:
    placeholders: list[tuple[type, str]] = []
    while True:
        try:
            with torch.serialization.safe_globals(placeholders):
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as exc:
            match = re.search(r"GLOBAL ([\w.]+)", str(exc))
            name = match.group(1) if match else None
            if name is None or not name.startswith(_PLACEHOLDER_MODULES) or len(placeholders) >= _MAX_PLACEHOLDERS:
                what = f"'{name}'" if name else "a Python object"
                raise CheckpointError(_refusal(path, what, "Only tensor checkpoints are accepted")) from None
            placeholders.append((_placeholder_class(name), name))
        except (RuntimeError, EOFError, OSError) as exc:
            raise CheckpointError(f"cannot read {path}: the file is damaged or truncated ({exc}). "
                                  "Download or copy it again.") from None


def _read_torchscript(path: Path) -> dict[str, torch.Tensor]:
    try:
        return read_torchscript_tensors(path)
    except UnsafeGlobalError as exc:
        raise CheckpointError(_refusal(path, f"'{exc.name}'", "Only tensors and TorchScript module attributes are "
                                       "read from a TorchScript archive")) from None
    except TorchScriptFormatError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}. Export the weights with safetensors instead.") from None
    except Exception as exc:  # zip, pickle and storage errors of a damaged archive
        raise CheckpointError(f"cannot read {path}: the TorchScript archive is damaged or truncated "
                              f"({type(exc).__name__}: {exc}). Download or copy it again.") from None


def unwrap_state_dict(obj: object, origin: str) -> dict[str, torch.Tensor]:
    """A flat name -> tensor dict from a loaded object: a plain state dict, or one wrapped under ``state_dict``
    (Lightning), ``model`` or ``module``.  ``origin`` names the object in the error."""
    if isinstance(obj, Mapping):
        wrapped = next((obj[key] for key in _WRAPPER_KEYS if isinstance(obj.get(key), Mapping)), None)
        obj = obj if wrapped is None else wrapped
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{origin} holds no state dict of tensors (expected a plain dict of tensors, or one "
                              f"under {', '.join(repr(k) for k in _WRAPPER_KEYS)}); save the model's state_dict() "
                              "or export the weights with safetensors, and load that instead")
    return dict(obj)


def read_state_dict(path: str | os.PathLike,
                    dtype: torch.dtype | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a ``.safetensors`` file, a TorchScript archive, or a pickled checkpoint (a
    plain state dict, or one under ``state_dict`` (Lightning), ``model`` or ``module``).

    ``dtype`` converts the floating-point tensors as they are read: one tensor at a time from a safetensors file,
    and from a memory-mapped zip checkpoint, so a bfloat16 load never holds a float32 copy of the whole file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:  # the format from the bytes, not the name; declared sizes checked before anything is allocated
        fmt = inspect_weights_file(path)
    except FileFormatError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if fmt is WeightFormat.JSON:
        raise CheckpointError(f"cannot read {path}: it is a JSON file (a configuration?), not weights. Choose the "
                              "weights file (.safetensors, .ckpt, .pt) next to it")
    if fmt is WeightFormat.SAFETENSORS:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
                return {key: _in_dtype(f.get_tensor(key), dtype) for key in f.keys()}, metadata
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {path}: not a valid safetensors file, or truncated ({exc}). "
                                  "Download or copy it again.") from None
    if fmt is WeightFormat.TORCHSCRIPT:
        tensors = _read_torchscript(path)
    else:
        # mapped, the file's float32 pages are read as each tensor is converted instead of all at once
        mmap = dtype is not None and zipfile.is_zipfile(path)
        tensors = unwrap_state_dict(_load_pickled(path, mmap=mmap), str(path))
    return {key: _in_dtype(tensor, dtype) for key, tensor in tensors.items()}, {}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors checkpoint (a converted folder: its network file), read from the header
    alone; {} for the formats that carry none, or for a file that is not there."""
    path = Path(path)
    if path.is_dir():
        path = path / VSSFLOW_FILE
    try:
        if not path.is_file() or inspect_weights_file(path) is not WeightFormat.SAFETENSORS:
            return {}
    except FileFormatError:
        return {}  # the loader names what is wrong with the file
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _in_dtype(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    if dtype is None or not tensor.is_floating_point() or tensor.dtype == dtype:
        return tensor
    return tensor.to(dtype)


def state_dict_from(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights a loader was given: a file (read by :func:`read_state_dict`) or an in-memory state dict (unwrapped
    the same way)."""
    if isinstance(source, Mapping):
        return unwrap_state_dict(source, "the given state dict")
    return read_state_dict(source)[0]


def weights_label(what: str, source: object) -> str:
    """``what`` with the file the weights came from, for messages: ``"CLIP visual (/models/ViT-B-16.pt)"``."""
    return what if isinstance(source, Mapping) else f"{what} ({source})"


def component_files(path: str | os.PathLike, subfolder: str, weight_files: tuple[str, ...],
                    what: str) -> tuple[Path, Path | None]:
    """The weights file and ``config.json`` (None if there is none) of a diffusers/transformers component.

    ``path`` is the weights file itself, the component's folder (``config.json`` plus one of ``weight_files``), or a
    pipeline folder (e.g. a ``cvssp/audioldm2`` snapshot) that holds the component as ``subfolder``.
    """
    path = Path(path)
    if not path.is_dir():
        return path, None
    if (path / subfolder).is_dir() and not (path / "config.json").is_file():
        path = path / subfolder
    weights = next((path / name for name in weight_files if (path / name).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"no {what} weights in {path}: expected one of {', '.join(weight_files)}")
    config = path / "config.json"
    return weights, (config if config.is_file() else None)


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
            f"expected prefixes {sorted(COMPONENT_PREFIXES)}. Is this a VSSFlow checkpoint? Choose the VSSFlow "
            f"network's file (the official .ckpt, its vssflow.safetensors conversion, or one this package trained)"
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
                     show: int = 5, ignore_missing: Callable[[str], bool] | None = None) -> None:
    """Raise a CheckpointError naming the first missing, unexpected and mis-shaped keys, if there are any.

    ``ignore_missing(key)`` marks expected keys the checkpoint may lack (e.g. BatchNorm's ``num_batches_tracked``).
    """
    missing = [k for k in expected if k not in given and not (ignore_missing and ignore_missing(k))]
    unexpected = [k for k in given if k not in expected]
    misshaped = [f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
                 for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    # integer or boolean values cannot stand for floating-point weights: a quantised or mangled file
    mistyped = [f"{k}: checkpoint {_dtype_name(given[k])} vs model {_dtype_name(expected[k])}"
                for k in expected if k in given and _is_real(expected[k]) and not _is_real(given[k])]
    if not (missing or unexpected or misshaped or mistyped):
        return
    lines = [f"the checkpoint does not match the {what} model:"]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped),
                         ("wrong type", mistyped)):
        if items:
            more = f" (and {len(items) - show} more)" if len(items) > show else ""
            lines.append(f"  {len(items)} {label}: {', '.join(items[:show])}{more}")
    hint = "; mis-shaped tensors usually mean a checkpoint of another size of the model" if misshaped else ""
    if mistyped:
        hint += ("; integer or boolean tensors where the model has floating-point weights mean a quantised or "
                 "converted file: use the original float32, bfloat16 or float16 checkpoint")
    lines.append("Check that the file is a checkpoint of this model and that it was written completely" + hint + ".")
    raise CheckpointError("\n".join(lines))


def _is_real(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() or tensor.is_complex()


def _dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


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
    """The configuration stored with a checkpoint, else the one its tensor shapes imply.

    A stored configuration is checked before a model is built from it: every value of the right type, and every
    size the tensors fix equal to theirs (so an edited ``num_layers: 1000000`` is refused, not built).  Raises
    ValueError naming the field.
    """
    if metadata and CONFIG_METADATA_KEY in metadata and head_dim is None:
        stored = _stored_config(metadata[CONFIG_METADATA_KEY])
        implied = VSSFlowConfig.from_state_dict(model_state, head_dim=stored.head_dim)
        differ = [f"{f.name} is {getattr(stored, f.name)!r} but the tensors say {getattr(implied, f.name)!r}"
                  for f in dataclasses.fields(VSSFlowConfig) if f.name not in _NOT_IN_SHAPES
                  and getattr(stored, f.name) != getattr(implied, f.name)]
        if differ:
            raise ValueError(f"the configuration in its '{CONFIG_METADATA_KEY}' metadata does not match its tensors: "
                             + "; ".join(differ[:3]) + _METADATA_ADVICE)
        return stored
    return VSSFlowConfig.from_state_dict(model_state, **({} if head_dim is None else {"head_dim": head_dim}))


_NOT_IN_SHAPES = {"norm_eps", "rope_theta"}  # the only fields no tensor shape fixes
_METADATA_ADVICE = (". The metadata was edited or written by another tool: convert the file again (python -m "
                    "vssflow_core.convert FILE -o FOLDER, adding --head-dim N if its attention heads are not 64 wide), "
                    "which reads the configuration from the tensor shapes")


def _stored_config(text: str) -> VSSFlowConfig:
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"its '{CONFIG_METADATA_KEY}' metadata is not valid JSON ({exc}){_METADATA_ADVICE}") from None
    if not isinstance(values, dict):
        raise ValueError(f"its '{CONFIG_METADATA_KEY}' metadata is not a JSON object{_METADATA_ADVICE}")
    for field in dataclasses.fields(VSSFlowConfig):
        if field.name not in values:
            continue
        value = values[field.name]
        whole = isinstance(value, int) and not isinstance(value, bool)
        if field.type in ("int", int) and not (whole and value > 0):
            raise ValueError(f"'{field.name}' in its '{CONFIG_METADATA_KEY}' metadata is {value!r}; expected a "
                             f"positive whole number{_METADATA_ADVICE}")
        if field.type in ("float", float) and not ((whole or isinstance(value, float)) and math.isfinite(value)
                                                    and value > 0):
            raise ValueError(f"'{field.name}' in its '{CONFIG_METADATA_KEY}' metadata is {value!r}; expected a "
                             f"positive number{_METADATA_ADVICE}")
    return VSSFlowConfig.from_dict(values)


def load_vssflow(path: str | os.PathLike, head_dim: int | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None):
    """Build the VSSFlow network from an official ``.ckpt``, its safetensors conversion, or our own checkpoint.

    The network is created on the meta device and the weights, converted to ``dtype`` as they are read, are assigned
    on ``device``: the model is never materialised twice, and a bfloat16 load never holds the float32 network.
    """
    from ..model.vssflow import VSSFlow

    if Path(path).is_dir():  # a folder written by ``python -m vssflow_core.convert``
        path = Path(path) / VSSFLOW_FILE
    state, metadata = read_state_dict(path, dtype=dtype)
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


def read_tagged(path: str | os.PathLike, key: str, tensors: bool = True) -> tuple[dict[str, torch.Tensor], object]:
    """The tensors (``tensors=False``: none) and the JSON metadata entry ``key`` of a safetensors file written with
    one (a feature-cache item, a distillation shard).  Raises whatever reading fails with (missing or truncated
    file, no such entry, bad JSON): the callers turn it into their own message or into "recompute"."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})[key])
        return ({k: f.get_tensor(k) for k in f.keys()} if tensors else {}), meta


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


def save_vssflow(model, path: str | os.PathLike, overwrite: bool = False,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Save the VSSFlow network in the official key layout, with its configuration in the file's metadata (plus any
    other ``metadata`` entries, e.g. a distilled student's recommended sampler)."""
    return save_safetensors_atomic(to_official_keys(model.state_dict()), path,
                                   metadata={**(metadata or {}), CONFIG_METADATA_KEY: model.cfg.to_json()},
                                   overwrite=overwrite)
