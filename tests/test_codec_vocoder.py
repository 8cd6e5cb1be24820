"""The AudioLDM2 HiFi-GAN vocoder: SpeechT5HifiGan key layout, golden parity, output length, strict loading."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from vssflow_core.codec.vocoder import HifiGanVocoder, VocoderConfig, load_vocoder, vocoder_from_state_dict
from vssflow_core.config import MEL, SEQUENCE
from vssflow_core.weights.checkpoint import CheckpointError

from golden import assert_matches_golden, full_checkpoint_shapes

IO_TENSORS = ("mel", "waveform")


@pytest.fixture(scope="module")
def golden(load_golden) -> dict[str, torch.Tensor]:
    return load_golden("hifigan_small")


@pytest.fixture(scope="module")
def weights(golden) -> dict[str, torch.Tensor]:
    return {k: v for k, v in golden.items() if k not in IO_TENSORS}


@pytest.fixture(scope="module")
def small_config(golden_manifest) -> VocoderConfig:
    return VocoderConfig.from_transformers_config(golden_manifest["hifigan_small"]["config"])


@pytest.fixture(scope="module")
def vocoder(weights, small_config) -> HifiGanVocoder:
    return vocoder_from_state_dict(weights, small_config)


@pytest.fixture(scope="module")
def short_mel(golden) -> torch.Tensor:
    """A 20-frame crop of the golden mel, for behaviour tests that need not run the full input."""
    return golden["mel"][:, :20]


def assert_holds_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())


# ------------------------------------------------------------------------------------------------ configuration


def test_defaults_are_the_audioldm2_vocoder() -> None:
    config = VocoderConfig()
    assert config.model_in_dim == MEL.n_mels and config.sampling_rate == SEQUENCE.sample_rate
    assert config.upsample_initial_channel == 1024 and config.upsample_rates == (5, 4, 2, 2, 2)
    assert config.hop_length == SEQUENCE.mel_hop_length
    assert not config.normalize_before and config.leaky_relu_slope == 0.1


def test_config_is_read_off_shapes(weights, small_config) -> None:
    assert VocoderConfig.from_state_dict(weights) == small_config


def test_transformers_config_json_is_read() -> None:
    audioldm2 = {
        "architectures": ["SpeechT5HifiGan"],
        "model_type": "hifigan",
        "initializer_range": 0.01,
        "leaky_relu_slope": 0.1,
        "model_in_dim": 64,
        "normalize_before": False,
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "resblock_kernel_sizes": [3, 7, 11],
        "sampling_rate": 16000,
        "upsample_initial_channel": 1024,
        "upsample_kernel_sizes": [16, 16, 8, 4, 4],
        "upsample_rates": [5, 4, 2, 2, 2],
        "torch_dtype": "float32",
    }
    assert VocoderConfig.from_transformers_config(audioldm2) == VocoderConfig()


def test_full_size_model_has_exactly_the_checkpoint_keys_and_shapes(golden_dir) -> None:
    with torch.device("meta"):
        model = HifiGanVocoder(VocoderConfig())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = full_checkpoint_shapes(golden_dir, "vocoder.")
    assert len(expected) == 196
    assert list(ours.items()) == list(expected.items())


def test_full_size_config_is_read_off_the_checkpoint_shapes(golden_dir) -> None:
    shapes = full_checkpoint_shapes(golden_dir, "vocoder.")
    as_tensors = {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}
    assert VocoderConfig.from_state_dict(as_tensors) == VocoderConfig()
    assert vocoder_from_state_dict(as_tensors, device="meta").state_dict().keys() == shapes.keys()  # strict, no memory


# ------------------------------------------------------------------------------------------------ golden parity


def test_waveform_matches_golden(vocoder, golden) -> None:
    with torch.no_grad():
        waveform = vocoder(golden["mel"])
    assert waveform.shape == golden["waveform"].shape
    assert_matches_golden(waveform, golden["waveform"])


def test_output_is_160_samples_per_frame_plus_transposed_conv_overhang(vocoder, golden) -> None:
    frames = golden["mel"].shape[1]
    assert golden["waveform"].shape[1] == vocoder.num_samples(frames) == frames * SEQUENCE.mel_hop_length + 32
    with torch.device("meta"):
        assert HifiGanVocoder().num_samples(SEQUENCE.mel_frames) == 160_032  # trimmed to 160 000 by the caller


def test_unbatched_mel_gives_unbatched_waveform(vocoder, short_mel) -> None:
    with torch.no_grad():
        torch.testing.assert_close(vocoder(short_mel[0]), vocoder(short_mel)[0])


def test_normalize_before_standardises_with_stored_statistics(weights, small_config, short_mel) -> None:
    mean, scale = torch.linspace(-1, 1, small_config.model_in_dim), torch.linspace(0.5, 2, small_config.model_in_dim)
    normalising = vocoder_from_state_dict(
        {**weights, "mean": mean, "scale": scale},
        dataclasses.replace(small_config, normalize_before=True),
    )
    plain = vocoder_from_state_dict(weights, small_config)
    with torch.no_grad():
        torch.testing.assert_close(normalising(short_mel), plain((short_mel - mean) / scale))


# ------------------------------------------------------------------------------------------------ loading


def test_wrong_shape_is_refused_naming_the_key(weights, small_config) -> None:
    broken = dict(weights)
    broken["resblocks.4.convs2.1.weight"] = torch.zeros(2, 2, 2)
    with pytest.raises(CheckpointError, match=r"wrong shape: resblocks\.4\.convs2\.1\.weight"):
        vocoder_from_state_dict(broken, small_config)


def test_missing_and_unexpected_keys_are_listed(weights, small_config) -> None:
    broken = {k: v for k, v in weights.items() if k != "conv_post.bias"}
    broken["conv_post.weight_g"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"(?s)missing: conv_post\.bias.*unexpected: conv_post\.weight_g"):
        vocoder_from_state_dict(broken, small_config)


def test_loads_from_a_transformers_folder(tmp_path, weights, golden_manifest, small_config) -> None:
    # the cvssp/audioldm2 layout: <snapshot>/vocoder/{config.json, model.safetensors}
    folder = tmp_path / "vocoder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(golden_manifest["hifigan_small"]["config"]))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "model.safetensors"))
    for model in (load_vocoder(tmp_path), load_vocoder(folder)):
        assert model.config == small_config and not model.training
        assert_holds_weights(model, weights)


def test_pickled_weights_load_through_weights_only(tmp_path, weights, golden_manifest, small_config) -> None:
    (tmp_path / "config.json").write_text(json.dumps(golden_manifest["hifigan_small"]["config"]))
    torch.save(weights, tmp_path / "pytorch_model.bin")
    model = load_vocoder(tmp_path)
    assert model.config == small_config
    assert_holds_weights(model, weights)


def test_missing_weights_file_is_reported(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_vocoder(tmp_path)
