"""Lip features: AV-HuBERT Large last-layer features, 1024-d at 25 fps, one row per video frame (spec 7.3).

Running AV-HuBERT (and its dlib mouth-ROI preparation) is out of scope here. Two sources are supported:

* none: all-zero features, which is what the official in-the-wild ``infer.py`` feeds (``torch.zeros([B, 250, 1024])``)
  and what training used for clips without a face; ``lip_proj`` maps zeros to zeros, so the model relies on the
  other conditions;
* precomputed features from a ``.npy`` (the official ``get_video_feature.py`` saves ``[frames, 1024]`` float32 arrays)
  or a ``.safetensors`` file, validated and then cropped or zero-padded to the latent length, as the training data
  loader does.

The lip rate equals the latent rate (25 frames/s), so frame ``i`` of the features lines up with latent frame ``i``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import SEQUENCE, VSSFlowConfig

__all__ = ["LIP_FPS", "LIP_DIM", "zero_lip_features", "fit_lip_length", "validate_lip_features", "load_lip_features"]

LIP_FPS: float = SEQUENCE.latent_rate  # AV-HuBERT runs on 25 fps video, the latent rate
LIP_DIM: int = VSSFlowConfig.lip_dim  # AV-HuBERT Large width
_FLOAT_KINDS = "f"  # numpy kinds accepted: floating point only (ints would be frame indices or labels, not features)


def zero_lip_features(num_frames: int = SEQUENCE.latent_length, dim: int = LIP_DIM) -> Tensor:
    """``[num_frames, dim]`` zeros: the "no lip video" condition."""
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    return torch.zeros(num_frames, dim)


def fit_lip_length(features: Tensor, num_frames: int = SEQUENCE.latent_length) -> Tensor:
    """Crop the tail or zero-pad at the end to exactly ``num_frames`` rows (features start with the video)."""
    frames = features.shape[0]
    if frames >= num_frames:
        return features[:num_frames]
    return torch.cat([features, features.new_zeros(num_frames - frames, *features.shape[1:])])


def validate_lip_features(features: Tensor | np.ndarray, dim: int = LIP_DIM, source: str = "lip features") -> Tensor:
    """Check a ``[frames, dim]`` floating-point array of finite values and return it as a float32 tensor.

    A leading batch axis of size one (``[1, frames, dim]``) is accepted and dropped. Errors say what was found
    and what is expected, naming ``source`` (usually the file).
    """
    if isinstance(features, np.ndarray):
        if features.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(f"{source}: expected floating-point features, got dtype {features.dtype}")
        features = torch.from_numpy(np.ascontiguousarray(features))
    elif not isinstance(features, Tensor):
        raise TypeError(f"{source}: expected an array or tensor, got {type(features).__name__}")
    elif not features.is_floating_point():
        raise TypeError(f"{source}: expected floating-point features, got dtype {features.dtype}")
    if features.ndim == 3 and features.shape[0] == 1:
        features = features[0]
    if features.ndim != 2:
        raise ValueError(
            f"{source}: expected shape [frames, {dim}] (AV-HuBERT features at {LIP_FPS:g} fps), "
            f"got rank {features.ndim} shape {tuple(features.shape)}"
        )
    if features.shape[1] != dim:
        hint = " (is it [dim, frames]? transpose it)" if features.shape[0] == dim else ""
        raise ValueError(f"{source}: expected {dim} features per frame, got shape {tuple(features.shape)}{hint}")
    if features.shape[0] == 0:
        raise ValueError(f"{source}: has no frames")
    bad = ~torch.isfinite(features)
    if bad.any():
        rows = bad.any(dim=1).nonzero().flatten()
        raise ValueError(
            f"{source}: {int(bad.sum())} NaN/inf value(s) in {rows.numel()} frame(s), first at frame {int(rows[0])}"
        )
    return features.float()


def _read_array(path: Path, key: str | None) -> Tensor | np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        # allow_pickle=False: a feature file never needs Python objects, and unpickling would run code
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{path}: not a plain numeric .npy array ({err})") from err
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        if key is not None:
            if key not in tensors:
                raise KeyError(f"{path}: no tensor '{key}'; it holds {sorted(tensors)}")
            return tensors[key]
        if len(tensors) != 1:
            raise ValueError(f"{path}: holds {len(tensors)} tensors {sorted(tensors)}; say which one with key=")
        return next(iter(tensors.values()))
    raise ValueError(f"{path}: lip features must be a .npy or .safetensors file, got '{path.suffix}'")


def load_lip_features(
    path: str | Path,
    num_frames: int | None = SEQUENCE.latent_length,
    dim: int = LIP_DIM,
    key: str | None = None,
) -> Tensor:
    """Precomputed 25 fps lip features -> float32 ``[num_frames, dim]`` (cropped or zero-padded).

    ``num_frames=None`` keeps the file's length. ``key`` picks a tensor in a multi-tensor safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lip feature file not found: {path}")
    features = validate_lip_features(_read_array(path, key), dim=dim, source=str(path))
    return features if num_frames is None else fit_lip_length(features, num_frames)
