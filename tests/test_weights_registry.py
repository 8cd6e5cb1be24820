"""The weights registry and hub resolution, against a fake models folder and a hand-made hub cache.

Nothing here reaches the network: tests/conftest.py sets HF_HUB_OFFLINE=1, and every test points HF_HOME at its
own tmp_path.  Fake weights carry only the identifying tensors, as uint8 so the files stay small.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vssflow_core.weights import download, hub
from vssflow_core.weights.hub import (
    CorruptWeightsError,
    MissingWeightsError,
    UnsupportedComponentError,
    WrongModelError,
    resolve,
    verify_file,
)
from vssflow_core.weights.cli import download_main
from vssflow_core.weights.registry import (
    DOWNLOADABLE_INFERENCE_COMPONENTS,
    INFERENCE_COMPONENTS,
    REGISTRY,
    WeightFormat,
    get_component,
)

SHA = "0123456789abcdef0123456789abcdef01234567"


# --- helpers ------------------------------------------------------------------------------------------------------


def layout_shapes(component: str, layout: int = 0) -> dict[str, tuple[int, ...]]:
    return dict(REGISTRY[component].weights_file.layouts[layout].shapes)


def write_safetensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(s, dtype=torch.uint8) for k, s in shapes.items()}, str(path))
    return path


def write_pickle(path: Path, shapes: dict[str, tuple[int, ...]], wrap: str | None = None) -> Path:
    # Expanded views keep a one-byte storage, so a "full-size" state dict costs a few bytes on disk.
    sd = {k: torch.zeros(1, dtype=torch.uint8).expand(*s) for k, s in shapes.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({wrap: sd} if wrap else sd, str(path))
    return path


def vae_config(**overrides) -> str:
    config = {"_class_name": "AutoencoderKL", "in_channels": 1, "latent_channels": 8,
              "block_out_channels": [128, 256, 512], "layers_per_block": 2}
    config.update(overrides)
    return json.dumps(config)


def hub_snapshot(hf_home: Path, repo_id: str) -> Path:
    """A hand-made hub cache entry: refs/main -> snapshots/<sha>/ (what hf_hub_download would leave behind)."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(SHA)
    snapshot = repo / "snapshots" / SHA
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def go_online(monkeypatch) -> None:
    """Let resolve() download, with the hub's answer to the reachability check faked: the tests never touch the
    network (tests/test_weights_download.py checks the real request against a local server)."""
    monkeypatch.setattr(hub, "is_offline", lambda: False)
    monkeypatch.setattr(download, "check_reachable", lambda url: None)


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path, monkeypatch) -> Path:
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv(hub.MODELS_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hf_home


# --- registry -----------------------------------------------------------------------------------------------------


def test_registry_lists_every_component_with_a_source():
    assert set(INFERENCE_COMPONENTS) <= set(REGISTRY)
    assert {"clip", "vae", "vocoder", "synchformer", "rawnet3", "vssflow", "stable_audio", "avhubert"} <= set(REGISTRY)
    assert REGISTRY["clip"].repo_id == "openai/clip-vit-base-patch16"
    assert REGISTRY["vae"].weights_file.repo_path == "vae/diffusion_pytorch_model.safetensors"
    assert REGISTRY["vocoder"].weights_file.repo_path == "vocoder/model.safetensors"
    assert REGISTRY["synchformer"].weights_file.repo_path == "ext_weights/synchformer_state_dict.pth"
    assert REGISTRY["rawnet3"].repo_id == "jungjee/RawNet3"
    assert REGISTRY["stable_audio"].gated and REGISTRY["stable_audio"].used_for == "training"
    for comp in REGISTRY.values():
        assert comp.weights_file.required and comp.license and comp.approx_size
        if comp.supported and comp.name != "vssflow":
            assert comp.weights_file.layouts, comp.name
    # The authors published no VSSFlow weights: nothing to download, and the entry says what to do instead.
    vssflow = REGISTRY["vssflow"]
    assert vssflow.repo_id is None and not vssflow.downloadable and "train" in vssflow.how_to_get
    assert not REGISTRY["avhubert"].supported
    assert "vssflow" not in DOWNLOADABLE_INFERENCE_COMPONENTS
    assert REGISTRY["clip"].hub_url(REGISTRY["clip"].weights_file) == (
        "https://huggingface.co/openai/clip-vit-base-patch16/resolve/main/model.safetensors"
    )
    assert get_component("Stable-Audio").name == "stable_audio"
    with pytest.raises(ValueError, match="known components: clip"):
        get_component("clap")


# --- where files are found ----------------------------------------------------------------------------------------


def test_resolve_from_local_path(tmp_path):
    weights = write_safetensors(tmp_path / "anywhere" / "my_clip.safetensors", layout_shapes("clip"))
    result = resolve("clip", local_path=weights)
    assert result.weights == weights and result.origin == "local_path"
    assert result.weights_format is WeightFormat.SAFETENSORS


def test_resolve_from_local_folder_with_config(tmp_path):
    folder = tmp_path / "my_vae"
    write_safetensors(folder / "diffusion_pytorch_model.safetensors", layout_shapes("vae"))
    (folder / "config.json").write_text(vae_config())
    result = resolve("vae", local_path=folder)
    assert result.weights.parent == folder and result.config == folder / "config.json"


def test_resolve_from_models_folder_flat_and_hub_layouts(tmp_path):
    models = tmp_path / "models"
    # Flat layout, placed by hand; the OpenAI key layout under its alias name is accepted too.
    clip = write_safetensors(models / "clip" / "ViT-B-16.pt", layout_shapes("clip", layout=1))
    assert resolve("clip", models_dir=models).weights == clip
    # The layout `hf download cvssp/audioldm2 vocoder/... --local-dir models/vocoder` produces.
    vocoder = write_safetensors(models / "vocoder" / "vocoder" / "model.safetensors", layout_shapes("vocoder"))
    result = resolve("vocoder", models_dir=models)
    assert result.weights == vocoder and result.origin == "models_dir" and result.config is None


def test_models_dir_from_environment(tmp_path, monkeypatch):
    models = tmp_path / "env_models"
    write_pickle(models / "rawnet3" / "model.pt", layout_shapes("rawnet3"), wrap="model")
    monkeypatch.setenv(hub.MODELS_DIR_ENV, str(models))
    result = resolve("rawnet3")
    assert result.origin == "models_dir" and result.weights_format is WeightFormat.PICKLE


def test_resolve_from_hf_cache(isolated_hub):
    snapshot = hub_snapshot(isolated_hub, "cvssp/audioldm2")
    write_safetensors(snapshot / "vae" / "diffusion_pytorch_model.safetensors", layout_shapes("vae"))
    (snapshot / "vae" / "config.json").write_text(vae_config())
    result = resolve("vae")
    assert result.origin == "hf_cache"
    assert result.weights == snapshot / "vae" / "diffusion_pytorch_model.safetensors"
    assert result.config == snapshot / "vae" / "config.json"


def test_models_folder_wins_over_hf_cache(tmp_path, isolated_hub):
    snapshot = hub_snapshot(isolated_hub, "openai/clip-vit-base-patch16")
    write_safetensors(snapshot / "model.safetensors", layout_shapes("clip"))
    mine = write_safetensors(tmp_path / "models" / "clip" / "model.safetensors", layout_shapes("clip"))
    assert resolve("clip", models_dir=tmp_path / "models").weights == mine


def test_pickled_weights_inside_a_wrapper_dict(tmp_path):
    # synchformer_state_dict.pth is a flat state dict; RawNet3's model.pt wraps it as {"model": ...}.
    path = write_pickle(tmp_path / "m" / "synchformer" / "synchformer_state_dict.pth", layout_shapes("synchformer"))
    assert resolve("synchformer", models_dir=tmp_path / "m").weights == path
    wrapped = write_pickle(tmp_path / "rawnet.pt", layout_shapes("rawnet3"), wrap="model")
    assert verify_file(wrapped, "rawnet3") is WeightFormat.PICKLE


# --- missing files ------------------------------------------------------------------------------------------------


def test_missing_file_message_names_component_file_places_and_commands(tmp_path):
    models = tmp_path / "models"
    with pytest.raises(MissingWeightsError) as info:
        resolve("clip", models_dir=models)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    message = str(err)
    assert "'clip'" in message and "model.safetensors" in message
    assert str(models / "clip" / "model.safetensors") in message  # where it looked
    assert "models--openai--clip-vit-base-patch16" in message  # the hub cache it looked in
    assert f"python -m vssflow_core download clip --models-dir {models}" in message
    assert f"hf download openai/clip-vit-base-patch16 model.safetensors --local-dir {models / 'clip'}" in message
    assert err.component == "clip" and err.filename == "model.safetensors" and len(err.commands) == 2


def test_missing_subfolder_file_command_lists_repo_paths(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        resolve("vae", models_dir=tmp_path)
    assert "hf download cvssp/audioldm2 vae/diffusion_pytorch_model.safetensors vae/config.json" in str(info.value)


def test_missing_without_models_dir_suggests_the_cache_download():
    with pytest.raises(MissingWeightsError) as info:
        resolve("synchformer")
    message = str(info.value)
    assert "models folder: not set" in message
    assert "python -m vssflow_core download synchformer\n" in message
    assert "hf download hkchengrex/MMAudio ext_weights/synchformer_state_dict.pth" in message
    assert "github.com/hkchengrex/MMAudio/releases" in message  # the other public source


def test_explicit_local_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(MissingWeightsError, match="does not exist") as info:
        resolve("clip", local_path=missing)
    assert str(missing) in str(info.value)


def test_offline_download_fails_fast_without_calling_the_hub(tmp_path, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("hf_hub_download must not be called offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    start = time.perf_counter()
    with pytest.raises(MissingWeightsError) as info:
        resolve("vocoder", models_dir=tmp_path, download=True)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in message
    assert f"python -m vssflow_core download vocoder --models-dir {tmp_path}" in message


def test_vssflow_has_no_public_weights(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        resolve("vssflow", models_dir=tmp_path, download=True)
    message = str(info.value)
    assert "have not published a checkpoint" in message and "train" in message
    assert "vssflow_core download" not in message  # there is nothing to download


def test_vssflow_checkpoint_placed_by_the_user(tmp_path):
    shapes = {"vaflow.proj_in.weight": (1536, 1952), "vaflow.timestep_proj.0.weight": (1536, 256),
              "vaflow.transformer_blocks.0.attn1.to_q.weight": (1536, 1536), "phone_embedding.weight": (200, 32)}
    ckpt = write_pickle(tmp_path / "vssflow" / "vssflow.ckpt", shapes, wrap="state_dict")
    assert resolve("vssflow", models_dir=tmp_path).weights == ckpt
    # A bare Stable Audio transformer is not a VSSFlow checkpoint.
    write_safetensors(tmp_path / "sao.safetensors", layout_shapes("stable_audio"))
    with pytest.raises(WrongModelError, match="phone_embedding.weight"):
        resolve("vssflow", local_path=tmp_path / "sao.safetensors")


def test_avhubert_is_documented_but_not_supported():
    with pytest.raises(UnsupportedComponentError, match="not supported"):
        resolve("avhubert")


# --- wrong or damaged files ---------------------------------------------------------------------------------------


def test_wrong_model_size_is_rejected_with_the_mismatching_tensor(tmp_path):
    shapes = layout_shapes("clip")
    shapes["vision_model.embeddings.patch_embedding.weight"] = (1024, 3, 14, 14)  # ViT-L/14, not B/16
    path = write_safetensors(tmp_path / "clip" / "model.safetensors", shapes)
    with pytest.raises(WrongModelError) as info:
        resolve("clip", models_dir=tmp_path)
    message = str(info.value)
    assert "vision_model.embeddings.patch_embedding.weight" in message
    assert "[1024, 3, 14, 14]" in message and "[768, 3, 16, 16]" in message
    assert str(path) in message and "python -m vssflow_core download clip" in message


def test_another_model_entirely_is_rejected(tmp_path):
    path = write_safetensors(tmp_path / "vocoder.safetensors", layout_shapes("vae"))
    with pytest.raises(WrongModelError, match="none of the tensors"):
        resolve("vocoder", local_path=path)


def test_truncated_safetensors_is_rejected(tmp_path):
    path = write_safetensors(tmp_path / "vae" / "diffusion_pytorch_model.safetensors", layout_shapes("vae"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptWeightsError) as info:
        resolve("vae", models_dir=tmp_path)
    message = str(info.value)
    assert "truncated" in message and "interrupted download" in message and str(path) in message
    path.write_bytes(data[:5])  # cut inside the 8-byte length prefix
    with pytest.raises(CorruptWeightsError, match="truncated"):
        verify_file(path, "vae")


def test_truncated_pytorch_archive_is_rejected(tmp_path):
    path = write_pickle(tmp_path / "rawnet3" / "model.pt", layout_shapes("rawnet3"), wrap="model")
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    with pytest.raises(CorruptWeightsError, match="truncated or damaged"):
        resolve("rawnet3", models_dir=tmp_path)


def test_git_lfs_pointer_and_empty_files_are_rejected(tmp_path):
    pointer = tmp_path / "model.pt"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:1ab2\nsize 65297133\n")
    with pytest.raises(CorruptWeightsError, match="Git LFS pointer"):
        verify_file(pointer, "rawnet3")
    empty = tmp_path / "empty.safetensors"
    empty.touch()
    with pytest.raises(CorruptWeightsError, match="empty"):
        verify_file(empty, "clip")


def test_config_of_another_model_is_rejected(tmp_path):
    folder = tmp_path / "vae"
    write_safetensors(folder / "diffusion_pytorch_model.safetensors", layout_shapes("vae"))
    (folder / "config.json").write_text(vae_config(latent_channels=4, in_channels=3))  # an image VAE
    with pytest.raises(WrongModelError, match="latent_channels is 4, expected 8"):
        resolve("vae", models_dir=tmp_path)
    (folder / "config.json").write_text(vae_config()[:20])
    with pytest.raises(CorruptWeightsError, match="not valid JSON"):
        resolve("vae", models_dir=tmp_path)


# --- download (hub mocked: the real one is never reachable in tests) ---------------------------------------------


def test_download_goes_to_the_models_folder(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, *, subfolder=None, revision=None, local_dir=None, cache_dir=None):
        calls.append((repo_id, subfolder, filename, revision))
        target = Path(local_dir) / (subfolder or "") / filename  # what the real local_dir download does
        if filename == "config.json":
            target.write_text(vae_config())
        else:
            write_safetensors(target, layout_shapes("vae"))
        return str(target)

    go_online(monkeypatch)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    result = resolve("vae", models_dir=tmp_path, download=True)
    assert result.origin == "download"
    assert result.weights == tmp_path / "vae" / "vae" / "diffusion_pytorch_model.safetensors"
    assert calls == [("cvssp/audioldm2", "vae", "diffusion_pytorch_model.safetensors", "main"),
                     ("cvssp/audioldm2", "vae", "config.json", "main")]
    # Next time it is found on disk, without asking the hub.
    calls.clear()
    assert resolve("vae", models_dir=tmp_path, download=True).origin == "models_dir" and not calls


def test_unreachable_hub_becomes_a_missing_weights_error(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def unreachable(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache")

    go_online(monkeypatch)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(MissingWeightsError) as info:
        resolve("rawnet3", models_dir=tmp_path, download=True)
    message = str(info.value)
    assert "Could not reach the Hugging Face hub" in message
    assert "https://huggingface.co/jungjee/RawNet3/resolve/main/model.pt" in message
    assert isinstance(info.value.__cause__, LocalEntryNotFoundError)


def test_download_of_a_wrong_file_is_rejected(tmp_path, monkeypatch):
    import huggingface_hub

    def fake_download(repo_id, filename, *, subfolder=None, revision=None, local_dir=None, cache_dir=None):
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"<html>rate limited</html>")
        return str(target)

    go_online(monkeypatch)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.raises(CorruptWeightsError, match="not a safetensors, PyTorch or TorchScript file"):
        resolve("clip", models_dir=tmp_path, download=True)


# --- the download command -----------------------------------------------------------------------------------------


def test_download_main_offline_fails_fast_with_the_command(tmp_path, capsys):
    start = time.perf_counter()
    status = download_main(["clip", "vae", "--models-dir", str(tmp_path)])
    assert time.perf_counter() - start < 2.0
    assert status == 1
    err = capsys.readouterr().err
    assert "clip: FAILED" in err and "vae: FAILED" in err and "HF_HUB_OFFLINE" in err
    assert f"python -m vssflow_core download clip --models-dir {tmp_path}" in err


def test_download_main_reports_files_already_present(tmp_path, capsys):
    write_safetensors(tmp_path / "clip" / "model.safetensors", layout_shapes("clip"))
    assert download_main(["clip", "--models-dir", str(tmp_path)]) == 0
    assert "clip: ok (in the models folder)" in capsys.readouterr().out


def test_download_main_all_list_and_usage_errors(tmp_path, capsys):
    assert download_main(["all", "--models-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert all(f"{name}: FAILED" in err for name in DOWNLOADABLE_INFERENCE_COMPONENTS)
    assert "stable_audio" not in err and "vssflow:" not in err
    assert download_main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "openai/clip-vit-base-patch16" in out and "no public weights" in out and "(gated)" in out
    assert download_main(["clap"]) == 2
    assert download_main([]) == 2
    assert download_main(["--help"]) == 0
