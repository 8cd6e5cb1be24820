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
   ``<models_dir>/<component>`` (or into the cache when there is no models folder), after one quick check that the
   hub answers (:mod:`vssflow_core.weights.download`).

Anything missing raises :class:`MissingWeightsError` (a ``FileNotFoundError``) naming the component, the file, every
place searched and the commands that fetch it.  Files found are checked cheaply before use by
:func:`~vssflow_core.weights.verify.verify_file`.  The other jobs live beside this one: the errors in ``errors``,
the environment and the fetch commands in ``sources``, fetching in ``download``, file checks in ``verify`` and
``formats``, the ``download`` command in ``cli``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .download import download_file
# the errors and the environment helpers are imported from here by the loaders, the command lines and the tests
from .errors import (CorruptWeightsError, MissingWeightsError, UnsupportedComponentError, WeightsVerificationError,
                     WrongModelError)
from .formats import sniff_format
from .registry import ComponentSource, WeightFile, WeightFormat, get_component
from .sources import (MODELS_DIR_ENV, default_models_dir, expected_location, fetch_commands, hf_cache_description,
                      hf_cache_dir, is_offline, missing_weights)
from .verify import verify_file

__all__ = ["CorruptWeightsError", "MODELS_DIR_ENV", "MissingWeightsError", "ResolvedWeights",
           "UnsupportedComponentError", "WeightsVerificationError", "WrongModelError", "default_models_dir",
           "expected_location", "fetch_commands", "hf_cache_dir", "is_offline", "resolve", "resolve_any",
           "sniff_format", "verify_file"]

log = logging.getLogger(__name__)


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


def _search_local_path(comp: ComponentSource, local_path: Path, models_dir: Path | None) -> dict[str, Path]:
    if not local_path.exists():
        raise missing_weights(
            comp, comp.weights_file, [f"local path: {local_path} (does not exist)"], models_dir,
            reason="The path given for it does not exist.",
        )
    found: dict[str, Path] = {}
    if not local_path.is_dir():  # the weights file itself (a FIFO or a device too: verify_file names it)
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
            raise missing_weights(comp, file, [f"local path: {p}" for p in candidates], models_dir)
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
        searched.append(hf_cache_description(comp, file))
    return None


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
                    raise missing_weights(comp, file, searched, md)
                continue
            if not comp.downloadable:
                if file.required:
                    raise missing_weights(comp, file, searched, md, reason="There is no public source to download it from.")
                continue
            if is_offline():
                if file.required:
                    reason = (
                        "Download requested but offline mode is on (HF_HUB_OFFLINE=1): run the command below"
                        " where the internet is reachable, or unset HF_HUB_OFFLINE."
                    )
                    raise missing_weights(comp, file, searched, md, reason=reason)
                continue
            try:
                found[file.filename] = download_file(comp, file, md, searched)
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


