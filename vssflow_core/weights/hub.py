"""Find, fetch and check the pretrained weights listed in :mod:`vssflow_core.weights.registry`.

Search order for every file of a component:

1. ``local_path`` when given: a file (the weights; an optional ``config.json`` is taken from next to it) or a
   folder laid out like a component folder.  An explicit path is authoritative: if it is missing we say so rather
   than silently using another copy.
2. The models folder (``models_dir``, else ``$VSSFLOW_MODELS_DIR``)::

       <models_dir>/<component>/<file>              e.g. models/vae/diffusion_pytorch_model.safetensors
       <models_dir>/<component>/<subfolder>/<file>  what `hf download ... --local-dir models/vae` writes
       <models_dir>/<component>/<alias>             e.g. models/clip/ViT-B-16.pt (OpenAI's TorchScript file)

3. The Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``), read without any network access.
4. Only with ``download=True`` and not offline: ``huggingface_hub.hf_hub_download`` into
   ``<models_dir>/<component>`` (or into the cache when there is no models folder).

Anything missing raises :class:`MissingWeightsError` (a ``FileNotFoundError``) naming the component, the file, every
place searched and the commands that fetch it.  Files found are checked cheaply before use: a safetensors header is
read (never the tensors) and compared with the registry's identifying shapes; a PyTorch zip is opened through its
central directory (which sits at the end, so truncation shows at once) and its tensors are read with ``mmap``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import shlex
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .registry import (
    DOWNLOADABLE_INFERENCE_COMPONENTS,
    REGISTRY,
    ComponentSource,
    KeyLayout,
    Shape,
    WeightFile,
    WeightFormat,
    get_component,
)
from .torchscript import is_torchscript_archive

log = logging.getLogger(__name__)

MODELS_DIR_ENV = "VSSFLOW_MODELS_DIR"
_TRUE = {"1", "on", "yes", "true"}


# --- errors -------------------------------------------------------------------------------------------------------


class MissingWeightsError(FileNotFoundError):
    """A component's file is nowhere to be found (or cannot be fetched).  The message says how to get it."""

    def __init__(
        self,
        message: str,
        *,
        component: str,
        filename: str,
        searched: Sequence[str] = (),
        commands: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.component = component
        self.filename = filename
        self.searched = tuple(searched)
        self.commands = tuple(commands)

    def __str__(self) -> str:  # FileNotFoundError would otherwise format (errno, strerror) pairs
        return str(self.args[0])


class WeightsVerificationError(ValueError):
    """A weights file exists but is not usable as the component it claims to be."""

    def __init__(self, message: str, *, component: str, path: Path) -> None:
        super().__init__(message)
        self.component = component
        self.path = path


class WrongModelError(WeightsVerificationError):
    """The file is intact but holds another model (other tensors, other sizes, other config)."""


class CorruptWeightsError(WeightsVerificationError):
    """The file is truncated, empty, a Git LFS pointer, or not in any weights format at all."""


class UnsupportedComponentError(ValueError):
    """The component is documented in the registry but this package does not run it (AV-HuBERT)."""


# --- environment --------------------------------------------------------------------------------------------------


def is_offline() -> bool:
    """True when the hub must not be contacted.  Read at call time: huggingface_hub reads it once at import."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - huggingface_hub is a hard dependency, this is belt and braces
        return False


def hf_cache_dir() -> Path:
    """The hub cache folder, honouring ``HF_HUB_CACHE`` / ``HF_HOME`` as set now (not at import time)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def default_models_dir() -> Path | None:
    value = os.environ.get(MODELS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def expected_location(component: str, models_dir: str | os.PathLike[str]) -> Path:
    """Where a user should put a component's weights file by hand."""
    comp = get_component(component)
    return Path(models_dir) / comp.name / comp.weights_file.filename


# --- commands shown to users --------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    # shlex quoting (single quotes) is POSIX-only; cmd.exe and PowerShell both take double quotes.
    if os.name == "nt":
        return f'"{value}"' if any(c in value for c in " &()^;") else value
    return shlex.quote(value)


def fetch_commands(component: str | ComponentSource, models_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The exact commands that fetch a component: this package's CLI, then the hub's own CLI."""
    comp = component if isinstance(component, ComponentSource) else get_component(component)
    if not comp.downloadable:
        return []
    md = f" --models-dir {_quote(str(models_dir))}" if models_dir is not None else ""
    ours = f"python -m vssflow_core download {comp.name}{md}"
    files = " ".join(f.repo_path for f in comp.files)
    rev = f" --revision {comp.revision}" if comp.revision != "main" else ""
    local = f" --local-dir {_quote(str(Path(models_dir) / comp.name))}" if models_dir is not None else ""
    theirs = f"hf download {comp.repo_id} {files}{rev}{local}"
    return [ours, theirs]


def _how_to_fetch(comp: ComponentSource, models_dir: Path | None) -> str:
    lines: list[str] = []
    commands = fetch_commands(comp, models_dir)
    if commands:
        lines.append(f"To fetch it ({comp.approx_size}; licence: {comp.license}):")
        lines.append(f"  {commands[0]}")
        lines.append(f"  or: {commands[1]}")
        lines.append("  (huggingface_hub older than 1.0 spells the second one `huggingface-cli download`)")
        if comp.gated:
            lines.append(
                f"  The repository is gated: accept its terms at https://huggingface.co/{comp.repo_id}"
                " and run `hf auth login` first."
            )
    if comp.how_to_get:
        lines.append(comp.how_to_get)
    for url in comp.other_sources:
        lines.append(f"Other source: {url}")
    return "\n".join(lines)


# --- result -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a component's files were found."""

    component: str
    weights: Path  # the file to load
    weights_format: WeightFormat  # as sniffed from the file (CLIP may be safetensors or OpenAI TorchScript)
    files: Mapping[str, Path]  # every file found, keyed by its registry filename (weights and optional config)
    origin: str  # "local_path", "models_dir", "hf_cache" or "download"

    @property
    def config(self) -> Path | None:
        return self.files.get("config.json")


# --- search -------------------------------------------------------------------------------------------------------


def _folder_candidates(folder: Path, file: WeightFile) -> list[Path]:
    names = [folder / file.filename]
    if file.subfolder:
        names.append(folder / file.subfolder / file.filename)
    names.extend(folder / alias for alias in file.aliases)
    return names


def _from_hf_cache(comp: ComponentSource, file: WeightFile) -> Path | None:
    if comp.repo_id is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(comp.repo_id, file.repo_path, cache_dir=str(hf_cache_dir()), revision=comp.revision)
    # A str is a cached file; None means unknown and a sentinel object means "known not to exist".
    return Path(found) if isinstance(found, str) else None


def _hf_cache_description(comp: ComponentSource, file: WeightFile) -> str:
    folder = hf_cache_dir() / f"models--{comp.repo_id.replace('/', '--')}"  # type: ignore[union-attr]
    return f"Hugging Face cache: {folder} (revision {comp.revision}, file {file.repo_path})"


def _missing(
    comp: ComponentSource,
    file: WeightFile,
    searched: Sequence[str],
    models_dir: Path | None,
    reason: str = "",
) -> MissingWeightsError:
    lines = [f"Missing weights for '{comp.name}' ({comp.description}): {file.repo_path}"]
    if reason:
        lines.append(reason)
    if searched:
        lines.append("Looked in:")
        lines.extend(f"  - {place}" for place in searched)
    lines.append(_how_to_fetch(comp, models_dir))
    return MissingWeightsError(
        "\n".join(lines),
        component=comp.name,
        filename=file.repo_path,
        searched=searched,
        commands=fetch_commands(comp, models_dir),
    )


def _search_local_path(comp: ComponentSource, local_path: Path, models_dir: Path | None) -> dict[str, Path]:
    if not local_path.exists():
        raise _missing(
            comp, comp.weights_file, [f"local path: {local_path} (does not exist)"], models_dir,
            reason="The path given for it does not exist.",
        )
    found: dict[str, Path] = {}
    if local_path.is_file():
        found[comp.weights_file.filename] = local_path
        folder = local_path.parent
        files = [f for f in comp.files if f.role != "weights"]
    else:
        folder = local_path
        files = list(comp.files)
    for file in files:
        candidates = _folder_candidates(folder, file)
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is not None:
            found[file.filename] = hit
        elif file.required:
            raise _missing(comp, file, [f"local path: {p}" for p in candidates], models_dir)
    return found


def _search(
    comp: ComponentSource, file: WeightFile, models_dir: Path | None, searched: list[str]
) -> tuple[Path, str] | None:
    if models_dir is not None:
        for candidate in _folder_candidates(models_dir / comp.name, file):
            if candidate.is_file():
                return candidate, "models_dir"
            searched.append(f"models folder: {candidate}")
    else:
        searched.append(f"models folder: not set (pass models_dir or set {MODELS_DIR_ENV})")
    if comp.repo_id is not None:
        cached = _from_hf_cache(comp, file)
        if cached is not None and cached.is_file():
            return cached, "hf_cache"
        searched.append(_hf_cache_description(comp, file))
    return None


def _download(comp: ComponentSource, file: WeightFile, models_dir: Path | None, searched: Sequence[str]) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        from huggingface_hub import errors as hf_errors
    except ImportError:  # huggingface_hub < 0.24 kept its error types in utils
        from huggingface_hub import utils as hf_errors  # type: ignore[no-redef]

    kwargs: dict[str, Any] = {
        "repo_id": comp.repo_id,
        "filename": file.filename,
        "subfolder": file.subfolder or None,
        "revision": comp.revision,
    }
    if models_dir is not None:
        kwargs["local_dir"] = str(models_dir / comp.name)  # lands at <models_dir>/<component>/<subfolder>/<file>
    else:
        kwargs["cache_dir"] = str(hf_cache_dir())
    url = comp.hub_url(file)
    try:
        return Path(hf_hub_download(**kwargs))
    # Order matters: GatedRepoError is a RepositoryNotFoundError, LocalEntryNotFoundError an EntryNotFoundError.
    except hf_errors.GatedRepoError as exc:
        reason = f"The hub refused the download: {comp.repo_id} is gated (accept its terms, then `hf auth login`)."
        raise _missing(comp, file, searched, models_dir, reason=reason) from exc
    except hf_errors.LocalEntryNotFoundError as exc:
        reason = f"Could not reach the Hugging Face hub to download {url}."
        raise _missing(comp, file, searched, models_dir, reason=reason) from exc
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError, hf_errors.EntryNotFoundError) as exc:
        reason = f"The hub has no {url}; the registry may be out of date ({type(exc).__name__})."
        raise _missing(comp, file, searched, models_dir, reason=reason) from exc
    except OSError as exc:  # HTTP errors, disk full, permissions
        reason = f"Downloading {url} failed: {exc}"
        raise _missing(comp, file, searched, models_dir, reason=reason) from exc


def resolve(
    component: str,
    models_dir: str | os.PathLike[str] | None = None,
    local_path: str | os.PathLike[str] | None = None,
    download: bool = False,
    verify: bool = True,
) -> ResolvedWeights:
    """Find (and with ``download=True`` fetch) a component's files; check them unless ``verify=False``.

    Raises :class:`MissingWeightsError` when the weights cannot be found or fetched, :class:`WrongModelError` or
    :class:`CorruptWeightsError` when a file found is not usable, :class:`UnsupportedComponentError` for AV-HuBERT.
    """
    comp = get_component(component)
    if not comp.supported:
        raise UnsupportedComponentError(f"'{comp.name}' ({comp.description}) is not supported. {comp.how_to_get}")
    md = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()

    if local_path is not None:
        found = _search_local_path(comp, Path(local_path).expanduser(), md)
        origins = {name: "local_path" for name in found}
    else:
        found, origins = {}, {}
        for file in comp.files:
            searched: list[str] = []
            hit = _search(comp, file, md, searched)
            if hit is not None:
                found[file.filename], origins[file.filename] = hit
                continue
            if not download:
                if file.required:
                    raise _missing(comp, file, searched, md)
                continue
            if not comp.downloadable:
                if file.required:
                    raise _missing(comp, file, searched, md, reason="There is no public source to download it from.")
                continue
            if is_offline():
                if file.required:
                    reason = (
                        "Download requested but offline mode is on (HF_HUB_OFFLINE=1): run the command below"
                        " where the internet is reachable, or unset HF_HUB_OFFLINE."
                    )
                    raise _missing(comp, file, searched, md, reason=reason)
                continue
            try:
                found[file.filename] = _download(comp, file, md, searched)
                origins[file.filename] = "download"
            except MissingWeightsError:
                if file.required:
                    raise
                log.warning("optional %s of '%s' could not be downloaded; continuing without it", file.filename, comp.name)

    weights = found[comp.weights_file.filename]
    if verify:
        for file in comp.files:
            if file.filename in found:
                verify_file(found[file.filename], comp.name, file, models_dir=md)
    return ResolvedWeights(
        component=comp.name,
        weights=weights,
        weights_format=sniff_format(weights) or comp.weights_file.format,
        files=dict(found),
        origin=origins[comp.weights_file.filename],
    )


def resolve_any(
    component: str,
    models_dirs: Sequence[str | os.PathLike[str] | None],
    download: bool = False,
    verify: bool = True,
) -> ResolvedWeights:
    """:func:`resolve` over several models folders (ComfyUI may register more than one): the first folder that holds
    the component wins, then the hub cache; with ``download=True`` a component found nowhere is fetched into the
    first folder.  The :class:`MissingWeightsError` raised otherwise names every folder searched."""
    folders = list(models_dirs) or [None]
    errors: list[MissingWeightsError] = []
    for folder in folders:
        try:
            return resolve(component, models_dir=folder, download=False, verify=verify)
        except MissingWeightsError as exc:
            errors.append(exc)
    if download:
        return resolve(component, models_dir=folders[0], download=True, verify=verify)
    first = errors[0]
    extra = [place for exc in errors[1:] for place in exc.searched if place not in first.searched]
    if not extra:
        raise first
    message = str(first) + "\nAlso looked in:\n" + "\n".join(f"  - {place}" for place in extra)
    raise MissingWeightsError(message, component=first.component, filename=first.filename,
                              searched=(*first.searched, *extra), commands=first.commands)


# --- verification -------------------------------------------------------------------------------------------------

_LFS_POINTER = b"version https://git-lfs"
_verified: dict[tuple[str, int, int, str, str], None] = {}  # (path, size, mtime_ns, component, file) already checked


def sniff_format(path: str | os.PathLike[str]) -> WeightFormat | None:
    """The serialisation of a file from its first bytes (and, for zips, its member names)."""
    p = Path(path)
    with p.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK\x03\x04"):
        # a damaged zip counts as a torch.save zip: verify_file reports it
        return WeightFormat.TORCHSCRIPT if is_torchscript_archive(p) else WeightFormat.PICKLE
    if head[:1] == b"\x80":  # pickle protocol marker: torch's legacy (pre-1.6) format
        return WeightFormat.PICKLE
    if len(head) >= 9 and head[8:9] == b"{":  # u64 header length, then the JSON header
        return WeightFormat.SAFETENSORS
    if head.lstrip()[:1] == b"{":
        return WeightFormat.JSON
    return None


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
    stat = p.stat()
    key = (str(p.resolve()), stat.st_size, stat.st_mtime_ns, comp.name, file.filename)
    if key in _verified and not check_sha256:
        return sniff_format(p) or file.format

    def corrupt(what: str) -> CorruptWeightsError:
        return CorruptWeightsError(_problem(comp, p, what, models_dir), component=comp.name, path=p)

    if stat.st_size == 0:
        raise corrupt("the file is empty (an interrupted download?)")
    with p.open("rb") as fh:
        head = fh.read(len(_LFS_POINTER))
    if head == _LFS_POINTER:
        raise corrupt("it is a Git LFS pointer, not the weights (the repository was cloned without git-lfs)")

    if file.format is WeightFormat.JSON:
        _verify_json(comp, file, p, models_dir)
        fmt = WeightFormat.JSON
    else:
        fmt = sniff_format(p)
        if fmt is None:
            raise corrupt("it is not a safetensors, PyTorch or TorchScript file")
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


def _problem(comp: ComponentSource, path: Path, what: str, models_dir: Path | None) -> str:
    lines = [f"'{comp.name}' weights at {path} are not usable: {what}."]
    commands = fetch_commands(comp, models_dir)
    if commands:
        lines.append("Delete the file and fetch the published one:")
        lines.extend(f"  {c}" for c in commands)
    elif comp.how_to_get:
        lines.append(comp.how_to_get)
    return "\n".join(lines)


def _safetensors_shapes(comp: ComponentSource, path: Path, models_dir: Path | None) -> dict[str, Shape]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise CorruptWeightsError(
                _problem(comp, path, f"the file is truncated ({size} bytes, shorter than a safetensors header)",
                         models_dir),
                component=comp.name, path=path,
            )
        (header_len,) = struct.unpack("<Q", prefix)
        if 8 + header_len > size:
            raise CorruptWeightsError(
                _problem(comp, path, f"the file is truncated inside its header ({size} bytes, header needs"
                         f" {8 + header_len})", models_dir),
                component=comp.name, path=path,
            )
        try:
            header = json.loads(fh.read(header_len))
        except ValueError as exc:
            raise CorruptWeightsError(
                _problem(comp, path, f"its safetensors header is not valid JSON ({exc})", models_dir),
                component=comp.name, path=path,
            ) from exc
    # The header says where every tensor ends; a file shorter than that was cut off mid-download.
    data_end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    needed = 8 + header_len + data_end
    if size < needed:
        raise CorruptWeightsError(
            _problem(comp, path, f"the file is truncated: it holds {size:,} bytes but its header describes"
                     f" {needed:,} (an interrupted download?)", models_dir),
            component=comp.name, path=path,
        )
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as st:  # validates the header the way the loader will
            return {k: tuple(st.get_slice(k).get_shape()) for k in st.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError type
        raise CorruptWeightsError(
            _problem(comp, path, f"safetensors cannot read it ({exc})", models_dir), component=comp.name, path=path
        ) from exc


def _check_zip(comp: ComponentSource, path: Path, models_dir: Path | None) -> None:
    try:
        with zipfile.ZipFile(path):
            pass  # opening reads the central directory at the end of the file
    except zipfile.BadZipFile as exc:
        raise CorruptWeightsError(
            _problem(comp, path, f"the PyTorch archive is truncated or damaged ({exc})", models_dir),
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
            _problem(comp, path, f"PyTorch cannot read it (TypeError: {exc})", models_dir),
            component=comp.name, path=path,
        ) from exc
    except pickle.UnpicklingError as exc:
        # Not a plain tensor container (e.g. a Lightning checkpoint holding custom objects): safe loading
        # cannot look inside, so leave the key check to the loader rather than reject a possibly good file.
        log.info("cannot list tensors of %s with weights_only=True (%s); skipping the shape check", path, exc)
        return None
    except Exception as exc:
        raise CorruptWeightsError(
            _problem(comp, path, f"PyTorch cannot read it ({type(exc).__name__}: {exc})", models_dir),
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
    raise WrongModelError(_problem(comp, path, what, models_dir), component=comp.name, path=path)


def _verify_json(comp: ComponentSource, file: WeightFile, path: Path, models_dir: Path | None) -> None:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptWeightsError(
            _problem(comp, path, f"it is not valid JSON ({exc}); truncated?", models_dir), component=comp.name, path=path
        ) from exc
    if not isinstance(config, dict):
        raise CorruptWeightsError(
            _problem(comp, path, "it is not a JSON object", models_dir), component=comp.name, path=path
        )
    wrong = [
        f"{k} is {config.get(k)!r}, expected {v!r}" for k, v in file.expected_config.items() if config.get(k) != v
    ]
    if wrong:
        raise WrongModelError(
            _problem(comp, path, "its config describes another model: " + "; ".join(wrong), models_dir),
            component=comp.name, path=path,
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- command line -------------------------------------------------------------------------------------------------


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
