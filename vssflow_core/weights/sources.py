"""Where weights come from and how a user gets them: the models folder and hub cache as the environment sets them,
and the commands and messages that tell a user how to fetch a component."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Sequence

from .errors import MissingWeightsError
from .registry import ComponentSource, WeightFile, get_component

MODELS_DIR_ENV = "VSSFLOW_MODELS_DIR"
_TRUE = {"1", "on", "yes", "true"}

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


def how_to_fetch(comp: ComponentSource, models_dir: Path | None) -> str:
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


def hf_cache_description(comp: ComponentSource, file: WeightFile) -> str:
    folder = hf_cache_dir() / f"models--{comp.repo_id.replace('/', '--')}"  # type: ignore[union-attr]
    return f"Hugging Face cache: {folder} (revision {comp.revision}, file {file.repo_path})"


def missing_weights(
    comp: ComponentSource,
    file: WeightFile,
    searched: Sequence[str],
    models_dir: Path | None,
    reason: str = "",
) -> MissingWeightsError:
    """The error for a file found nowhere: what is missing, why, every place searched and how to fetch it."""
    lines = [f"Missing weights for '{comp.name}' ({comp.description}): {file.repo_path}"]
    if reason:
        lines.append(reason)
    if searched:
        lines.append("Looked in:")
        lines.extend(f"  - {place}" for place in searched)
    lines.append(how_to_fetch(comp, models_dir))
    return MissingWeightsError(
        "\n".join(lines),
        component=comp.name,
        filename=file.repo_path,
        searched=searched,
        commands=fetch_commands(comp, models_dir),
    )


def problem(comp: ComponentSource, path: Path, what: str, models_dir: Path | None) -> str:
    """The message for a file found but not usable: what is wrong, then how to get the published one."""
    lines = [f"'{comp.name}' weights at {path} are not usable: {what}."]
    commands = fetch_commands(comp, models_dir)
    if commands:
        lines.append("Delete the file and fetch the published one:")
        lines.extend(f"  {c}" for c in commands)
    elif comp.how_to_get:
        lines.append(comp.how_to_get)
    return "\n".join(lines)

