"""Checkpoint I/O: official Lightning files in, safetensors out, and clear refusals of anything else."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import types
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from vssflow_core.convert import main as convert_main
from vssflow_core.flow.guidance import GuidedVelocity
from vssflow_core.weights.checkpoint import CheckpointError, load_vssflow, read_state_dict, split_components

from golden import load_small_model, small_conditions


@pytest.fixture(scope="module")
def small_weights(load_golden):
    return load_golden("vssflow_small_weights")


@pytest.fixture(scope="module")
def head_dim(golden_manifest):
    return golden_manifest["vssflow_small_weights"]["config"]["attention_head_dim"]


@pytest.fixture(scope="module")
def reference_velocity(golden_dir, golden_manifest, load_golden):
    io = load_golden("vssflow_small_io")
    model = load_small_model(golden_dir, golden_manifest)
    with torch.no_grad():
        return io, GuidedVelocity(model, small_conditions(model, io))(io["t_cfg"], io["x_t"])


def guided_velocity_of(model, io):
    with torch.no_grad():
        return GuidedVelocity(model, small_conditions(model, io))(io["t_cfg"], io["x_t"])


def lightning_checkpoint(state_dict: dict, extra_components: bool = True) -> dict:
    """What Lightning's Trainer saves: the state dict plus training state and hyper-parameters."""
    state = dict(state_dict)
    if extra_components:  # frozen parts of the worker ride along in the same state dict
        state["image_encoder.visual.class_embedding"] = torch.randn(8)
        state["vae.post_quant_conv.weight"] = torch.randn(8, 8, 1, 1)
        state["vocoder.mean"] = torch.randn(64)
    return {"state_dict": state, "epoch": 3, "global_step": 120, "optimizer_states": [], "lr_schedulers": [],
            "hyper_parameters": argparse.Namespace(base_learning_rate=4e-7, dit_num_layers=2)}


def test_lightning_ckpt_converts_and_loads_to_the_same_outputs(tmp_path, small_weights, head_dim, reference_velocity):
    io, expected = reference_velocity
    ckpt = tmp_path / "last.ckpt"
    torch.save(lightning_checkpoint(small_weights), ckpt)

    assert convert_main([str(ckpt), "-o", str(tmp_path / "converted"), "--head-dim", str(head_dim)]) == 0

    out = tmp_path / "converted"
    config = json.loads((out / "config.json").read_text())
    assert config["files"] == {"vssflow": "vssflow.safetensors", "clip": "clip_visual.safetensors",
                               "vae": "vae.safetensors", "vocoder": "vocoder.safetensors"}
    # frozen components are stored in their own native layouts
    assert set(load_file(str(out / "clip_visual.safetensors"))) == {"visual.class_embedding"}
    assert set(load_file(str(out / "vocoder.safetensors"))) == {"mean"}
    # the converted network needs no head size: its config travels in the file
    for source in (out, out / "vssflow.safetensors"):
        torch.testing.assert_close(guided_velocity_of(load_vssflow(source), io), expected, rtol=0, atol=0)
    # and the .ckpt itself loads directly too
    torch.testing.assert_close(guided_velocity_of(load_vssflow(ckpt, head_dim=head_dim), io), expected, rtol=0, atol=0)


def test_weights_load_straight_in_the_chosen_dtype(golden_dir, head_dim):
    model = load_vssflow(golden_dir / "vssflow_small_weights.safetensors", head_dim=head_dim, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not model.dit.time_proj.weight.requires_grad


def test_a_wrong_shape_is_named(tmp_path, small_weights, head_dim):
    bad = dict(small_weights)
    bad["vaflow.transformer_blocks.1.attn1.to_v.weight"] = torch.zeros(64, 32)
    torch.save({"state_dict": bad}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match=r"wrong shape: vaflow\.transformer_blocks\.1\.attn1\.to_v\.weight"):
        load_vssflow(tmp_path / "bad.ckpt", head_dim=head_dim)


def test_a_missing_key_is_named(tmp_path, small_weights, head_dim):
    bad = {k: v for k, v in small_weights.items() if k != "vaflow.transformer_blocks.0.norm2.bias"}
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=r"1 missing: vaflow\.transformer_blocks\.0\.norm2\.bias"):
        load_vssflow(tmp_path / "bad.safetensors", head_dim=head_dim)
    assert convert_main([str(tmp_path / "bad.safetensors"), "-o", str(tmp_path / "out"),
                         "--head-dim", str(head_dim)]) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_unexpected_key_is_named(tmp_path, small_weights, head_dim):
    bad = dict(small_weights)
    bad["vaflow.transformer_blocks.0.attn1.norm_q.weight"] = torch.zeros(16)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=r"1 unexpected: vaflow\.transformer_blocks\.0\.attn1\.norm_q\.weight"):
        load_vssflow(tmp_path / "bad.safetensors", head_dim=head_dim)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4)}, str(tmp_path / "sd.safetensors"))
    with pytest.raises(CheckpointError, match="belong to no VSSFlow component"):
        load_vssflow(tmp_path / "sd.safetensors")


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, small_weights):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"state_dict": dict(small_weights), "callbacks": Exploit()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.ckpt.*'posix\.system'.*could run code"):
        read_state_dict(tmp_path / "evil.ckpt")
    assert not marker.exists()
    assert convert_main([str(tmp_path / "evil.ckpt"), "-o", str(tmp_path / "out")]) == 1
    assert not marker.exists()


def test_config_objects_among_the_hyper_parameters_are_skipped_without_importing_them(tmp_path, small_weights,
                                                                                          monkeypatch):
    # Lightning stores hyper-parameters as omegaconf objects; reading the weights must not need (or run) omegaconf.
    fake = types.ModuleType("omegaconf.dictconfig")

    class DictConfig:  # pickles like the real one: a class plus its __dict__ state
        def __init__(self, content):
            self._content = content

    DictConfig.__module__ = "omegaconf.dictconfig"
    DictConfig.__qualname__ = "DictConfig"
    fake.DictConfig = DictConfig
    monkeypatch.setitem(sys.modules, "omegaconf", types.ModuleType("omegaconf"))
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", fake)
    torch.save({"state_dict": dict(small_weights), "hyper_parameters": DictConfig({"lr": 1e-4})}, tmp_path / "hp.ckpt")
    monkeypatch.delitem(sys.modules, "omegaconf.dictconfig")
    monkeypatch.delitem(sys.modules, "omegaconf")

    state, _ = read_state_dict(tmp_path / "hp.ckpt")
    assert set(state) == set(small_weights)


def test_a_truncated_safetensors_file_is_reported(tmp_path, golden_dir):
    data = (golden_dir / "vssflow_small_weights.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_vssflow(tmp_path / "cut.safetensors")


def test_a_truncated_ckpt_is_reported(tmp_path, small_weights):
    torch.save({"state_dict": dict(small_weights)}, tmp_path / "full.ckpt")
    data = (tmp_path / "full.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        read_state_dict(tmp_path / "cut.ckpt")


def test_converter_never_overwrites_without_being_asked(tmp_path, small_weights, head_dim):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": dict(small_weights)}, ckpt)
    out = tmp_path / "out"
    assert convert_main([str(ckpt), "-o", str(out), "--head-dim", str(head_dim)]) == 0
    before = (out / "vssflow.safetensors").stat().st_mtime_ns
    assert convert_main([str(ckpt), "-o", str(out), "--head-dim", str(head_dim)]) == 1
    assert (out / "vssflow.safetensors").stat().st_mtime_ns == before
    assert convert_main([str(ckpt), "-o", str(out), "--head-dim", str(head_dim), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "vssflow.safetensors"]  # no temporary leftovers


def test_split_routes_every_official_prefix():
    parts = split_components({"vaflow.proj_in.weight": torch.zeros(1), "cond_proj.0.weight": torch.zeros(1),
                              "image_encoder.visual.proj": torch.zeros(1), "vae.encoder.conv_in.weight": torch.zeros(1),
                              "vocoder.conv_pre.weight": torch.zeros(1)})
    assert set(parts["vssflow"]) == {"vaflow.proj_in.weight", "cond_proj.0.weight"}
    assert set(parts["clip"]) == {"visual.proj"}
    assert set(parts["vae"]) == {"encoder.conv_in.weight"}
    assert set(parts["vocoder"]) == {"conv_pre.weight"}


# ---------------------------------------------------------------------------------------------------------------------
# TorchScript archives (OpenAI CLIP's ViT-B-16.pt is one): read with a restricted unpickler, never torch.jit.load


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)
        self.block = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.BatchNorm1d(2))
        self.register_buffer("scale", torch.arange(2, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.proj(x.to(self.proj.weight.dtype)).float()) * self.scale


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace/save only build the fixture archive
def test_read_state_dict_reads_a_torchscript_archive(tmp_path):
    torch.manual_seed(0)
    module = _Tiny().eval()
    module.proj.half()  # mixed dtypes survive: fp16, fp32, fp64 and the int64 BatchNorm counter
    module.block[1].running_mean.uniform_()
    traced = torch.jit.trace(module, torch.zeros(2, 3))
    path = tmp_path / "tiny.pt"
    torch.jit.save(traced, str(path))

    state, metadata = read_state_dict(path)
    expected = module.state_dict()
    assert metadata == {}
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert state[key].dtype == value.dtype, key
        assert torch.equal(state[key], value), key


class _Exploit:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_torchscript_reader_refuses_arbitrary_globals(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"visual.conv1.weight": _Exploit(str(marker))}, protocol=2))
        archive.writestr("evil/code/__torch__.py", "")
        archive.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pt.*'(posix|nt)\.mkdir'.*could run code"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_damaged_torchscript_archive_is_reported(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.trace(_Tiny().eval(), torch.zeros(2, 3)), str(path))
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            if "/data/" not in info.filename:  # drop the tensor records
                dst.writestr(info, src.read(info))
    with pytest.raises(CheckpointError, match=r"cannot read .*damaged\.pt: the TorchScript archive is damaged"):
        read_state_dict(damaged)
