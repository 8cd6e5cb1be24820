"""Fetching a component's file from the Hugging Face hub with ``huggingface_hub.hf_hub_download``.

Offline, a download must fail at once and leave nothing behind.  So before the first file is fetched one HEAD request
with a short timeout and no retries asks whether the hub (``HF_ENDPOINT``) answers at all; if it does not, the
download is refused without calling ``hf_hub_download`` (whose retries took 24 s), and further files fail at once for
a minute instead of each waiting again.  When a download fails or is interrupted, every file and folder it created
(``.lock``, ``.incomplete``, ``.metadata``, the empty component folder) is removed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from .registry import ComponentSource, WeightFile
from .sources import hf_cache_dir, missing_weights

log = logging.getLogger(__name__)

REACH_TIMEOUT_S = 5.0  # the one reachability request: connect and answer within this, or the hub counts as offline
UNREACHABLE_MEMORY_S = 60.0  # after a failed check, later files fail at once for this long
_unreachable: dict[str, tuple[float, str]] = {}  # endpoint -> (time.monotonic() of the failed check, why)


def hub_url(comp: ComponentSource, file: WeightFile) -> str:
    """The file's URL on the hub this process talks to (``HF_ENDPOINT`` or huggingface.co)."""
    from huggingface_hub import hf_hub_url

    return hf_hub_url(comp.repo_id, file.filename, subfolder=file.subfolder or None, revision=comp.revision)


def check_reachable(url: str) -> str | None:
    """None when the hub answers a HEAD request for ``url`` (any HTTP status will do), else the reason it did not."""
    endpoint = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    failed = _unreachable.get(endpoint)
    if failed is not None and time.monotonic() - failed[0] < UNREACHABLE_MEMORY_S:
        return failed[1]
    from huggingface_hub.utils import get_session

    try:  # the hub library's own session: its proxy, certificate and header settings apply
        get_session().head(url, timeout=REACH_TIMEOUT_S)
    except Exception as exc:  # whatever the HTTP library raises (refused, reset, DNS, timeout, TLS)
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        _unreachable[endpoint] = (time.monotonic(), reason)
        return reason
    _unreachable.pop(endpoint, None)
    return None


def _created_paths(roots: Sequence[Path]) -> set[Path]:
    return {p for root in roots if root.exists() for p in (root, *root.rglob("*"))}


def _remove_new(roots: Sequence[Path], before: set[Path]) -> None:
    """Delete what appeared under ``roots`` since ``before`` was taken: the failed download's locks, partial file,
    metadata and the folders made for them."""
    new = sorted(_created_paths(roots) - before, key=lambda p: len(p.parts), reverse=True)  # deepest first
    for path in new:
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only ever empty: its new contents went first, and old contents are kept
            else:
                path.unlink()
        except OSError as exc:
            log.warning("could not remove %s after the failed download: %s", path, exc)


def download_file(comp: ComponentSource, file: WeightFile, models_dir: Path | None, searched: Sequence[str]) -> Path:
    """Fetch ``file`` into ``<models_dir>/<component>`` (or the hub cache); a MissingWeightsError says why not."""
    from huggingface_hub import hf_hub_download

    url = hub_url(comp, file)
    unreachable = check_reachable(url)
    if unreachable is not None:
        endpoint = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        reason = (f"Cannot reach the Hugging Face hub at {endpoint} to download {url} ({unreachable}); nothing was "
                  "written. Connect to the internet (or set HF_ENDPOINT to a reachable mirror) and try again, or fetch "
                  "the file elsewhere and copy it to the models folder.")
        raise missing_weights(comp, file, searched, models_dir, reason=reason)

    kwargs: dict[str, Any] = {
        "repo_id": comp.repo_id,
        "filename": file.filename,
        "subfolder": file.subfolder or None,
        "revision": comp.revision,
    }
    if models_dir is not None:
        kwargs["local_dir"] = str(models_dir / comp.name)  # lands at <models_dir>/<component>/<subfolder>/<file>
        roots = [models_dir / comp.name]
    else:
        kwargs["cache_dir"] = str(hf_cache_dir())
        repo_folder = "models--" + comp.repo_id.replace("/", "--")  # type: ignore[union-attr]
        roots = [hf_cache_dir() / repo_folder, hf_cache_dir() / ".locks" / repo_folder]
    # said where the weights are fetched: some components are non-commercial (registry.py holds each licence)
    log.info("downloading %s (%s) from %s; licence: %s", comp.name, comp.approx_size, url, comp.license)
    before = _created_paths(roots)
    try:
        return Path(hf_hub_download(**kwargs))
    except BaseException as exc:
        _remove_new(roots, before)  # also on Ctrl-C: a partial file must not look like a download in progress
        if not isinstance(exc, Exception):
            raise
        raise missing_weights(comp, file, searched, models_dir, reason=_failure_reason(comp, url, exc)) from exc


def _failure_reason(comp: ComponentSource, url: str, exc: Exception) -> str:
    try:
        from huggingface_hub import errors as hf_errors
    except ImportError:  # huggingface_hub < 0.24 kept its error types in utils
        from huggingface_hub import utils as hf_errors  # type: ignore[no-redef]
    # Order matters: GatedRepoError is a RepositoryNotFoundError, LocalEntryNotFoundError an EntryNotFoundError.
    if isinstance(exc, hf_errors.GatedRepoError):
        return f"The hub refused the download: {comp.repo_id} is gated (accept its terms, then `hf auth login`)."
    if isinstance(exc, hf_errors.LocalEntryNotFoundError):
        return f"Could not reach the Hugging Face hub to download {url}."
    if isinstance(exc, (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError,
                        hf_errors.EntryNotFoundError)):
        return f"The hub has no {url}; the registry may be out of date ({type(exc).__name__})."
    # HTTP and network errors, disk full, permissions
    return f"Downloading {url} failed ({type(exc).__name__}: {exc}); nothing was kept. Try again."
