"""RawNet3 speaker encoder: checkpoint layout, strict loading and parity with the official code's outputs."""

from __future__ import annotations

import pytest
import torch

from vssflow_core.encoders.rawnet3 import RawNet3, RawNet3Config, load_rawnet3, load_rawnet3_state_dict
from vssflow_core.weights.checkpoint import CheckpointError

GOLDEN = "rawnet3_small"
IO_KEYS = ("waveform_3s", "embedding")  # stored next to the weights in the golden file


@pytest.fixture(scope="module")
def golden(load_golden) -> tuple[dict, torch.Tensor, torch.Tensor]:
    tensors = dict(load_golden(GOLDEN))
    waveform, embedding = (tensors.pop(k) for k in IO_KEYS)
    return tensors, waveform, embedding


@pytest.fixture(scope="module")
def small_model(golden) -> RawNet3:
    return load_rawnet3(golden[0])


def test_config_read_off_the_checkpoint_matches_the_manifest(golden, golden_manifest):
    expected = golden_manifest[GOLDEN]["config"]
    config = RawNet3Config.from_state_dict(golden[0])
    assert config.channels == expected["C"]
    assert config.model_scale == expected["model_scale"]
    assert config.context == expected["context"]
    assert config.summed == expected["summed"]
    assert config.n_out == expected["nOut"]
    assert config.encoder_type == expected["encoder_type"]
    assert config.sinc_stride == expected["sinc_stride"]
    assert config.log_sinc == expected["log_sinc"]
    assert config.norm_sinc == expected["norm_sinc"]
    assert config.out_bn == expected["out_bn"]


def test_state_dict_names_and_shapes_match_the_checkpoint_exactly(golden, small_model):
    weights = golden[0]
    ours = small_model.state_dict()
    assert sorted(ours) == sorted(weights)
    assert all(ours[k].shape == weights[k].shape for k in weights)


def test_parity_with_official_embedding(golden, small_model):
    _, waveform, embedding = golden
    with torch.no_grad():
        out = small_model(waveform)
    assert out.shape == embedding.shape
    torch.testing.assert_close(out, embedding, rtol=1e-4, atol=1e-5)


def test_computed_buffers_equal_the_stored_ones(golden):
    """Pre-emphasis kernel, half Hamming window and time axis are derived, not learned: a fresh model must
    reproduce what the checkpoint stores (and the mel-spaced band initialisation, which the golden kept)."""
    weights = golden[0]
    fresh = RawNet3(RawNet3Config.from_state_dict(weights)).state_dict()
    for key in (
        "preprocess.0.flipped_filter",
        "conv1.filterbank.window_",
        "conv1.filterbank.n_",
        "conv1.filterbank.low_hz_",
        "conv1.filterbank.band_hz_",
    ):
        torch.testing.assert_close(fresh[key], weights[key], rtol=1e-5, atol=1e-5, msg=key)


def test_loads_released_model_pt_layout(golden, tmp_path):
    """The released model.pt is a pickled {"model": state_dict}; it must load through weights_only unpickling."""
    weights, waveform, embedding = golden
    path = tmp_path / "model.pt"
    torch.save({"model": weights, "optimizer": {}}, path)
    model = load_rawnet3(path)
    with torch.no_grad():
        torch.testing.assert_close(model(waveform[:1]), embedding[:1], rtol=1e-4, atol=1e-5)


def test_wrapped_state_dicts_load(golden):
    """{"model": ...} payloads and the voxceleb_trainer wrapper prefix ("__S__.") are unwrapped."""
    weights = golden[0]
    for payload in ({"model": weights}, {f"__S__.{k}": v for k, v in weights.items()}):
        assert sorted(load_rawnet3(payload).state_dict()) == sorted(weights)


class _NotATensor:  # anything a weights_only unpickler must refuse
    pass


def test_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": _NotATensor()}, path)
    with pytest.raises(CheckpointError):
        load_rawnet3(path)


def test_safetensors_file_loads(golden, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "rawnet3.safetensors"
    save_file(golden[0], str(path))
    assert load_rawnet3(path).config == RawNet3Config.from_state_dict(golden[0])


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda sd: sd.pop("layer2.convs.3.weight"), ["missing", "layer2.convs.3.weight"]),
        (lambda sd: sd.__setitem__("layer9.weight", torch.zeros(1)), ["unexpected", "layer9.weight"]),
        (
            lambda sd: sd.__setitem__("fc6.bias", torch.zeros(sd["fc6.bias"].shape[0] + 1)),
            ["mis-shaped", "fc6.bias"],
        ),
    ],
)
def test_strict_loading_names_the_offending_keys(golden, edit, words):
    weights = dict(golden[0])
    edit(weights)
    model = RawNet3(RawNet3Config.from_state_dict(golden[0]))
    with pytest.raises(ValueError) as err:
        load_rawnet3_state_dict(model, weights)
    assert all(w in str(err.value) for w in words)


def test_batchnorm_counters_are_optional(golden):
    weights = {k: v for k, v in golden[0].items() if not k.endswith("num_batches_tracked")}
    model = load_rawnet3(weights)
    with torch.no_grad():
        torch.testing.assert_close(model(golden[1]), golden[2], rtol=1e-4, atol=1e-5)


def test_full_size_model_has_the_released_layout(golden):
    """The released model (C=1024) has the small golden model's names with the widths of RawNet3's definition."""
    with torch.device("meta"):
        model = RawNet3()
    state = model.state_dict()
    assert all(t.device.type == "meta" for t in state.values())
    assert sorted(state) == sorted(golden[0])

    c, scale, n_out = 1024, 8, 256
    width = c // scale
    expected = {
        "preprocess.0.flipped_filter": (1, 1, 2),
        "conv1.filterbank.low_hz_": (c // 8, 1),  # C//4 filters: half cosine, half sine, one band per pair
        "conv1.filterbank.n_": (1, 125),  # half of the 251-tap kernel
        "bn1.weight": (c // 4,),
        "layer1.conv1.weight": (c, c // 4, 1),
        "layer1.residual.0.weight": (c, c // 4, 1),
        "layer1.convs.6.weight": (width, width, 3),
        "layer1.afms.fc.weight": (c, c),
        "layer2.conv1.weight": (c, c, 1),
        "layer3.conv3.weight": (c, c, 1),
        "layer4.weight": (1536, 3 * c, 1),
        "attention.0.weight": (128, 3 * 1536, 1),
        "attention.3.weight": (1536, 128, 1),
        "bn5.running_var": (2 * 1536,),
        "fc6.weight": (n_out, 2 * 1536),
        "bn6.weight": (n_out,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert RawNet3Config.from_state_dict(state) == RawNet3Config()
    # RawNet3 is reported at about 16.3 M parameters
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(16.3e6, rel=0.01)


def test_half_precision_backbone_keeps_float32_frontend(golden, small_model):
    model = load_rawnet3(golden[0], dtype=torch.bfloat16)
    with torch.no_grad():
        out = model(golden[1])
    assert out.dtype == torch.bfloat16
    reference = golden[2]
    cos = torch.nn.functional.cosine_similarity(out.float(), reference, dim=-1)
    assert (cos > 0.99).all()
