"""Helpers shared by the parity tests against ``../shared/golden`` (tensors from the official code)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vssflow_core.weights.checkpoint import load_vssflow


def assert_matches_golden(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5):
    """The golden README's tolerance for forward outputs: rtol 1e-4, atol 1e-5 of the stored tensor's scale."""
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * expected.abs().max().item())


def full_checkpoint_shapes(golden_dir: Path, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official full-size checkpoint's entries under ``prefix`` (stripped), in checkpoint order."""
    shapes = {}
    for line in (golden_dir / "vssflow_state_dict_full.txt").read_text().splitlines():
        if line.startswith(prefix) and not line.startswith("#") and line.strip():
            key, shape, _ = line.split("\t")
            shapes[key[len(prefix):]] = tuple(json.loads(shape))
    return shapes


def load_small_model(golden_dir, manifest):
    """The golden 2-layer VSSFlow, loaded strictly. The head size is the one fact tensor shapes cannot tell."""
    head_dim = manifest["vssflow_small_weights"]["config"]["attention_head_dim"]
    return load_vssflow(golden_dir / "vssflow_small_weights.safetensors", head_dim=head_dim)


def small_conditions(model, io):
    return model.prepare_conditions(clip=io["video_feat"], synch=io["synch_feature"], phone_ids=io["phone_id"],
                                    lip=io["lip_feature"], speaker=io["ref_audio_ebd"])
