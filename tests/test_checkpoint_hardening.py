"""Hostile and careless weights files are refused from their headers, with our own message, before anything big is
allocated; files that are fine but oddly named load.

Crafted files are small: a zero-stride tensor claiming 2 GB over 4 stored bytes, a 2 GB zip bomb in a few MB, a
legacy pickle with the same trick.  Whether a refusal allocated anything is measured as the peak resident memory of
a fresh process (``ru_maxrss``), which no earlier test can hide; the bound is generous, the crafted sizes are not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tiny_models import build_tiny_components
from vssflow_core.demo import DEMO_CHECKPOINT, FRONTEND_FILE, DemoFrontendConfig
from vssflow_core.demo.frontends import FRONTEND_LIMITS
from vssflow_core.generate import main as generate_main
from vssflow_core.video.synthetic import make_counter_video
from vssflow_core.weights.checkpoint import CONFIG_METADATA_KEY, CheckpointError, load_vssflow, read_state_dict
from vssflow_core.weights.formats import MAX_EXPANSION
from vssflow_core.weights.hub import CorruptWeightsError, resolve

REPO_ROOT = Path(__file__).resolve().parents[1]
CLAIMED = 2 * 10**9  # bytes each crafted file claims
PEAK_BOUND = 300 * 2**20  # bytes a refusal may add to a process's peak memory (importing torch costs more)


# --------------------------------------------------------------------------------------------------------------------
# Crafted files
# --------------------------------------------------------------------------------------------------------------------


class _Buffer(torch.nn.Module):
    def __init__(self, values: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w


def torchscript_archive(path: Path, values: torch.Tensor) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated; it only builds the fixture
        torch.jit.script(_Buffer(values)).save(str(path))
    return path


def zero_stride(numel: int) -> torch.Tensor:
    return torch.zeros(1).expand(numel)  # one stored float, ``numel`` once materialised


def zip_bomb(path: Path) -> Path:
    """A TorchScript archive whose one tensor record is CLAIMED bytes of zeros, deflated to a few MB."""
    small = torchscript_archive(path.with_suffix(".small"), torch.zeros(4))
    chunk = bytes(2**24)
    with zipfile.ZipFile(small) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            if info.filename.endswith("/data/0"):
                with dst.open(info.filename, "w") as out:
                    for _ in range(CLAIMED // len(chunk)):
                        out.write(chunk)
            else:
                dst.writestr(info, src.read(info))
    small.unlink()
    return path


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("crafted")
    numel = CLAIMED // 4
    paths = {
        "torchscript zero stride": torchscript_archive(folder / "clip.pt", zero_stride(numel)),
        "torch.save zero stride": folder / "state.pt",
        "legacy zero stride": folder / "legacy.pt",
    }
    torch.save({"w": zero_stride(numel)}, paths["torch.save zero stride"])
    torch.save({"w": zero_stride(numel)}, paths["legacy zero stride"], _use_new_zipfile_serialization=False)
    return paths


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return zip_bomb(tmp_path_factory.mktemp("bomb") / "ViT-B-16.pt")


PROBE = """
import resource, sys, torch
from vssflow_core.weights.checkpoint import CheckpointError, read_state_dict
from vssflow_core.weights.hub import WeightsVerificationError, resolve
read_state_dict(sys.argv[1])  # a good file first: whatever reading costs anyway is in the baseline
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for path in sys.argv[2:]:
    for read in (lambda: read_state_dict(path, dtype=torch.bfloat16), lambda: resolve("clip", local_path=path)):
        try:
            read()
            print("LOADED", path)
        except (CheckpointError, WeightsVerificationError) as exc:
            print("REFUSED", str(exc).replace(chr(10), " "))
print("GROWTH", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline)
"""


def refusals_and_peak_growth(good: Path, files: list[Path]) -> tuple[list[str], int]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(good), *map(str, files)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    return [line for line in lines if not line.startswith("GROWTH")], int(lines[-1].split()[1])


def test_crafted_sizes_are_refused_from_the_headers_without_allocating(crafted, bomb, tmp_path):
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.zeros(4)}, str(good))
    files = [*crafted.values(), bomb]
    lines, growth = refusals_and_peak_growth(good, files)
    assert len(lines) == 2 * len(files)  # each file through the loaders' reader and through the resolver's check
    assert all(line.startswith("REFUSED") for line in lines), lines
    for line in lines[:6]:  # the zero-stride tensors: named, with their shape and strides
        assert "'w'" in line and "[500000000]" in line and "zero strides [0]" in line and "2.0 GB" in line, line
        assert f"never loads into more than {MAX_EXPANSION}x its size" in line
    for line in lines[6:]:
        assert "its zip directory declares 2.0 GB of contents (a zip bomb?)" in line and "damaged:" not in line, line
    assert growth < PEAK_BOUND, f"refusing grew the peak memory by {growth / 2**20:.0f} MiB"


def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path):
    path = torchscript_archive(tmp_path / "outside.pt", torch.zeros(4))
    patched = tmp_path / "patched.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(patched, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):  # size (4,) -> (5,) over the same 4 stored floats
                data = data.replace(b"K\x00(K\x04t(K\x01t", b"K\x00(K\x05t(K\x01t", 1)  # offset, size, stride
            dst.writestr(info, data)
    with pytest.raises(CheckpointError, match=r"tensor 'w' \(shape \[5\], strides \[1\]\) reaches element 5 of a "
                                              r"storage of 4"):
        read_state_dict(patched)


def test_a_tensor_hidden_deep_in_the_pickle_still_counts(tmp_path):
    nested = {"w": zero_stride(CLAIMED // 4)}
    for _ in range(40):  # deeper than any name walk goes
        nested = {"inner": nested}
    torch.save(nested, tmp_path / "deep.pt")
    with pytest.raises(CheckpointError, match="its tensors would take 2.0 GB once loaded"):
        read_state_dict(tmp_path / "deep.pt")


def test_ordinary_views_and_small_expanded_buffers_still_load(tmp_path):
    shared = torch.randn(6, 4)
    path = tmp_path / "views.pt"
    torch.save({"a": shared, "b": shared[2:], "c": shared.t(), "mask": torch.ones(1).expand(1000)}, path)
    tensors, _ = read_state_dict(path)
    torch.testing.assert_close(tensors["c"], shared.t())
    assert tensors["mask"].shape == (1000,)


# --------------------------------------------------------------------------------------------------------------------
# What the file is, from its bytes
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_components(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("name", ["vssflow.sft", "vssflow.SAFETENSORS", "vssflow.bin"])
def test_safetensors_is_recognised_by_its_bytes_whatever_its_name(tiny, tmp_path, name):
    renamed = tmp_path / name
    shutil.copy(tiny["checkpoint"], renamed)
    loaded, expected = load_vssflow(renamed).state_dict(), load_vssflow(tiny["checkpoint"]).state_dict()
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected)


def special_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    fifo = tmp_path / "weights.safetensors"
    os.mkfifo(fifo)
    return {"fifo": (fifo, "named pipe"), "device": (Path("/dev/urandom"), "a device"),
            "proc": (Path("/proc/self/status"), "virtual file")}


@pytest.mark.skipif(not Path("/proc/self/status").exists() or not hasattr(os, "mkfifo"), reason="Linux files")
@pytest.mark.parametrize("kind", ["fifo", "device", "proc"])
def test_special_files_are_named_for_what_they_are(tmp_path, kind):
    path, what = special_files(tmp_path)[kind]
    with pytest.raises(CheckpointError, match=f"cannot read {re.escape(str(path))}: .*{what}"):
        read_state_dict(path)
    with pytest.raises(CorruptWeightsError, match=what) as info:
        resolve("clip", local_path=path)
    assert "empty" not in str(info.value)


# --------------------------------------------------------------------------------------------------------------------
# Tensors and configuration that cannot be this model's
# --------------------------------------------------------------------------------------------------------------------


def rewritten(tiny: dict[str, Path], path: Path, dtype: torch.dtype | None = None, **config_changes) -> Path:
    """The tiny network's file with one float tensor cast to ``dtype`` and/or its stored configuration edited."""
    with safe_open(str(tiny["checkpoint"]), "pt") as f:
        metadata = dict(f.metadata())
    tensors = load_file(str(tiny["checkpoint"]))
    if dtype is not None:
        key = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
        tensors[key] = tensors[key].to(dtype)
    config = {**json.loads(metadata[CONFIG_METADATA_KEY]), **config_changes}
    save_file(tensors, str(path), metadata={CONFIG_METADATA_KEY: json.dumps(config)})
    return path


BAD_NETWORKS = {
    "int8 tensor": ({"dtype": torch.int8}, r"(?s)wrong type: .*checkpoint int8 vs model float32.*quantised"),
    "bool tensor": ({"dtype": torch.bool}, r"wrong type: .*checkpoint bool vs model float32"),
    "string in the config": ({"num_layers": "two"}, r"'num_layers' in its 'vssflow_config' metadata is 'two'; "
                                                    r"expected a positive whole number"),
    "absurd layer count": ({"num_layers": 10**6}, r"num_layers is 1000000 but the tensors say 1"),
    "negative width": ({"clip_dim": -3}, r"'clip_dim' .* is -3; expected a positive whole number"),
}


@pytest.mark.parametrize("case", list(BAD_NETWORKS))
def test_network_files_that_cannot_be_this_model_are_refused_by_name(tiny, tmp_path, case):
    changes, message = BAD_NETWORKS[case]
    with pytest.raises(CheckpointError, match=message):
        load_vssflow(rewritten(tiny, tmp_path / "bad.safetensors", **changes))


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_counter_video(tmp_path_factory.mktemp("video") / "clip.mp4", 25, 25)


def run_cli(video: Path, checkpoint: Path, tiny: dict[str, Path], out: Path, capsys) -> str:
    args = ["--video", str(video), "-o", str(out / "result.mp4"), "--device", "cpu", "-q", "--solver", "euler",
            "--steps", "1", "--models-dir", str(out / "no_models"), "--checkpoint", str(checkpoint)]
    if not checkpoint.is_dir():
        args += [arg for name in ("clip", "synchformer", "vae", "vocoder") for arg in (f"--{name}", str(tiny[name]))]
    assert generate_main(args) == 1
    assert not (out / "result.mp4").exists()
    return capsys.readouterr().err


@pytest.mark.parametrize("case", ["bool tensor", "string in the config"])
def test_the_command_line_prints_one_error_line_for_a_bad_network_file(tiny, video, tmp_path, capsys, case):
    changes, message = BAD_NETWORKS[case]
    err = run_cli(video, rewritten(tiny, tmp_path / "bad.safetensors", **changes), tiny, tmp_path, capsys)
    assert err.startswith("error: ") and "Traceback" not in err


# --------------------------------------------------------------------------------------------------------------------
# The demo's frontend.json
# --------------------------------------------------------------------------------------------------------------------


BAD_FRONTENDS = {
    "patch": (0, "'patch' is 0; it must be a whole number from 1 to 16"),
    "griffin_lim_iters": (1e9, "'griffin_lim_iters' is 1000000000.0; it must be a whole number from 1 to 1000"),
    "clip_grid": (2.5, "'clip_grid' is 2.5; it must be a whole number from 1 to 64"),
    "mel_std": (0, "'mel_std' is 0; it must be a number from 0.001 to 100.0"),
    "deblock": ("yes", "'deblock' is 'yes'; it must be true or false"),
    "n_mels": (30, r"'n_mels' \(30\) must be a multiple of 'patch' \(4\)"),
}


def demo_copy(tmp_path: Path, **changes) -> Path:
    folder = tmp_path / "demo"
    shutil.copytree(DEMO_CHECKPOINT, folder)
    values = json.loads((folder / FRONTEND_FILE).read_text())
    (folder / FRONTEND_FILE).write_text(json.dumps({**values, **changes}))
    return folder


@pytest.mark.parametrize("key", list(BAD_FRONTENDS))
def test_frontend_values_outside_their_range_are_refused_naming_key_and_range(tmp_path, key):
    value, message = BAD_FRONTENDS[key]
    folder = demo_copy(tmp_path, **{key: value})
    with pytest.raises(ValueError, match=message):
        DemoFrontendConfig.read(folder / FRONTEND_FILE)


def test_every_frontend_field_has_a_range_and_the_shipped_values_are_inside():
    assert set(FRONTEND_LIMITS) == set(DemoFrontendConfig.__dataclass_fields__)
    DemoFrontendConfig.read(DEMO_CHECKPOINT / FRONTEND_FILE)
    DemoFrontendConfig.from_dict(json.loads(DemoFrontendConfig().to_json()))


@pytest.mark.parametrize("key", ["patch", "griffin_lim_iters"])
def test_the_command_line_refuses_a_bad_frontend_json_in_one_line(tiny, video, tmp_path, capsys, key):
    value, message = BAD_FRONTENDS[key]
    err = run_cli(video, demo_copy(tmp_path, **{key: value}), tiny, tmp_path, capsys)
    assert err.startswith("error: ") and FRONTEND_FILE in err and message in err and "Traceback" not in err
