"""CLIP ViT-B/16 visual tower: the 10 fps frame features VSSFlow cross-attends to (spec section 7.1).

The official extractor rebuilds only OpenAI CLIP's visual transformer and keeps, per frame, the CLS token of the last
residual block, *before* ``ln_post`` and ``proj``.  This module is a compact re-implementation of that tower in the
OpenAI key layout (``visual.conv1.weight``, ``visual.transformer.resblocks.N.attn.in_proj_weight`` ...), so the
weights load with strict key matching from any of:

* OpenAI's ``ViT-B-16.pt``, a TorchScript archive, read by :func:`vssflow_core.weights.checkpoint.read_state_dict`
  through the restricted unpickler of :mod:`vssflow_core.weights.torchscript` (no archive code is ever run);
* the Hugging Face ``openai/clip-vit-base-patch16`` checkpoint (``vision_model.*``), through :func:`hf_to_openai`;
* any state dict holding ``visual.*`` under some prefix, e.g. the official VSSFlow checkpoint
  (``image_encoder.visual.*``).

Files are read and strictly loaded by the shared helpers of :mod:`vssflow_core.weights.checkpoint`; what stays here is
CLIP's own key layouts.  :class:`MultiheadSelfAttention` is shared with the Synchformer encoder, and the frame helpers
live in :mod:`vssflow_core.encoders.image`.
"""

from __future__ import annotations

import collections
import math
import os
import re
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..progress import check_interrupted
from ..weights.checkpoint import CheckpointError, load_strict, state_dict_from, weights_label
from .image import frames_to_nchw, normalize_channels, resize_bicubic

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "CLIPVisionConfig",
    "CLIPVisionTower",
    "CLIPVisualEncoder",
    "MultiheadSelfAttention",
    "hf_to_openai",
    "load_clip_visual",
    "openai_to_hf",
    "preprocess_clip_frames",
    "to_openai_visual_layout",
]

StateDict = Mapping[str, torch.Tensor]

# torchvision's Normalize constants used by OpenAI CLIP and by the official extractor.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ---------------------------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class CLIPVisionConfig:
    """Shape of an OpenAI CLIP vision transformer; defaults are ViT-B/16."""

    width: int = 768
    layers: int = 12
    heads: int = 12
    patch_size: int = 16
    input_resolution: int = 224
    output_dim: int | None = 512  # ``proj`` width; None for checkpoints without the projection (CLIPVisionModel)
    mlp_ratio: int = 4  # fixed by OpenAI's ResidualAttentionBlock
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"CLIP width {self.width} is not divisible by {self.heads} heads")
        if self.input_resolution % self.patch_size:
            raise ValueError(f"input resolution {self.input_resolution} is not a multiple of patch {self.patch_size}")

    @property
    def grid_size(self) -> int:
        return self.input_resolution // self.patch_size

    @property
    def num_positions(self) -> int:
        return self.grid_size**2 + 1  # patches plus the class token

    @classmethod
    def from_state_dict(cls, state_dict: StateDict, heads: int | None = None, head_dim: int = 64) -> "CLIPVisionConfig":
        """Read the configuration off tensor shapes (any layout :func:`to_openai_visual_layout` understands).

        The number of heads is not visible in the shapes; like OpenAI's ``build_model`` it defaults to
        ``width // head_dim`` with 64-wide heads.  Pass ``heads`` for models that differ.
        """
        sd = to_openai_visual_layout(state_dict)
        shape = {k: tuple(v.shape) for k, v in sd.items()}

        def need(key: str) -> tuple[int, ...]:
            if key not in shape:
                raise CheckpointError(f"cannot infer the CLIP configuration: no '{key}' tensor")
            return shape[key]

        width, _, patch, _ = need("visual.conv1.weight")
        positions = need("visual.positional_embedding")[0]
        grid = math.isqrt(positions - 1)
        if grid * grid + 1 != positions:
            raise CheckpointError(f"positional embedding of {positions} rows is not a square grid + CLS")
        blocks = {int(m.group(1)) for k in shape if (m := re.match(r"visual\.transformer\.resblocks\.(\d+)\.", k))}
        if not blocks:
            raise CheckpointError("cannot infer the CLIP configuration: no visual.transformer.resblocks.*")
        if heads is None:
            if width % head_dim:
                raise ValueError(f"head size {head_dim} does not divide the CLIP width {width}; pass heads=")
            heads = width // head_dim
        mlp = need("visual.transformer.resblocks.0.mlp.c_fc.weight")[0]
        proj = shape.get("visual.proj")
        return cls(
            width=width,
            layers=max(blocks) + 1,
            heads=heads,
            patch_size=patch,
            input_resolution=grid * patch,
            output_dim=None if proj is None else proj[1],
            mlp_ratio=mlp // width,
        )


# ---------------------------------------------------------------------------------------------------------------------
# building blocks


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the activation dtype (OpenAI does the same for fp16 stability)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class QuickGELU(nn.Module):
    """The sigmoid approximation of GELU that CLIP was trained with (not interchangeable with exact GELU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class MultiheadSelfAttention(nn.Module):
    """Batch-first self-attention with ``nn.MultiheadAttention``'s parameter names (packed ``in_proj``, ``out_proj``).

    Checkpoints of modules built on ``nn.MultiheadAttention`` (CLIP's blocks, ``nn.TransformerEncoderLayer``) load
    unchanged, while the computation goes through ``scaled_dot_product_attention`` for fused kernels.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


class CLIPMLP(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.attn = MultiheadSelfAttention(config.width, config.heads)
        self.ln_1 = LayerNorm(config.width, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config.width, config.mlp_ratio * config.width)
        self.ln_2 = LayerNorm(config.width, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CLIPTransformer(nn.Module):
    def __init__(self, config: CLIPVisionConfig) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*(ResidualAttentionBlock(config) for _ in range(config.layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class CLIPVisionTower(nn.Module):
    """OpenAI CLIP ``VisionTransformer`` (module and parameter names as in ``clip/model.py``), batch-first."""

    def __init__(self, config: CLIPVisionConfig = CLIPVisionConfig()) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.conv1 = nn.Conv2d(3, width, kernel_size=config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(config.num_positions, width))
        self.ln_pre = LayerNorm(width, eps=config.layer_norm_eps)
        self.transformer = CLIPTransformer(config)
        self.ln_post = LayerNorm(width, eps=config.layer_norm_eps)
        if config.output_dim is not None:
            self.proj = nn.Parameter(torch.zeros(width, config.output_dim))
        else:
            self.register_parameter("proj", None)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels ``[N,3,R,R]`` -> tokens of the last residual block ``[N,1+grid^2,width]`` (no ln_post)."""
        resolution = self.config.input_resolution
        if pixels.shape[-2:] != (resolution, resolution):
            raise ValueError(f"CLIP expects {resolution}x{resolution} inputs, got {tuple(pixels.shape[-2:])}")
        x = self.conv1(pixels.to(self.conv1.weight.dtype)).flatten(2).transpose(1, 2)  # [N, grid^2, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.transformer(self.ln_pre(x))

    def cls_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The official VSSFlow frame feature: CLS token of the last block, before ``ln_post``/``proj``."""
        return self.forward(pixels)[:, 0]

    def image_embeds(self, pixels: torch.Tensor) -> torch.Tensor:
        """CLIP's own image embedding (``ln_post`` then ``proj``); not what VSSFlow conditions on."""
        if self.proj is None:
            raise RuntimeError("this CLIP tower was loaded without the visual projection")
        return self.ln_post(self.cls_features(pixels)) @ self.proj


class CLIPVisualEncoder(nn.Module):
    """Holds the tower as ``visual`` so ``state_dict()`` has exactly the OpenAI ``visual.*`` keys."""

    def __init__(self, config: CLIPVisionConfig = CLIPVisionConfig()) -> None:
        super().__init__()
        self.config = config
        self.visual = CLIPVisionTower(config)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels ``[N,3,R,R]`` -> CLS features ``[N,width]``."""
        return self.visual.cls_features(pixels)

    @torch.inference_mode()
    def encode_frames(
        self, frames: torch.Tensor, batch_size: int = 32, channels_last: bool | None = None
    ) -> torch.Tensor:
        """Frames ``[N,H,W,3]`` or ``[N,3,H,W]`` in [0,1] (or uint8) -> float32 features ``[N,width]``.

        Frames are preprocessed batch by batch on the model's device, so a long clip at full resolution never has to
        be resized in one piece.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        frames = frames if frames.ndim == 4 else frames.unsqueeze(0)
        param = self.visual.conv1.weight
        out = []
        for start in range(0, frames.shape[0], batch_size):
            check_interrupted()  # once per batch: a cancel waits for at most one batch
            chunk = frames[start : start + batch_size].to(param.device)
            pixels = preprocess_clip_frames(chunk, self.config.input_resolution, channels_last=channels_last)
            out.append(self.forward(pixels.to(param.dtype)).float())
        if not out:
            return torch.zeros(0, self.config.width, device=param.device)
        return torch.cat(out)


# ---------------------------------------------------------------------------------------------------------------------
# preprocessing


def preprocess_clip_frames(
    frames: torch.Tensor, resolution: int = 224, channels_last: bool | None = None
) -> torch.Tensor:
    """The official CLIP transform: bicubic resize to ``resolution`` square (no crop, aspect ratio not kept), then
    CLIP mean/std.  Input ``[N,H,W,3]`` / ``[N,3,H,W]`` in [0,1]; output float ``[N,3,R,R]``."""
    x = resize_bicubic(frames_to_nchw(frames, channels_last), (resolution, resolution))
    return normalize_channels(x, CLIP_MEAN, CLIP_STD)


# ---------------------------------------------------------------------------------------------------------------------
# key layouts


def to_openai_visual_layout(state_dict: StateDict) -> dict[str, torch.Tensor]:
    """Select the visual tower from a checkpoint and name it in the OpenAI layout (``visual.*``).

    Recognised: OpenAI-style keys under any prefix (``visual.``, ``image_encoder.visual.``, ``module.visual.`` ...),
    and Hugging Face keys (``vision_model.*`` plus ``visual_projection.weight``).  Everything else (text tower,
    ``logit_scale``, the rest of a VSSFlow checkpoint) is left out.
    """
    keys = list(state_dict)
    anchors = [k for k in keys if k.endswith("visual.conv1.weight")]
    if anchors:
        if len(anchors) > 1:
            raise ValueError(f"checkpoint holds several CLIP visual towers: {anchors}")
        prefix = anchors[0][: -len("conv1.weight")]
        return {"visual." + k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if any(k.startswith("vision_model.") for k in keys):
        return hf_to_openai(state_dict)
    if "conv1.weight" in state_dict and "positional_embedding" in state_dict:
        return {"visual." + k: v for k, v in state_dict.items()}  # a bare visual tower
    raise KeyError(
        "no CLIP visual tower found: expected OpenAI keys ending in 'visual.conv1.weight' or Hugging Face "
        f"'vision_model.*' keys; first keys are {keys[:5]}"
    )


# Hugging Face name -> OpenAI name, for everything outside the per-layer attention (which HF splits in three).
_HF_TOP = {
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",  # sic: HF spells it "layrnorm"
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
}
_HF_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}
_HF_LAYER_RE = re.compile(r"vision_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_OPENAI_LAYER_RE = re.compile(r"visual\.transformer\.resblocks\.(\d+)\.(.+)$")


def hf_to_openai(state_dict: StateDict) -> dict[str, torch.Tensor]:
    """Hugging Face ``CLIPVisionModel``/``CLIPModel`` visual weights -> OpenAI ``visual.*`` names.

    q/k/v projections are stacked into ``in_proj`` (q first, as ``nn.MultiheadAttention`` expects), the Linear
    ``visual_projection`` becomes the ``proj`` matrix (transposed).  ``position_ids`` buffers and all non-vision keys
    are dropped; unrecognised ``vision_model.*`` keys are an error rather than silently lost.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = collections.defaultdict(dict)
    for key, value in state_dict.items():
        if key == "visual_projection.weight":
            out["visual.proj"] = value.t().contiguous()
        elif not key.startswith("vision_model.") or key.endswith("position_ids"):
            continue
        elif key in _HF_TOP:
            out[_HF_TOP[key]] = value
        elif m := _HF_LAYER_RE.match(key):
            layer, module, kind = int(m.group(1)), m.group(2), m.group(3)
            base = f"visual.transformer.resblocks.{layer}."
            if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                qkv[(layer, kind)][module[-6]] = value  # 'q' / 'k' / 'v'
            elif module in _HF_LAYER:
                out[f"{base}{_HF_LAYER[module]}.{kind}"] = value
            else:
                raise KeyError(f"unrecognised Hugging Face CLIP vision key {key!r}")
        else:
            raise KeyError(f"unrecognised Hugging Face CLIP vision key {key!r}")
    for (layer, kind), parts in sorted(qkv.items()):
        missing = sorted(set("qkv") - set(parts))
        if missing:
            raise KeyError(f"layer {layer} lacks self_attn.{'/'.join(m + '_proj' for m in missing)}.{kind}")
        out[f"visual.transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts[c] for c in "qkv"])
    return out


def openai_to_hf(state_dict: StateDict) -> dict[str, torch.Tensor]:
    """Inverse of :func:`hf_to_openai` (OpenAI ``visual.*`` -> Hugging Face names)."""
    top = {v: k for k, v in _HF_TOP.items()}
    layer_map = {v: k for k, v in _HF_LAYER.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in to_openai_visual_layout(state_dict).items():
        if key == "visual.proj":
            out["visual_projection.weight"] = value.t().contiguous()
        elif key in top:
            out[top[key]] = value
        elif m := _OPENAI_LAYER_RE.match(key):
            base = f"vision_model.encoder.layers.{m.group(1)}."
            module, _, kind = m.group(2).rpartition(".")
            if module == "attn" and kind in ("in_proj_weight", "in_proj_bias"):
                suffix = kind.removeprefix("in_proj_")
                for name, part in zip("qkv", value.chunk(3, dim=0)):
                    out[f"{base}self_attn.{name}_proj.{suffix}"] = part.contiguous()
            elif module in layer_map:
                out[f"{base}{layer_map[module]}.{kind}"] = value
            else:
                raise KeyError(f"unrecognised OpenAI CLIP visual key {key!r}")
        else:
            raise KeyError(f"unrecognised OpenAI CLIP visual key {key!r}")
    return out


# ---------------------------------------------------------------------------------------------------------------------
# loading


def load_clip_visual(
    source: str | os.PathLike | StateDict,
    heads: int | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> CLIPVisualEncoder:
    """Build a :class:`CLIPVisualEncoder` from OpenAI (TorchScript ``.pt`` or state dict), Hugging Face or VSSFlow
    weights; the configuration is read off the shapes (``heads`` defaults to width // 64, as in OpenAI's loader)."""
    state_dict = to_openai_visual_layout(state_dict_from(source))
    config = CLIPVisionConfig.from_state_dict(state_dict, heads=heads)
    with torch.device("meta"):
        model = CLIPVisualEncoder(config)
    load_strict(model, state_dict, weights_label("CLIP visual", source), dtype=dtype, device=device)
    return model.eval().requires_grad_(False)
