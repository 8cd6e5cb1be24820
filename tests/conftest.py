"""Shared fixtures: the golden tensors from the official code, and an offline hub."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Nothing may reach a model hub from the tests; a missing file must fail at once, not after retries.
os.environ["HF_HUB_OFFLINE"] = "1"

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(os.environ.get("VSSFLOW_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine OpenMP barriers stall for whole time slices."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN_DIR.is_dir():
        pytest.skip(f"golden tensors not found at {GOLDEN_DIR} (set VSSFLOW_GOLDEN_DIR to the shared/golden folder)")
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def golden_manifest(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "MANIFEST.json").read_text())


@pytest.fixture(scope="session")
def load_golden(golden_dir: Path):
    """``load_golden("vae_small")`` -> dict of tensors from ``vae_small.safetensors``."""
    from safetensors.torch import load_file

    def load(name: str) -> dict:
        return load_file(str(golden_dir / f"{name}.safetensors"))

    return load
