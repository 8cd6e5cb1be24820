"""What a weights file is, read from its bytes, and whether the sizes it declares are believable, before any tensor
is materialised.

Every reader asks here first (:func:`vssflow_core.weights.checkpoint.read_state_dict` and the registry's
:func:`~vssflow_core.weights.verify.verify_file`):

- The path must be a regular file.  A FIFO would block the reader until something writes to it, ``/dev/urandom``
  never ends, and a ``/proc`` file reports 0 bytes although it has content.
- The format comes from the first bytes, never from the name: ``.sft``, ``.SAFETENSORS``, ``.pt``, ``.ckpt`` all work.
- A safetensors header may take at most :data:`MAX_SAFETENSORS_HEADER` bytes (the safetensors library's own limit)
  and must lie inside the file.
- A zip (``torch.save``, TorchScript) may not declare more than :data:`MAX_EXPANSION` times the file's size plus
  :data:`SIZE_SLACK` of contents in its central directory: a zip bomb is refused before anything is decompressed.
- The tensors of a pickled checkpoint are read as geometry only (storage, element type and count, offset, size,
  strides) by an unpickler that builds nothing.  Each storage must fit in the bytes stored for it, each tensor must
  lie inside its storage, and all tensors together may take at most :data:`MAX_EXPANSION` times the file's size plus
  :data:`SIZE_SLACK` once loaded: a zero-stride tensor claiming 6 GB over 4 stored bytes is refused.
"""

from __future__ import annotations

import math
import os
import pickle
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .registry import WeightFormat
from .torchscript import is_torchscript_archive

# A weights file loads into about its own size (shared storages and dtype-free views may add a little); 4x is far
# beyond any real checkpoint and far below what a crafted one claims.  The slack lets tiny files hold small expanded
# buffers (and the registry tests' one-byte fakes of full-size tensors).
MAX_EXPANSION = 4
SIZE_SLACK = 64_000_000  # bytes
MAX_SAFETENSORS_HEADER = 100_000_000  # bytes; the safetensors library refuses larger headers itself
_LFS_POINTER = b"version https://git-lfs"

_ITEM_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8, "UntypedStorage": 1,
}


class FileFormatError(ValueError):
    """The file cannot be read as weights; ``what`` says why and ``advice`` what to do (callers add the path)."""

    def __init__(self, what: str, advice: str) -> None:
        super().__init__(f"{what}. {advice}")
        self.what, self.advice = what, advice


def human_size(num_bytes: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(num_bytes) < 1000 or unit == "TB":
            return f"{num_bytes:,.0f} {unit}" if unit == "bytes" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000
    raise AssertionError  # pragma: no cover


def loaded_size_limit(file_size: int) -> int:
    """The most bytes a file of ``file_size`` bytes may declare or load into."""
    return MAX_EXPANSION * file_size + SIZE_SLACK


# --------------------------------------------------------------------------------------------------------------------
# What the file is
# --------------------------------------------------------------------------------------------------------------------


def check_regular_file(path: str | os.PathLike[str]) -> os.stat_result:
    """The file's stat, after making sure reading it will neither block nor run forever nor read nothing."""
    p = Path(path)
    info = p.stat()  # FileNotFoundError for a missing path: the callers say where they looked
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise FileFormatError("it is a folder, not a weights file", "Choose the weights file inside it")
    if stat.S_ISFIFO(mode):
        raise FileFormatError("it is a named pipe (FIFO), not a file: reading it waits for a writer",
                              "Save the weights to a regular file and choose that")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise FileFormatError("it is a device, not a weights file", "Choose a .safetensors, .ckpt or .pt file")
    if not stat.S_ISREG(mode):
        raise FileFormatError("it is a socket or another special file, not a weights file",
                              "Choose a .safetensors, .ckpt or .pt file")
    if info.st_size == 0:
        with p.open("rb") as fh:
            virtual = bool(fh.read(1))
        if virtual:
            raise FileFormatError("it reports a size of 0 bytes but has content: a virtual file (such as /proc or "
                                  "/sys), not a weights file", "Choose a .safetensors, .ckpt or .pt file")
        raise FileFormatError("the file is empty (0 bytes): an interrupted download or copy?",
                              "Download or copy it again")
    return info


def check_readable(path: str | os.PathLike[str]) -> os.stat_result:
    """:func:`check_regular_file`, and not a Git LFS pointer left where the file should be."""
    info = check_regular_file(path)
    with Path(path).open("rb") as fh:
        head = fh.read(len(_LFS_POINTER))
    if head == _LFS_POINTER:
        raise FileFormatError("it is a Git LFS pointer, not the weights (the repository was cloned without git-lfs)",
                              "Run `git lfs pull` in the repository, or download the file itself")
    return info


def sniff_format(path: str | os.PathLike[str]) -> WeightFormat | None:
    """The serialisation of a file from its first bytes (and, for zips, its member names); None if unknown."""
    p = Path(path)
    with p.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK\x03\x04"):
        # a damaged zip counts as a torch.save zip: the readers report it
        return WeightFormat.TORCHSCRIPT if is_torchscript_archive(p) else WeightFormat.PICKLE
    if head[:1] == b"\x80":  # pickle protocol marker: torch's legacy (pre-1.6) format
        return WeightFormat.PICKLE
    if len(head) >= 9 and head[8:9] == b"{":  # u64 header length, then the JSON header
        return WeightFormat.SAFETENSORS
    if head.lstrip()[:1] == b"{":
        return WeightFormat.JSON
    return None


def inspect_weights_file(path: str | os.PathLike[str]) -> WeightFormat:
    """Check ``path`` as described in the module docstring, reading headers and indexes only; return its format.

    Raises :class:`FileFormatError` naming the problem.  A damaged zip is left to the readers, which say so.
    """
    p = Path(path)
    size = check_readable(p).st_size
    fmt = sniff_format(p)
    if fmt is WeightFormat.SAFETENSORS:
        _check_safetensors_header(p, size)
    elif fmt in (WeightFormat.PICKLE, WeightFormat.TORCHSCRIPT):
        with p.open("rb") as fh:
            is_zip = fh.read(4) == b"PK\x03\x04"  # a damaged zip too: its reader says what is wrong
        if is_zip:
            _check_zip_checkpoint(p, size, "TorchScript archive" if fmt is WeightFormat.TORCHSCRIPT
                                  else "PyTorch archive")
        else:
            _check_legacy_checkpoint(p, size)
    elif fmt is None:
        raise FileFormatError("it is not a safetensors, PyTorch or TorchScript file (its first bytes match none of "
                              "them)", "Choose the weights file itself; a renamed file keeps its own format")
    return fmt


# --------------------------------------------------------------------------------------------------------------------
# Declared sizes
# --------------------------------------------------------------------------------------------------------------------


def _check_safetensors_header(path: Path, size: int) -> None:
    with path.open("rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
    if header_len > MAX_SAFETENSORS_HEADER:
        raise FileFormatError(f"its safetensors header claims {human_size(header_len)}, more than the "
                              f"{human_size(MAX_SAFETENSORS_HEADER)} safetensors allows", "Download or copy it again")
    if 8 + header_len > size:
        raise FileFormatError(f"the file is truncated inside its safetensors header ({size:,} bytes, the header "
                              f"needs {8 + header_len:,})", "Download or copy it again")


def _too_big(what: str, size: int) -> FileFormatError:
    return FileFormatError(
        f"{what}, but the file holds only {human_size(size)}; a weights file never loads into more than "
        f"{MAX_EXPANSION}x its size (+{human_size(SIZE_SLACK)}), so it is damaged or crafted",
        "Nothing was loaded. Use the published file, or export the weights with safetensors")


def _check_zip_checkpoint(path: Path, size: int, kind: str) -> None:
    try:
        with zipfile.ZipFile(path) as archive:  # reads the central directory only
            infos = {info.filename: info for info in archive.infolist()}
            declared = sum(info.file_size for info in infos.values())
            if declared > loaded_size_limit(size):
                raise _too_big(f"its zip directory declares {human_size(declared)} of contents (a zip bomb?)", size)
            pickles = [n for n in infos if n.endswith("data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                return  # not a layout torch writes; the readers refuse it with their own message
            root = pickles[0][: -len("data.pkl")]
            with archive.open(pickles[0]) as fh:
                geometry = _read_geometry(fh)
    except zipfile.BadZipFile:
        return  # truncated or damaged: the readers say so
    except FileFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise FileFormatError(f"the {kind} is damaged: its tensor index (data.pkl) cannot be read "
                              f"({type(exc).__name__}: {exc})", "Download or copy it again") from None
    for key, (numel, item) in geometry.storages.items():
        record = infos.get(f"{root}data/{key}")
        if record is None:
            raise FileFormatError(f"the {kind} is damaged or truncated: tensor storage '{key}' is listed but not "
                                  "stored in it", "Download or copy it again")
        if numel * item > record.file_size:
            raise FileFormatError(f"the {kind} is damaged or truncated: tensor storage '{key}' declares "
                                  f"{human_size(numel * item)} but {human_size(record.file_size)} are stored for it",
                                  "Download or copy it again")
    _check_tensors(geometry, size)


def _check_legacy_checkpoint(path: Path, size: int) -> None:
    """torch's pre-1.6 format: three small pickles (magic number, protocol, system info), the object pickle, then
    the storages' raw bytes, each declared by element count in the object pickle."""
    try:
        with path.open("rb") as fh:
            for _ in range(3):
                _GeometryUnpickler(fh).load()
            geometry = _read_geometry(fh)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise FileFormatError(f"it is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})",
                              "Download or copy it again, or export the weights with safetensors") from None
    stored = sum(numel * item for numel, item in geometry.storages.values())
    if stored > size:
        raise _too_big(f"its tensor storages declare {human_size(stored)}", size)
    _check_tensors(geometry, size)


# --------------------------------------------------------------------------------------------------------------------
# Tensor geometry from a pickle, building nothing
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Storage:
    key: str
    numel: int
    item_size: int


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    @property
    def numel(self) -> int:
        return math.prod(self.size)


@dataclass
class _Geometry:
    tensors: list[tuple[str, _Tensor]]
    storages: dict[str, tuple[int, int]]  # key -> (element count, bytes per element)


class _Inert:
    """Stands in for every class a pickle names: accepts any construction and state, keeps the state, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Inert":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


def _int_tuple(values: Any, what: str) -> tuple:
    if not isinstance(values, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                         for v in values):
        raise ValueError(f"a tensor's {what} is not a list of non-negative whole numbers: {values!r}"[:200])
    return tuple(values)


def _rebuild(storage: Any, offset: Any, size: Any, stride: Any, *_: Any, **__: Any) -> Any:
    if not isinstance(storage, _Storage):
        return _Inert()  # not a storage this reader knows (a pickle torch would refuse too)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"a tensor's storage offset is {offset!r}")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise ValueError(f"a tensor has {len(size)} sizes but {len(stride)} strides")
    return _Tensor(storage, offset, size, stride)


def _rebuild_v3(storage: Any, offset: Any, size: Any, stride: Any, _requires_grad: Any = None, _hooks: Any = None,
                dtype: Any = None, *_: Any, **__: Any) -> Any:
    # v3 pairs an untyped (byte) storage with the element type
    if isinstance(storage, _Storage) and isinstance(dtype, tuple) and dtype[:1] == ("dtype",) and dtype[1]:
        storage = _Storage(storage.key, storage.numel // dtype[1], dtype[1])
    return _rebuild(storage, offset, size, stride)


def _rebuild_from_type(func: Any, _new_type: Any, args: Any, _state: Any) -> Any:
    return func(*args) if getattr(func, "builds_tensors", False) else _Inert()


def _first(data: Any, *_: Any, **__: Any) -> Any:
    return data


class _GeometryUnpickler(pickle.Unpickler):
    """Reads a checkpoint pickle into plain containers, inert stand-ins and tensor geometry.  No global it names is
    ever imported or called, so reading it is safe whatever it holds; whether the real loader accepts it is the
    loader's business."""

    _REBUILDERS = {
        ("torch._utils", "_rebuild_tensor"): _rebuild,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_v3,
        ("torch._utils", "_rebuild_parameter"): _first,
        ("torch._utils", "_rebuild_parameter_with_state"): _first,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
        ("torch.jit._pickle", "restore_type_tag"): _first,
    }

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: dict[str, tuple[int, int]] = {}
        self.tensors: list[_Tensor] = []
        self._recorded: set[int] = set()
        self._inert_types: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._REBUILDERS:
            return self._recording(self._REBUILDERS[(module, name)])
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name in _ITEM_SIZES:
            return ("storage type", _ITEM_SIZES[name])
        if module == "torch":
            import torch

            value = getattr(torch, name, None)
            if isinstance(value, torch.dtype):
                return ("dtype", value.itemsize)
        qualified = f"{module}.{name}"
        if qualified not in self._inert_types:
            self._inert_types[qualified] = type(name, (_Inert,), {})
        return self._inert_types[qualified]

    def _recording(self, rebuild: Any) -> Any:
        """``rebuild`` that also keeps every tensor it makes: all count, however deep a pickle hides them."""

        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = rebuild(*args, **kwargs)
            if isinstance(result, _Tensor) and id(result) not in self._recorded:
                self._recorded.add(id(result))
                self.tensors.append(result)
            return result

        recorded.builds_tensors = rebuild in (_rebuild, _rebuild_v3)  # type: ignore[attr-defined]
        return recorded

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage type, key, location, element count[, view metadata in the legacy format])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            return _Inert()
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        item = storage_type[1] if isinstance(storage_type, tuple) and storage_type[:1] == ("storage type",) else 1
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise ValueError(f"storage '{key}' declares {numel!r} elements")
        self.storages[key] = (numel, item)
        return _Storage(key, numel, item)


def _read_geometry(fh: BinaryIO) -> _Geometry:
    unpickler = _GeometryUnpickler(fh)
    obj = unpickler.load()
    names = {id(tensor): name for name, tensor in _named_tensors(obj)}
    return _Geometry([(names.get(id(t), "<unnamed>"), t) for t in unpickler.tensors], unpickler.storages)


def _named_tensors(obj: Any, prefix: str = "", depth: int = 0, seen: set[int] | None = None
                   ) -> Iterator[tuple[str, _Tensor]]:
    seen = set() if seen is None else seen
    if isinstance(obj, _Tensor):
        yield prefix or "<tensor>", obj
        return
    if depth > 32 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        items = ((f"{prefix}.{k}" if prefix else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{prefix}.{i}" if prefix else str(i), v) for i, v in enumerate(obj))
    elif isinstance(obj, _Inert):  # TorchScript modules and config objects keep their attributes in their state
        items = iter([(prefix, obj.state)])
    else:
        return
    for name, value in items:
        yield from _named_tensors(value, name, depth + 1, seen)


def _shape(values: tuple) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def _check_tensors(geometry: _Geometry, size: int) -> None:
    loaded = 0
    for name, tensor in geometry.tensors:
        numel = tensor.numel
        if numel:
            extent = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride)) + 1
            if extent > tensor.storage.numel:
                raise FileFormatError(
                    f"tensor '{name}' (shape {_shape(tensor.size)}, strides {_shape(tensor.stride)}) reaches element "
                    f"{extent:,} of a storage of {tensor.storage.numel:,}", "Download or copy it again")
        loaded += numel * tensor.storage.item_size
    if loaded > loaded_size_limit(size):
        name, big = max(geometry.tensors, key=lambda item: item[1].numel * item[1].storage.item_size)
        strides = "zero" if 0 in big.stride and big.numel > 1 else "its"
        raise _too_big(f"its tensors would take {human_size(loaded)} once loaded (the largest, '{name}', has shape "
                       f"{_shape(big.size)} over {human_size(big.storage.numel * big.storage.item_size)} of stored "
                       f"data through {strides} strides {_shape(big.stride)})", size)
