"""Lip features: the zero default and validated precomputed AV-HuBERT features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vssflow_core.config import SEQUENCE, VSSFlowConfig
from vssflow_core.encoders.lip import (
    LIP_DIM,
    LIP_FPS,
    fit_lip_length,
    load_lip_features,
    validate_lip_features,
    zero_lip_features,
)

FRAMES = SEQUENCE.latent_length


def test_rate_and_width_come_from_the_config():
    assert LIP_FPS == SEQUENCE.latent_rate == 25
    assert LIP_DIM == VSSFlowConfig.lip_dim == 1024
    assert FRAMES == round(SEQUENCE.duration_sec * LIP_FPS)


def test_default_is_all_zeros_for_the_latent_length():
    z = zero_lip_features()
    assert z.shape == (FRAMES, LIP_DIM) and z.dtype == torch.float32 and not z.any()


@pytest.mark.parametrize("frames", [FRAMES - 37, FRAMES, FRAMES + 60])
def test_npy_features_are_cropped_or_zero_padded(tmp_path, frames):
    features = np.random.default_rng(frames).standard_normal((frames, LIP_DIM)).astype(np.float32)
    path = tmp_path / "lip.npy"
    np.save(path, features)
    out = load_lip_features(path)
    assert out.shape == (FRAMES, LIP_DIM) and out.dtype == torch.float32
    kept = min(frames, FRAMES)
    np.testing.assert_array_equal(out[:kept].numpy(), features[:kept])
    assert not out[kept:].any()


def test_length_can_be_kept_or_chosen(tmp_path):
    features = np.ones((40, LIP_DIM), dtype=np.float16)
    path = tmp_path / "lip.npy"
    np.save(path, features)
    assert load_lip_features(path, num_frames=None).shape == (40, LIP_DIM)
    assert load_lip_features(path, num_frames=75).shape == (75, LIP_DIM)
    assert load_lip_features(path).dtype == torch.float32


def test_safetensors_single_tensor_or_by_key(tmp_path):
    lip = torch.randn(1, 30, LIP_DIM)  # a leading batch of one is accepted
    single, multi = tmp_path / "one.safetensors", tmp_path / "many.safetensors"
    save_file({"lip_feature": lip}, str(single))
    save_file({"lip_feature": lip, "other": torch.zeros(3)}, str(multi))
    torch.testing.assert_close(load_lip_features(single, num_frames=None), lip[0])
    torch.testing.assert_close(load_lip_features(multi, num_frames=30, key="lip_feature"), lip[0])
    with pytest.raises(ValueError, match="key="):
        load_lip_features(multi)
    with pytest.raises(KeyError, match="other"):
        load_lip_features(multi, key="missing")


def test_fit_lip_length_works_on_tensors():
    x = torch.randn(5, 4)
    assert torch.equal(fit_lip_length(x, 3), x[:3])
    assert torch.equal(fit_lip_length(x, 7)[:5], x) and not fit_lip_length(x, 7)[5:].any()


@pytest.mark.parametrize(
    "array, error, match",
    [
        (np.zeros((100, 768), np.float32), ValueError, "1024 features per frame"),
        (np.zeros((LIP_DIM, 100), np.float32), ValueError, "transpose"),
        (np.zeros((100,), np.float32), ValueError, "rank 1"),
        (np.zeros((2, 100, LIP_DIM), np.float32), ValueError, "rank 3"),
        (np.zeros((0, LIP_DIM), np.float32), ValueError, "no frames"),
        (np.zeros((100, LIP_DIM), np.int64), TypeError, "floating-point"),
        (np.zeros((100, LIP_DIM), np.bool_), TypeError, "floating-point"),
    ],
)
def test_bad_shapes_and_dtypes_are_reported(tmp_path, array, error, match):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(error, match=match) as err:
        load_lip_features(path)
    assert "bad.npy" in str(err.value)  # the message names the file


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_reported_with_the_first_frame(value):
    features = np.zeros((50, LIP_DIM), np.float32)
    features[17, 3] = value
    features[30, :2] = value
    with pytest.raises(ValueError, match=r"3 NaN/inf value\(s\) in 2 frame\(s\), first at frame 17"):
        validate_lip_features(features)


def test_pickled_npy_and_unknown_suffix_are_refused(tmp_path):
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"lip": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a plain numeric"):
        load_lip_features(pickled)
    other = tmp_path / "lip.pt"
    other.write_bytes(b"\0")
    with pytest.raises(ValueError, match=".npy or .safetensors"):
        load_lip_features(other)
    with pytest.raises(FileNotFoundError):
        load_lip_features(tmp_path / "absent.npy")
