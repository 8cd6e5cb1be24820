"""Fetching a component's file from the Hugging Face hub with ``huggingface_hub.hf_hub_download``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from .registry import ComponentSource, WeightFile
from .sources import hf_cache_dir, missing_weights

log = logging.getLogger(__name__)


def download_file(comp: ComponentSource, file: WeightFile, models_dir: Path | None, searched: Sequence[str]) -> Path:
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
        raise missing_weights(comp, file, searched, models_dir, reason=reason) from exc
    except hf_errors.LocalEntryNotFoundError as exc:
        reason = f"Could not reach the Hugging Face hub to download {url}."
        raise missing_weights(comp, file, searched, models_dir, reason=reason) from exc
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError, hf_errors.EntryNotFoundError) as exc:
        reason = f"The hub has no {url}; the registry may be out of date ({type(exc).__name__})."
        raise missing_weights(comp, file, searched, models_dir, reason=reason) from exc
    except OSError as exc:  # HTTP errors, disk full, permissions
        reason = f"Downloading {url} failed: {exc}"
        raise missing_weights(comp, file, searched, models_dir, reason=reason) from exc


