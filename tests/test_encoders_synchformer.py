"""Synchformer visual branch: golden parity, checkpoint layout, preprocessing and segmenting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vssflow_core.config import SEQUENCE
from vssflow_core.encoders.synchformer import (
    SynchformerConfig,
    SynchformerVisualEncoder,
    fit_length,
    load_synchformer,
    preprocess_synchformer_frames,
    split_segments,
)
from vssflow_core.weights.checkpoint import CheckpointError

from bicubic_reference import resample_matrix

RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def golden(load_golden, golden_manifest):
    tensors = load_golden("synchformer_small")
    weights = {k: v for k, v in tensors.items() if k.startswith("vfeat_extractor.")}
    return weights, tensors, golden_manifest["synchformer_small"]["config"]


@pytest.fixture(scope="module")
def small_model(golden):
    weights, _, manifest = golden
    return load_synchformer(weights, num_heads=manifest["num_heads"])


def reference_vfeat_layout(
    dim: int, depth: int, mlp: int, patch: int, tubelet: int, slots: int, grid: int, chans: int = 3
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of ``vfeat_extractor.*`` in ``synchformer_state_dict.pth``, written from the reference code:
    MotionFormer (``VisionTransformer`` with ``POS_EMBED: separate``, divided blocks with ``qkv_bias``) whose classifier
    parts are replaced by Identity, plus the ``SpatialTransformerEncoderLayer`` aggregator (an
    ``nn.TransformerEncoderLayer`` with a ``cls_token``); temporal aggregation is Identity, no global aggregation."""
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, grid * grid + 1, dim),
        "temp_embed": (1, slots, dim),
        "patch_embed.proj.weight": (dim, chans, patch, patch),
        "patch_embed.proj.bias": (dim,),
        "patch_embed_3d.proj.weight": (dim, chans, tubelet, patch, patch),
        "patch_embed_3d.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
        "spatial_attn_agg.cls_token": (1, 1, dim),
        "spatial_attn_agg.self_attn.in_proj_weight": (3 * dim, dim),
        "spatial_attn_agg.self_attn.in_proj_bias": (3 * dim,),
        "spatial_attn_agg.self_attn.out_proj.weight": (dim, dim),
        "spatial_attn_agg.self_attn.out_proj.bias": (dim,),
        "spatial_attn_agg.linear1.weight": (mlp, dim),
        "spatial_attn_agg.linear1.bias": (mlp,),
        "spatial_attn_agg.linear2.weight": (dim, mlp),
        "spatial_attn_agg.linear2.bias": (dim,),
        "spatial_attn_agg.norm1.weight": (dim,),
        "spatial_attn_agg.norm1.bias": (dim,),
        "spatial_attn_agg.norm2.weight": (dim,),
        "spatial_attn_agg.norm2.bias": (dim,),
    }
    for i in range(depth):
        for norm in ("norm1", "norm2", "norm3"):
            shapes[f"blocks.{i}.{norm}.weight"] = (dim,)
            shapes[f"blocks.{i}.{norm}.bias"] = (dim,)
        for attn in ("attn", "timeattn"):
            shapes[f"blocks.{i}.{attn}.qkv.weight"] = (3 * dim, dim)
            shapes[f"blocks.{i}.{attn}.qkv.bias"] = (3 * dim,)
            shapes[f"blocks.{i}.{attn}.proj.weight"] = (dim, dim)
            shapes[f"blocks.{i}.{attn}.proj.bias"] = (dim,)
        shapes[f"blocks.{i}.mlp.fc1.weight"] = (mlp, dim)
        shapes[f"blocks.{i}.mlp.fc1.bias"] = (mlp,)
        shapes[f"blocks.{i}.mlp.fc2.weight"] = (dim, mlp)
        shapes[f"blocks.{i}.mlp.fc2.bias"] = (dim,)
    return {"vfeat_extractor." + k: v for k, v in shapes.items()}


def _layout_kwargs(manifest: dict, mlp_ratio: int = 4) -> dict[str, int]:
    dim, patch = manifest["embed_dim"], manifest["patch_size"]
    return dict(
        dim=dim, depth=manifest["depth"], mlp=mlp_ratio * dim, patch=patch, tubelet=manifest["patch_size_temp"],
        slots=manifest["num_frames"] // manifest["patch_size_temp"], grid=manifest["img_size"] // patch,
    )


# ---------------------------------------------------------------------------------------------------------------------


def test_golden_strict_load_and_parity(golden, small_model):
    _, tensors, manifest = golden
    cfg = small_model.config
    got = (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.patch_size, cfg.tubelet_size, cfg.img_size, cfg.num_frames)
    assert got == tuple(
        manifest[k]
        for k in ("embed_dim", "depth", "num_heads", "patch_size", "patch_size_temp", "img_size", "num_frames")
    )
    segments = tensors["input_segments"].float()  # stored as float16
    expected = tensors["features"]
    b, s = segments.shape[:2]
    assert expected.shape == (b, s, cfg.temporal_tokens, cfg.embed_dim)
    # one segment per forward: the parity check also covers the chunked path
    features = small_model.encode_segments(segments, batch_size=1)
    torch.testing.assert_close(features, expected, rtol=RTOL, atol=ATOL * expected.abs().max().item())


def test_golden_layout_is_the_reference_layout(golden):
    weights, _, manifest = golden
    assert {k: tuple(v.shape) for k, v in weights.items()} == reference_vfeat_layout(**_layout_kwargs(manifest))


def test_strict_loading_names_the_offending_keys(golden):
    weights, _, manifest = golden
    dim = manifest["embed_dim"]
    # the full checkpoint also holds the audio branch and the sync head: those are ignored, not errors
    full = {**weights, "afeat_extractor.patch_embed.proj.weight": torch.zeros(1), "transformer.w": torch.zeros(1)}
    assert load_synchformer(full, num_heads=manifest["num_heads"]).config.embed_dim == dim

    broken = dict(weights)
    del broken["vfeat_extractor.blocks.0.norm3.bias"]
    broken["vfeat_extractor.head.weight"] = torch.zeros(3, dim)
    broken["vfeat_extractor.norm.weight"] = torch.zeros(dim + 1)
    with pytest.raises(CheckpointError) as err:
        load_synchformer(broken, num_heads=manifest["num_heads"])
    message = str(err.value)
    assert "blocks.0.norm3.bias" in message and "head.weight" in message and "norm.weight" in message
    # a tensor the configuration is read from is reported as such
    without_temp = {k: v for k, v in weights.items() if k != "vfeat_extractor.temp_embed"}
    with pytest.raises(CheckpointError, match="temp_embed"):
        load_synchformer(without_temp, num_heads=manifest["num_heads"])
    with pytest.raises(KeyError, match="vfeat_extractor"):
        load_synchformer({"afeat_extractor.x": torch.zeros(1)})


def test_pth_checkpoint_loads_with_weights_only(golden, tmp_path):
    weights, tensors, manifest = golden
    path = tmp_path / "synchformer_state_dict.pth"
    torch.save({**weights, "afeat_extractor.dummy": torch.zeros(2)}, path)
    model = load_synchformer(path, num_heads=manifest["num_heads"])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_full_size_layout_on_meta(golden_manifest):
    full = {**golden_manifest["synchformer_small"]["config"], "embed_dim": 768, "depth": 12}  # spec 7.2: ViT-B
    expected = reference_vfeat_layout(**_layout_kwargs(full))
    with torch.device("meta"):
        model = SynchformerVisualEncoder(SynchformerConfig())
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    meta_sd = {k: torch.empty(s, device="meta") for k, s in expected.items()}
    assert SynchformerConfig.from_state_dict(meta_sd) == SynchformerConfig()  # 768 / 64 -> 12 heads
    assert load_synchformer(meta_sd, device="meta").config == SynchformerConfig()


# ---------------------------------------------------------------------------------------------------------------------
# preprocessing, checked against an independent numpy computation of the official transform
# (torchvision Resize(224, bicubic) on the short side, CenterCrop(224), Normalize(0.5, 0.5)).


def _reference_sync_preprocess(frames_nhwc: np.ndarray, size: int) -> np.ndarray:
    _, h, w, _ = frames_nhwc.shape
    new_h, new_w = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    resized = np.einsum(
        "oh,nhwc,pw->ncop", resample_matrix(h, new_h), frames_nhwc, resample_matrix(w, new_w), optimize=True
    )
    resized = np.clip(resized, 0.0, 1.0)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return (resized[:, :, top : top + size, left : left + size] - 0.5) / 0.5


def test_preprocessing_matches_independent_reference():
    size = SynchformerConfig().img_size
    rng = np.random.default_rng(0)
    for shape in [(3, 150, 200, 3), (2, 260, 240, 3)]:  # landscape upscaled, portrait downscaled
        frames = rng.random(shape)
        expected = _reference_sync_preprocess(frames, size)
        exact = preprocess_synchformer_frames(torch.from_numpy(frames), size, chunk=2)  # float64, chunked
        np.testing.assert_allclose(exact.numpy(), expected, rtol=0, atol=1e-9)
        got = preprocess_synchformer_frames(torch.from_numpy(frames).float().permute(0, 3, 1, 2), size)
        assert got.shape == (shape[0], 3, size, size) and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-4)


def test_segments_follow_the_sequence_config():
    # spec 7.2: 10 s at 25 fps = 250 frames -> 16-frame segments every 8 frames -> 30 segments
    assert SEQUENCE.synch_frames == 250 and SEQUENCE.synch_segments == 30
    frames = torch.arange(SEQUENCE.synch_frames, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 2, 2)
    segments = split_segments(frames)
    assert segments.shape == (SEQUENCE.synch_segments, SEQUENCE.synch_segment_frames, 3, 2, 2)
    for i in (0, 1, SEQUENCE.synch_segments - 1):
        start = i * SEQUENCE.synch_segment_stride
        assert torch.equal(segments[i, :, 0, 0, 0], torch.arange(start, start + SEQUENCE.synch_segment_frames).float())
    short = fit_length(frames[:100] + 1, SEQUENCE.synch_frames)
    assert short.shape[0] == SEQUENCE.synch_frames
    assert torch.equal(short[:100], frames[:100] + 1) and not short[100:].any()
    assert torch.equal(fit_length(frames, 40), frames[:40])


def test_encode_video_end_to_end(small_model):
    cfg = small_model.config
    seg, stride = SEQUENCE.synch_segment_frames, SEQUENCE.synch_segment_stride
    num_frames = seg + stride  # two segments keep the test fast
    clip = torch.rand(num_frames - 5, 40, 48, 3)  # 5 frames short: the tail is padded with black
    features = small_model.encode_video(clip, batch_size=1, num_frames=num_frames)
    assert features.shape == (2, cfg.temporal_tokens, cfg.embed_dim)

    pixels = preprocess_synchformer_frames(clip, cfg.img_size)
    black = torch.full((5, 3, cfg.img_size, cfg.img_size), -1.0)  # 0 in [0,1] after Normalize(0.5, 0.5)
    segments = torch.stack([torch.cat([pixels, black])[i * stride : i * stride + seg] for i in range(2)])
    with torch.no_grad():
        expected = small_model(segments.unsqueeze(0))[0]
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)
    # a batch of clips [B,T,H,W,3] gives [B,S,8,D]
    batched = small_model.encode_video(clip.unsqueeze(0), batch_size=2, num_frames=num_frames)
    torch.testing.assert_close(batched, features.unsqueeze(0), rtol=1e-5, atol=1e-6)
