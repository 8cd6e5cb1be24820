"""The network's shape: built from one config, and the config read back from any checkpoint's tensor shapes."""

from __future__ import annotations

import pytest
import torch

from vssflow_core.config import SEQUENCE, VSSFlowConfig
from vssflow_core.model.vssflow import VSSFlow
from vssflow_core.weights.checkpoint import to_official_keys

from golden import full_checkpoint_shapes

NETWORK_PREFIXES = ("vaflow.", "lip_proj.", "synch_proj.", "ref_proj.", "cond_proj.", "phone_embedding.")


def meta_model(cfg: VSSFlowConfig = VSSFlowConfig()) -> VSSFlow:
    with torch.device("meta"):
        return VSSFlow(cfg)


def test_full_size_model_has_exactly_the_official_network_keys_and_shapes(golden_dir):
    expected = {k: s for k, s in full_checkpoint_shapes(golden_dir).items() if k.startswith(NETWORK_PREFIXES)}
    ours = {k: tuple(v.shape) for k, v in to_official_keys(meta_model().state_dict()).items()}
    assert ours == expected


def test_full_size_dit_has_the_official_parameter_count():
    model = meta_model()
    assert sum(p.numel() for p in model.dit.parameters()) == 453_073_024
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 463_565_056


def test_fourier_time_weights_are_frozen():
    assert not meta_model().dit.time_proj.weight.requires_grad


def test_default_config_is_the_official_final_model():
    cfg = VSSFlowConfig()
    assert (cfg.in_channels, cfg.width, cfg.num_layers, cfg.num_heads, cfg.num_kv_heads) == (1952, 1536, 10, 24, 12)
    assert cfg.cond_channels == 1824 and cfg.rotary_dim == 32
    assert SEQUENCE.latent_length == 250 and SEQUENCE.clip_frames == 100 and SEQUENCE.synch_segments == 30


@pytest.mark.parametrize("num_layers", [5, 10, 15])
def test_config_is_read_off_the_tensor_shapes_of_official_size_ablations(num_layers):
    cfg = VSSFlowConfig(num_layers=num_layers)
    state = meta_model(cfg).state_dict()
    assert VSSFlowConfig.from_state_dict(state) == cfg


def test_config_inference_recovers_every_channel_split():
    cfg = VSSFlowConfig(latent_channels=64, lip_channels=48, phone_channels=8, synch_channels=24, context_dim=96,
                        clip_dim=40, speaker_dim=12, lip_dim=20, synch_dim=28, phone_vocab=80, num_layers=3,
                        num_heads=4, head_dim=16, num_kv_heads=6, time_proj_dim=32, ff_mult=2)
    assert VSSFlowConfig.from_state_dict(meta_model(cfg).state_dict(), head_dim=16) == cfg


def test_a_head_size_that_does_not_divide_the_width_is_reported():
    state = meta_model(VSSFlowConfig(num_heads=3, head_dim=20, num_kv_heads=1, context_dim=20)).state_dict()
    with pytest.raises(ValueError, match="head size 64 does not divide"):
        VSSFlowConfig.from_state_dict(state)


def test_config_round_trips_through_json():
    cfg = VSSFlowConfig(num_layers=5)
    import json

    assert VSSFlowConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ValueError, match="unknown VSSFlow config fields"):
        VSSFlowConfig.from_dict({"num_layer": 3})
