"""Helpers for the VSSFlow golden tensors (small official model, random weights)."""

from __future__ import annotations

import torch

from vssflow_core.weights.checkpoint import load_vssflow


def load_small_model(golden_dir, manifest):
    """The golden 2-layer model, loaded strictly. The head size is the one fact tensor shapes cannot tell."""
    head_dim = manifest["vssflow_small_weights"]["config"]["attention_head_dim"]
    return load_vssflow(golden_dir / "vssflow_small_weights.safetensors", head_dim=head_dim)


def small_conditions(model, io):
    return model.prepare_conditions(clip=io["video_feat"], synch=io["synch_feature"], phone_ids=io["phone_id"],
                                    lip=io["lip_feature"], speaker=io["ref_audio_ebd"])


def assert_close(actual, expected, rtol=1e-4, atol=1e-5):
    """The golden README's tolerance for forward outputs, relative to the stored tensor's scale."""
    scale = expected.abs().max().clamp_min(1.0)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * float(scale))
