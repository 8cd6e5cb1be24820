"""Downloading with the hub unreachable fails at once, fetches only what is missing and leaves nothing behind.

The hub is a local socket that accepts each connection and hangs up (what a captive portal or a dead proxy does):
the number of connections it saw shows how often the download code tried.  Nothing here reaches the internet.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from test_weights_registry import layout_shapes, vae_config, write_safetensors
from vssflow_core.weights import download, hub
from vssflow_core.weights.hub import MissingWeightsError, resolve

REPO_ROOT = Path(__file__).resolve().parents[1]


class HangUpServer:
    """Accepts connections on 127.0.0.1 and closes each one at once, counting them."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def hang_up_hub():
    server = HangUpServer()
    yield server
    server.close()


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def test_offline_download_fails_at_once_fetches_only_the_missing_and_leaves_nothing(tmp_path, hang_up_hub):
    models, hf_home = tmp_path / "models", tmp_path / "hf_home"
    # Already present: the VAE (weights and config) and the vocoder.  Missing: CLIP and Synchformer.
    write_safetensors(models / "vae" / "diffusion_pytorch_model.safetensors", layout_shapes("vae"))
    (models / "vae" / "config.json").write_text(vae_config())
    write_safetensors(models / "vocoder" / "model.safetensors", layout_shapes("vocoder"))
    before = tree(models)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(PYTHONPATH=str(REPO_ROOT), HF_HOME=str(hf_home), HF_ENDPOINT=f"http://127.0.0.1:{hang_up_hub.port}")
    done = subprocess.run([sys.executable, "-m", "vssflow_core", "download", "vae", "vocoder", "clip", "synchformer",
                           "--models-dir", str(models)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "vae: ok (in the models folder)" in done.stdout and "vocoder: ok (in the models folder)" in done.stdout
    assert "clip: FAILED" in done.stderr and "synchformer: FAILED" in done.stderr
    assert f"Cannot reach the Hugging Face hub at http://127.0.0.1:{hang_up_hub.port}" in done.stderr
    assert "nothing was written" in done.stderr
    # One request decided it: no retries, and the second missing component did not wait again.
    assert hang_up_hub.connections == 1
    # No .lock, .incomplete, .cache or empty component folder anywhere.
    assert tree(models) == before
    assert not [p for p in tree(hf_home) if p.endswith((".lock", ".incomplete")) or "models--" in p]


def test_the_reachability_check_is_one_request_without_retries(hang_up_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # tests/conftest.py set it before the import
    monkeypatch.setattr(download, "_unreachable", {})
    url = f"http://127.0.0.1:{hang_up_hub.port}/openai/clip-vit-base-patch16/resolve/main/model.safetensors"
    assert download.check_reachable(url)
    assert download.check_reachable(url)  # remembered: no second request
    assert hang_up_hub.connections == 1


def partial_download(local_dir: str, filename: str) -> Path:
    """What hf_hub_download leaves in a local_dir while a file is on its way."""
    work = Path(local_dir) / ".cache" / "huggingface" / "download"
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{filename}.lock").touch()
    (work / f"{filename}.0123abcd.incomplete").write_bytes(b"\0" * 1000)
    return work


@pytest.mark.parametrize("failure", [ConnectionResetError("the connection dropped"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_download_removes_its_lock_and_partial_file(tmp_path, monkeypatch, failure):
    import huggingface_hub

    models = tmp_path / "models"
    (models / "clip").mkdir(parents=True)
    (models / "clip" / "notes.txt").write_text("the user's own file stays")

    def dropped(repo_id, filename, *, local_dir=None, **kwargs):
        partial_download(local_dir, filename)
        raise failure

    monkeypatch.setattr(hub, "is_offline", lambda: False)
    monkeypatch.setattr(download, "check_reachable", lambda url: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", dropped)
    expected = MissingWeightsError if isinstance(failure, Exception) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        resolve("clip", models_dir=models, download=True)
    if expected is MissingWeightsError:
        assert "the connection dropped" in str(info.value) and "Try again" in str(info.value)
    assert tree(models) == {"clip", "clip/notes.txt"}


def test_a_failed_download_into_a_new_folder_removes_the_folder(tmp_path, monkeypatch):
    import huggingface_hub

    def dropped(repo_id, filename, *, local_dir=None, **kwargs):
        partial_download(local_dir, filename)
        raise OSError("No space left on device")

    monkeypatch.setattr(hub, "is_offline", lambda: False)
    monkeypatch.setattr(download, "check_reachable", lambda url: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", dropped)
    with pytest.raises(MissingWeightsError, match="No space left on device"):
        resolve("rawnet3", models_dir=tmp_path / "models", download=True)
    assert tree(tmp_path / "models") == set()
