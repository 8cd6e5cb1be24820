"""The AudioLDM2 mel VAE: diffusers key layout, golden parity, the official 128-channel packing, strict loading."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from vssflow_core.codec.vae import (
    MelVAE,
    VAEConfig,
    load_vae,
    pack_latent,
    unpack_latent,
    vae_from_state_dict,
)
from vssflow_core.config import MEL, SEQUENCE, VSSFlowConfig
from vssflow_core.weights.checkpoint import CheckpointError

from golden import assert_matches_golden, full_checkpoint_shapes

IO_TENSORS = ("mel_in", "latent_mean", "latent_std", "packed", "mel_out")


@pytest.fixture(scope="module")
def golden(load_golden) -> dict[str, torch.Tensor]:
    return load_golden("vae_small")


@pytest.fixture(scope="module")
def weights(golden) -> dict[str, torch.Tensor]:
    return {k: v for k, v in golden.items() if k not in IO_TENSORS}


@pytest.fixture(scope="module")
def small_config(golden_manifest) -> VAEConfig:
    return VAEConfig.from_diffusers_config(golden_manifest["vae_small"]["config"])


@pytest.fixture(scope="module")
def vae(weights, small_config) -> MelVAE:
    return vae_from_state_dict(weights, small_config)


@pytest.fixture(scope="module")
def posterior(vae, golden):
    with torch.no_grad():
        return vae.encode(golden["mel_in"])


def assert_holds_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[k].to(v.dtype), v) for k, v in weights.items())


# ------------------------------------------------------------------------------------------------ configuration


def test_defaults_are_the_audioldm2_vae() -> None:
    config = VAEConfig()
    assert config.block_out_channels == (128, 256, 512) and config.layers_per_block == 2
    assert config.latent_channels == 8 and config.norm_num_groups == 32
    assert config.downsample_factor == SEQUENCE.latent_downsample
    # 8 channels x 16 frequency groups fill the flow's 128 channels
    assert config.latent_channels * MEL.n_mels // config.downsample_factor == VSSFlowConfig().latent_channels


def test_config_is_read_off_shapes(weights, small_config) -> None:
    # GroupNorm's group count is invisible in shapes and is passed in
    assert VAEConfig.from_state_dict(weights, norm_num_groups=small_config.norm_num_groups) == small_config


def test_diffusers_config_json_is_read_and_unsupported_settings_refused() -> None:
    audioldm2 = {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": [128, 256, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
        "in_channels": 1,
        "out_channels": 1,
        "latent_channels": 8,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "sample_size": 1024,
        "scaling_factor": 0.4110932946205139,
    }
    assert VAEConfig.from_diffusers_config(audioldm2) == VAEConfig()
    with pytest.raises(ValueError, match="act_fn"):
        VAEConfig.from_diffusers_config({**audioldm2, "act_fn": "gelu"})


def test_full_size_model_has_exactly_the_checkpoint_keys_and_shapes(golden_dir) -> None:
    with torch.device("meta"):
        model = MelVAE(VAEConfig())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = full_checkpoint_shapes(golden_dir, "vae.")
    assert len(expected) == 204
    assert list(ours.items()) == list(expected.items())


def test_full_size_config_is_read_off_the_checkpoint_shapes(golden_dir) -> None:
    shapes = full_checkpoint_shapes(golden_dir, "vae.")
    as_tensors = {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}
    assert VAEConfig.from_state_dict(as_tensors) == VAEConfig()
    assert vae_from_state_dict(as_tensors, device="meta").state_dict().keys() == shapes.keys()  # strict, no memory


# ------------------------------------------------------------------------------------------------ golden parity


def test_posterior_matches_golden(posterior, golden) -> None:
    assert posterior.mean.shape == golden["latent_mean"].shape
    assert_matches_golden(posterior.mean, golden["latent_mean"])
    assert_matches_golden(posterior.std, golden["latent_std"])


def test_decode_matches_golden(vae, golden) -> None:
    with torch.no_grad():
        mel = vae.decode(golden["latent_mean"])
    assert mel.shape == golden["mel_out"].shape
    assert_matches_golden(mel, golden["mel_out"])


def test_encode_accepts_front_end_output_without_channel_axis(vae, golden) -> None:
    mel = golden["mel_in"][:, :, :64]  # [B, 1, T, F], a short crop keeps the test fast
    with torch.no_grad():
        assert torch.equal(vae.encode(mel[:, 0]).mean, vae.encode(mel).mean)


def test_encode_refuses_sizes_the_downsampling_cannot_halve(vae) -> None:
    with pytest.raises(ValueError, match="multiples of 4"):
        vae.encode(torch.zeros(1, 1, 30, 64))


def test_posterior_sample_is_mean_plus_std_times_generator_noise(posterior) -> None:
    first = posterior.sample(torch.Generator().manual_seed(0))
    again = posterior.sample(torch.Generator().manual_seed(0))
    noise = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, again)
    torch.testing.assert_close(first, posterior.mean + posterior.std * noise)
    assert torch.equal(posterior.mode(), posterior.mean)


# ------------------------------------------------------------------------------------------------ packing


def test_packing_matches_golden(golden) -> None:
    assert torch.equal(pack_latent(golden["latent_mean"]), golden["packed"])
    assert torch.equal(unpack_latent(golden["packed"]), golden["latent_mean"])


def test_packed_channel_is_frequency_times_8_plus_vae_channel() -> None:
    latent = torch.randn(2, 8, 250, 16)
    packed = pack_latent(latent)
    assert packed.shape == (2, 128, 250)
    for c, f in ((0, 0), (3, 0), (0, 5), (7, 15)):
        assert torch.equal(packed[:, f * 8 + c], latent[:, c, :, f])


def test_pack_and_unpack_are_inverse() -> None:
    latent = torch.randn(1, 8, 25, 16)
    packed = torch.randn(3, 128, 25)
    assert torch.equal(unpack_latent(pack_latent(latent)), latent)
    assert torch.equal(pack_latent(unpack_latent(packed)), packed)


# ------------------------------------------------------------------------------------------------ loading


def test_wrong_shape_is_refused_naming_the_key(weights, small_config) -> None:
    broken = dict(weights)
    broken["decoder.mid_block.attentions.0.to_q.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"wrong shape: decoder\.mid_block\.attentions\.0\.to_q\.weight"):
        vae_from_state_dict(broken, small_config)
    # the same when the configuration is read off the (broken) shapes
    with pytest.raises(CheckpointError, match=r"wrong shape: decoder\.mid_block\.attentions\.0\.to_q\.weight"):
        vae_from_state_dict(broken, norm_num_groups=small_config.norm_num_groups)


def test_missing_and_unexpected_keys_are_listed(weights, small_config) -> None:
    broken = {k: v for k, v in weights.items() if k != "quant_conv.bias"}
    broken["encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"(?s)missing: quant_conv\.bias.*unexpected: encoder\.extra\.weight"):
        vae_from_state_dict(broken, small_config)


def test_loads_from_a_diffusers_pipeline_folder(tmp_path, weights, golden_manifest, small_config) -> None:
    # the cvssp/audioldm2 layout: <snapshot>/vae/{config.json, diffusion_pytorch_model.safetensors}
    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(golden_manifest["vae_small"]["config"]))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "diffusion_pytorch_model.safetensors"))
    for model in (load_vae(tmp_path), load_vae(folder)):
        assert model.config == small_config and not model.training
        assert_holds_weights(model, weights)


def test_pickled_weights_load_through_weights_only(tmp_path, weights, small_config) -> None:
    torch.save(weights, tmp_path / "diffusion_pytorch_model.bin")
    model = load_vae(tmp_path, small_config, dtype=torch.float64)
    assert next(model.parameters()).dtype == torch.float64
    assert_holds_weights(model, weights)


def test_missing_weights_file_is_reported(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model.safetensors"):
        load_vae(tmp_path)
