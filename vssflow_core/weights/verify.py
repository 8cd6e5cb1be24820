"""Checking a weights file before use: is it intact, and is it the model the registry says it is?

Cheap by design.  A safetensors header is read (never the tensors) and compared with the registry's identifying
shapes; a PyTorch zip is opened through its central directory (which sits at the end, so truncation shows at once)
and its tensors are listed with ``mmap``.  The format-level checks that every reader shares (what the bytes are,
declared sizes against the file's size) live in :mod:`vssflow_core.weights.formats`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import CorruptWeightsError, WrongModelError
from .registry import ComponentSource, KeyLayout, Shape, WeightFile, WeightFormat, get_component
from .sources import problem
from .formats import FileFormatError, check_readable, inspect_weights_file, sniff_format

log = logging.getLogger(__name__)

_verified: dict[tuple[str, int, int, str, str], None] = {}  # (path, size, mtime_ns, component, file) already checked


def verify_file(
    path: str | os.PathLike[str],
    component: str,
    file: WeightFile | None = None,
    *,
    models_dir: Path | None = None,
    check_sha256: bool = False,
) -> WeightFormat:
    """Check that ``path`` is an intact copy of ``component``'s file; return its format.

    Cheap by design: safetensors headers and PyTorch zip indexes are read, tensor data never is (``mmap``).
    ``check_sha256`` additionally hashes the whole file when the registry knows the published hash and the file
    carries the published name.
    """
    comp = get_component(component)
    file = file or comp.weights_file
    p = Path(path)
    info = p.stat()
    key = (str(p.resolve()), info.st_size, info.st_mtime_ns, comp.name, file.filename)
    if key in _verified and not check_sha256:
        return sniff_format(p) or file.format

    def corrupt(what: str) -> CorruptWeightsError:
        return CorruptWeightsError(problem(comp, p, what, models_dir), component=comp.name, path=p)

    try:  # what the bytes are, and sizes declared against the file's size, before anything is read
        if file.format is WeightFormat.JSON:
            check_readable(p)
            fmt = WeightFormat.JSON
        else:
            fmt = inspect_weights_file(p)
    except FileFormatError as exc:
        raise corrupt(exc.what) from None

    if file.format is WeightFormat.JSON:
        _verify_json(comp, file, p, models_dir)
    elif fmt is WeightFormat.JSON:
        raise corrupt("it is a JSON file (a configuration?), not the weights")
    else:
        if fmt is WeightFormat.SAFETENSORS:
            shapes = _safetensors_shapes(comp, p, models_dir)
        elif fmt is WeightFormat.TORCHSCRIPT:
            _check_zip(comp, p, models_dir)
            shapes = None  # listing them means reading the whole archive; the CLIP loader checks them strictly
        else:
            shapes = _pickle_shapes(comp, p, models_dir)
        if shapes is not None and file.layouts:
            _check_layouts(comp, file, p, shapes, models_dir)

    if check_sha256 and file.sha256 and p.name == file.filename:
        digest = _sha256(p)
        if digest != file.sha256:
            raise corrupt(f"its SHA-256 is {digest}, the published file's is {file.sha256}")
    _verified[key] = None
    return fmt



def _safetensors_shapes(comp: ComponentSource, path: Path, models_dir: Path | None) -> dict[str, Shape]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise CorruptWeightsError(
                problem(comp, path, f"the file is truncated ({size} bytes, shorter than a safetensors header)",
                         models_dir),
                component=comp.name, path=path,
            )
        (header_len,) = struct.unpack("<Q", prefix)
        if 8 + header_len > size:
            raise CorruptWeightsError(
                problem(comp, path, f"the file is truncated inside its header ({size} bytes, header needs"
                         f" {8 + header_len})", models_dir),
                component=comp.name, path=path,
            )
        try:
            header = json.loads(fh.read(header_len))
        except ValueError as exc:
            raise CorruptWeightsError(
                problem(comp, path, f"its safetensors header is not valid JSON ({exc})", models_dir),
                component=comp.name, path=path,
            ) from exc
    # The header says where every tensor ends; a file shorter than that was cut off mid-download.
    data_end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    needed = 8 + header_len + data_end
    if size < needed:
        raise CorruptWeightsError(
            problem(comp, path, f"the file is truncated: it holds {size:,} bytes but its header describes"
                     f" {needed:,} (an interrupted download?)", models_dir),
            component=comp.name, path=path,
        )
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as st:  # validates the header the way the loader will
            return {k: tuple(st.get_slice(k).get_shape()) for k in st.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError type
        raise CorruptWeightsError(
            problem(comp, path, f"safetensors cannot read it ({exc})", models_dir), component=comp.name, path=path
        ) from exc


def _check_zip(comp: ComponentSource, path: Path, models_dir: Path | None) -> None:
    try:
        with zipfile.ZipFile(path):
            pass  # opening reads the central directory at the end of the file
    except zipfile.BadZipFile as exc:
        raise CorruptWeightsError(
            problem(comp, path, f"the PyTorch archive is truncated or damaged ({exc})", models_dir),
            component=comp.name, path=path,
        ) from exc


def _pickle_shapes(comp: ComponentSource, path: Path, models_dir: Path | None) -> dict[str, Shape] | None:
    with path.open("rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"
    if not is_zip:
        return None  # legacy torch format: no index to read without loading everything; the loader will check
    _check_zip(comp, path, models_dir)
    import torch

    try:
        # mmap: tensors stay on disk, only the pickle of the container is read.  weights_only: never run code.
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except TypeError as exc:
        if "mmap" in str(exc):  # torch older than 2.1: no lazy loading, so leave the check to the loader
            log.info("this torch cannot mmap checkpoints (%s); skipping the shape check of %s", exc, path)
            return None
        raise CorruptWeightsError(
            problem(comp, path, f"PyTorch cannot read it (TypeError: {exc})", models_dir),
            component=comp.name, path=path,
        ) from exc
    except pickle.UnpicklingError as exc:
        # Not a plain tensor container (e.g. a Lightning checkpoint holding custom objects): safe loading
        # cannot look inside, so leave the key check to the loader rather than reject a possibly good file.
        log.info("cannot list tensors of %s with weights_only=True (%s); skipping the shape check", path, exc)
        return None
    except Exception as exc:
        raise CorruptWeightsError(
            problem(comp, path, f"PyTorch cannot read it ({type(exc).__name__}: {exc})", models_dir),
            component=comp.name, path=path,
        ) from exc
    return dict(_tensor_shapes(obj))


def _tensor_shapes(obj: Any, prefix: str = "", depth: int = 0) -> Iterable[tuple[str, Shape]]:
    """Dotted names and shapes of the tensors in nested dicts ({"model": ...}, {"state_dict": ...})."""
    shape = getattr(obj, "shape", None)
    if shape is not None and hasattr(obj, "dtype"):
        yield prefix, tuple(int(d) for d in shape)
    elif isinstance(obj, Mapping) and depth < 4:
        for k, v in obj.items():
            yield from _tensor_shapes(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)


def _find_key(keys: Iterable[str], wanted: str) -> str | None:
    """``wanted`` itself, else the shortest key ending in ``.wanted`` (wrappers add prefixes such as ``model.``)."""
    suffix = "." + wanted
    best: str | None = None
    for k in keys:
        if k == wanted:
            return k
        if k.endswith(suffix) and (best is None or len(k) < len(best)):
            best = k
    return best


def _fmt_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _check_layouts(
    comp: ComponentSource, file: WeightFile, path: Path, shapes: Mapping[str, Shape], models_dir: Path | None
) -> KeyLayout:
    best: tuple[int, KeyLayout, list[str], list[str]] | None = None
    for layout in file.layouts:
        missing: list[str] = []
        wrong: list[str] = []
        for name, expected in layout.shapes.items():
            actual_key = _find_key(shapes, name)
            if actual_key is None:
                missing.append(name)
            elif expected is not None and tuple(shapes[actual_key]) != tuple(expected):
                wrong.append(
                    f"'{actual_key}' has shape {_fmt_shape(shapes[actual_key])}, expected {_fmt_shape(expected)}"
                )
        if not missing and not wrong:
            return layout
        present = len(layout.shapes) - len(missing)
        if best is None or present > best[0]:
            best = (present, layout, missing, wrong)
    assert best is not None
    present, layout, missing, wrong = best
    if present == 0:
        sample = ", ".join(sorted(shapes)[:3]) or "no tensors"
        expected_names = ", ".join(list(file.layouts[0].shapes)[:2])
        what = (
            f"none of the tensors that identify {comp.description} (e.g. {expected_names}) are in it; it holds"
            f" {len(shapes)} tensors such as {sample}. It is another model"
        )
    elif wrong:
        what = "it is another model or another size: " + "; ".join(wrong)
    else:
        what = f"it lacks tensors of a complete {comp.name} model ({', '.join(missing)}); is it a partial file?"
    raise WrongModelError(problem(comp, path, what, models_dir), component=comp.name, path=path)


def _verify_json(comp: ComponentSource, file: WeightFile, path: Path, models_dir: Path | None) -> None:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptWeightsError(
            problem(comp, path, f"it is not valid JSON ({exc}); truncated?", models_dir), component=comp.name, path=path
        ) from exc
    if not isinstance(config, dict):
        raise CorruptWeightsError(
            problem(comp, path, "it is not a JSON object", models_dir), component=comp.name, path=path
        )
    wrong = [
        f"{k} is {config.get(k)!r}, expected {v!r}" for k, v in file.expected_config.items() if config.get(k) != v
    ]
    if wrong:
        raise WrongModelError(
            problem(comp, path, "its config describes another model: " + "; ".join(wrong), models_dir),
            component=comp.name, path=path,
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


