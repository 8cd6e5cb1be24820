"""Reading the tensors of a TorchScript archive (e.g. OpenAI CLIP's ``ViT-B-16.pt``) without running anything in it.

``torch.load(weights_only=True)`` refuses TorchScript archives, and ``torch.jit.load`` compiles the archive's code and
runs any ``__setstate__`` it defines, which is more trust than a weights file deserves.  A TorchScript archive is a
zip whose ``<root>/data.pkl`` pickles the module tree (``__torch__.*`` objects whose state is an attribute dict), with
the tensor bytes stored in ``<root>/data/<key>``.  :func:`read_torchscript_tensors` unpickles ``data.pkl`` with an
allow-list: TorchScript classes become inert attribute holders and only tensor rebuilding is permitted, so any other
global (``os.system`` and friends) is refused before anything is called.

This is the format layer only; :func:`vssflow_core.weights.checkpoint.read_state_dict` recognises these archives,
reads them through here and turns the errors below into :class:`~vssflow_core.weights.checkpoint.CheckpointError`.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from typing import Any, Callable, Mapping

import torch

__all__ = ["TorchScriptFormatError", "UnsafeGlobalError", "is_torchscript_archive", "read_torchscript_tensors"]


class TorchScriptFormatError(ValueError):
    """A zip that this reader does not support (not a single ``<root>/data.pkl``, big-endian tensors)."""


class UnsafeGlobalError(pickle.UnpicklingError):
    """``data.pkl`` references a global outside the allow-list; ``name`` is its qualified name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"refusing to load {name}: only tensors and TorchScript module attributes may be read from "
                         "a weights archive")
        self.name = name


class _ScriptObject:
    """Stand-in for a pickled TorchScript object (``__torch__.*``): it keeps the attribute dict and runs nothing."""

    type_name = "__torch__"

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _StorageType:
    """What ``torch.FloatStorage`` & co. resolve to inside the restricted unpickler: just the element dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
    # the remaining arguments (requires_grad, backward hooks, metadata) carry nothing a frozen encoder needs
    return torch.as_strided(storage, tuple(size), tuple(stride), offset).clone(memory_format=torch.contiguous_format)


def _rebuild_parameter(data: torch.Tensor, *_: Any) -> torch.Tensor:
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for ``data.pkl`` records that can only build tensors, containers and inert TorchScript objects."""

    _SAFE: dict[tuple[str, str], Callable[..., Any]] = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
        # TorchScript tags typed containers with these; they only wrap plain values
        ("torch.jit._pickle", "restore_type_tag"): lambda value, _type: value,
        ("torch.jit._pickle", "build_intlist"): list,
        ("torch.jit._pickle", "build_doublelist"): list,
        ("torch.jit._pickle", "build_boollist"): list,
        ("torch.jit._pickle", "build_tensorlist"): list,
    }

    def __init__(self, data: bytes, read_storage: Callable[[str, torch.dtype], torch.Tensor]) -> None:
        super().__init__(io.BytesIO(data))
        self._read_storage = read_storage
        self._script_types: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            qualified = f"{module}.{name}"
            if qualified not in self._script_types:
                self._script_types[qualified] = type(name, (_ScriptObject,), {"type_name": qualified})
            return self._script_types[qualified]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) in self._SAFE:
            return self._SAFE[(module, name)]
        raise UnsafeGlobalError(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self._read_storage(str(pid[2]), pid[1].dtype)


def _collect_tensors(obj: Any, prefix: str, out: dict[str, torch.Tensor], seen: set[int]) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, _ScriptObject) and isinstance(getattr(obj, "state", None), dict) and id(obj) not in seen:
        seen.add(id(obj))
        for name, value in obj.state.items():
            _collect_tensors(value, f"{prefix}.{name}" if prefix else str(name), out, seen)


def read_torchscript_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive, by dotted module path (what ``state_dict()`` would name it).

    Raises :class:`UnsafeGlobalError` (a ``pickle.UnpicklingError``) for a global outside the allow-list, before
    anything is called; :class:`TorchScriptFormatError` for an unsupported zip layout; zip, pickle and storage errors
    of a damaged archive pass through.
    """
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        roots = [n[: -len("data.pkl")] for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(roots) != 1:
            raise TorchScriptFormatError(f"{path} is not a TorchScript/torch zip archive (no single '<root>/data.pkl')")
        root = roots[0]
        if f"{root}byteorder" in names and archive.read(f"{root}byteorder").strip() not in (b"little", b""):
            raise TorchScriptFormatError(f"{path}: big-endian archives are not supported")
        storages: dict[str, torch.Tensor] = {}

        def read_storage(key: str, dtype: torch.dtype) -> torch.Tensor:
            if key not in storages:
                raw = bytearray(archive.read(f"{root}data/{key}"))
                storages[key] = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            return storages[key]

        obj = _RestrictedUnpickler(archive.read(f"{root}data.pkl"), read_storage).load()
    tensors: dict[str, torch.Tensor] = {}
    if isinstance(obj, Mapping):  # a plain torch.save'd dict opened through this reader
        for key, value in obj.items():
            _collect_tensors(value, str(key), tensors, set())
    else:
        _collect_tensors(obj, "", tensors, set())
    return tensors


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript zip (``torch.jit.save``), not a ``torch.save`` zip or anything else."""
    if not zipfile.is_zipfile(path):
        return False
    # torch.save zips and TorchScript zips share '<root>/data.pkl'; only TorchScript ships code and constants
    try:
        with zipfile.ZipFile(path) as archive:
            return any(
                (n.count("/") == 1 and n.endswith("/constants.pkl")) or n.split("/")[1:2] == ["code"]
                for n in archive.namelist()
            )
    except (zipfile.BadZipFile, OSError):
        return False  # a damaged zip: the pickle reader reports it
