"""CLIP visual tower: golden parity, checkpoint layouts (OpenAI, TorchScript, Hugging Face), preprocessing."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from vssflow_core.encoders.clip import (
    CLIP_MEAN,
    CLIP_STD,
    CLIPVisionConfig,
    CLIPVisualEncoder,
    hf_to_openai,
    load_clip_visual,
    openai_to_hf,
    preprocess_clip_frames,
    to_openai_visual_layout,
)
from vssflow_core.weights.checkpoint import CheckpointError, read_state_dict

from bicubic_reference import resample_matrix
from golden import full_checkpoint_shapes

RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def golden(load_golden, golden_manifest):
    tensors = load_golden("clip_small")
    weights = {k: v for k, v in tensors.items() if k.startswith("visual.")}
    return weights, tensors, golden_manifest["clip_small"]["config"]


# ---------------------------------------------------------------------------------------------------------------------
# independent reference for the resize: PIL's bicubic resampling as numpy matrices (tests/bicubic_reference.py).


def _reference_clip_preprocess(frames_nhwc: np.ndarray, size: int) -> np.ndarray:
    rows = resample_matrix(frames_nhwc.shape[1], size)
    cols = resample_matrix(frames_nhwc.shape[2], size)
    resized = np.clip(np.einsum("oh,nhwc,pw->ncop", rows, frames_nhwc, cols, optimize=True), 0.0, 1.0)
    mean, std = np.array(CLIP_MEAN).reshape(1, 3, 1, 1), np.array(CLIP_STD).reshape(1, 3, 1, 1)
    return (resized - mean) / std


# ---------------------------------------------------------------------------------------------------------------------


def test_golden_strict_load_and_parity(golden):
    weights, tensors, manifest = golden
    model = load_clip_visual(weights, heads=manifest["heads"])
    cfg = model.config
    assert (cfg.width, cfg.layers, cfg.heads, cfg.patch_size, cfg.input_resolution, cfg.output_dim) == (
        manifest["width"], manifest["layers"], manifest["heads"], manifest["patch_size"],
        manifest["input_resolution"], manifest["output_dim"],
    )
    frames, expected = tensors["frames_01"], tensors["cls_pre_ln_post"]
    # batch size 2 over 3 frames: exercises a partial last batch
    features = model.encode_frames(frames, batch_size=2)
    assert features.shape == expected.shape
    torch.testing.assert_close(features, expected, rtol=RTOL, atol=ATOL * expected.abs().max().item())
    # channels-last input (ComfyUI IMAGE layout) gives the same features
    torch.testing.assert_close(model.encode_frames(frames.permute(0, 2, 3, 1)), features, rtol=0, atol=0)


def test_strict_loading_names_the_offending_keys(golden):
    weights, _, manifest = golden
    broken = dict(weights)
    del broken["visual.ln_post.bias"]
    broken["visual.transformer.resblocks.0.attn.bias_k"] = torch.zeros(1)
    broken["visual.class_embedding"] = torch.zeros(manifest["width"] + 1)
    with pytest.raises(CheckpointError) as err:
        load_clip_visual(broken, heads=manifest["heads"])
    message = str(err.value)
    assert "visual.ln_post.bias" in message and "bias_k" in message and "visual.class_embedding" in message
    with pytest.raises(KeyError, match="no CLIP visual tower"):
        load_clip_visual({"text.weight": torch.zeros(1)})


def test_hugging_face_mapping_round_trips(golden):
    weights, tensors, manifest = golden
    hf = openai_to_hf(weights)
    assert all(k.startswith("vision_model.") or k == "visual_projection.weight" for k in hf)
    assert "vision_model.pre_layrnorm.weight" in hf and "vision_model.post_layernorm.bias" in hf
    assert "vision_model.encoder.layers.0.self_attn.q_proj.weight" in hf
    width = manifest["width"]
    assert hf["vision_model.encoder.layers.0.self_attn.v_proj.bias"].shape == (width,)
    assert hf["visual_projection.weight"].shape == (manifest["output_dim"], width)

    back = hf_to_openai(hf)
    assert back.keys() == weights.keys()
    assert all(torch.equal(back[k], weights[k]) for k in weights)

    # a full CLIPModel checkpoint also carries the text tower, logit_scale and (older files) position_ids
    hf_full = {
        **hf,
        "vision_model.embeddings.position_ids": torch.arange(manifest["input_resolution"]).unsqueeze(0),
        "text_model.embeddings.token_embedding.weight": torch.zeros(4, width),
        "logit_scale": torch.tensor(1.0),
    }
    frames = tensors["frames_01"]
    reference = load_clip_visual(weights, heads=manifest["heads"]).encode_frames(frames)
    from_hf = load_clip_visual(hf_full, heads=manifest["heads"]).encode_frames(frames)
    assert torch.equal(from_hf, reference)

    # CLIPVisionModel checkpoints have no projection: the tower still loads (the feature does not need it)
    no_proj = {k: v for k, v in hf.items() if k != "visual_projection.weight"}
    model = load_clip_visual(no_proj, heads=manifest["heads"])
    assert model.config.output_dim is None
    assert torch.equal(model.encode_frames(frames), reference)


def test_prefixed_checkpoints_are_recognised(golden):
    weights, _, _ = golden
    vssflow_style = {"image_encoder." + k: v for k, v in weights.items()}
    vssflow_style["vaflow.dit.proj_in.weight"] = torch.zeros(2, 2)
    assert to_openai_visual_layout(vssflow_style).keys() == weights.keys()


class _HoldsTower(nn.Module):
    """Mimics OpenAI's JIT CLIP: a root module with ``visual`` plus unrelated parameters."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.logit_scale = nn.Parameter(torch.ones([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # tracing only has to record the module tree; every attribute tensor is archived regardless
        return x + self.visual.class_embedding + self.logit_scale


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace/save only build the fixture archive
def test_torchscript_archive_is_read_without_running_code(golden, tmp_path):
    weights, tensors, manifest = golden
    model = load_clip_visual(weights, heads=manifest["heads"])
    holder = _HoldsTower(model.visual).half()  # OpenAI ships fp16 weights
    traced = torch.jit.trace(holder, torch.zeros(manifest["width"], dtype=torch.float16))
    path = tmp_path / "ViT-small.pt"
    torch.jit.save(traced, str(path))

    tensors_read, _ = read_state_dict(path)
    assert {k for k in tensors_read if k.startswith("visual.")} == weights.keys()
    assert "logit_scale" in tensors_read
    for key, value in weights.items():
        assert tensors_read[key].dtype == torch.float16
        assert torch.equal(tensors_read[key], value.half()), key

    loaded = load_clip_visual(path, heads=manifest["heads"])
    rounded = load_clip_visual({k: v.half().float() for k, v in weights.items()}, heads=manifest["heads"])
    assert torch.equal(loaded.encode_frames(tensors["frames_01"]), rounded.encode_frames(tensors["frames_01"]))


def test_preprocessing_matches_independent_reference():
    rng = np.random.default_rng(0)
    size = CLIPVisionConfig().input_resolution
    for shape in [(2, 37, 53, 3), (1, 300, 250, 3)]:  # enlarging and shrinking, aspect ratio not kept
        frames = rng.random(shape)
        expected = _reference_clip_preprocess(frames, size)
        # in float64 the two computations agree to rounding; float32 (the real path) to well under 1/255
        exact = preprocess_clip_frames(torch.from_numpy(frames), size)
        np.testing.assert_allclose(exact.numpy(), expected, rtol=0, atol=1e-9)
        nhwc = torch.from_numpy(frames).float()
        got = preprocess_clip_frames(nhwc, size)
        assert got.shape == (shape[0], 3, size, size) and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=2e-4)
        # channels-first input is the same computation
        torch.testing.assert_close(preprocess_clip_frames(nhwc.permute(0, 3, 1, 2), size), got, rtol=0, atol=0)
    # uint8 frames are read as value / 255
    frames8 = torch.from_numpy(rng.integers(0, 256, (1, 20, 30, 3), dtype=np.uint8))
    torch.testing.assert_close(preprocess_clip_frames(frames8, size), preprocess_clip_frames(frames8 / 255.0, size))
    # already at the model resolution: no resampling, only normalisation
    same = torch.rand(1, size, size, 3)
    expected = (same.permute(0, 3, 1, 2) - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(preprocess_clip_frames(same, size), expected)


def test_ambiguous_frame_layout_is_rejected():
    with pytest.raises(ValueError, match="channels_last"):
        preprocess_clip_frames(torch.rand(2, 3, 8, 3))
    assert preprocess_clip_frames(torch.rand(2, 3, 8, 3), 16, channels_last=True).shape == (2, 3, 16, 16)


def test_full_size_layout_on_meta(golden_dir):
    expected = full_checkpoint_shapes(golden_dir, "image_encoder.")
    assert expected, "the full state-dict listing has no image_encoder.visual.* lines"
    with torch.device("meta"):
        model = CLIPVisualEncoder(CLIPVisionConfig())
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    # shapes alone give back the ViT-B/16 defaults, and the real key names (with the VSSFlow prefix) load strictly
    meta_sd = {"image_encoder." + k: torch.empty(s, device="meta") for k, s in expected.items()}
    assert CLIPVisionConfig.from_state_dict(meta_sd) == CLIPVisionConfig()
    loaded = load_clip_visual(meta_sd, device="meta")
    assert loaded.config == CLIPVisionConfig()
