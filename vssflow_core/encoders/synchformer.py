"""Synchformer visual branch: the 24 tokens/s motion features VSSFlow concatenates to the latent (spec section 7.2).

Synchformer's video feature extractor is a MotionFormer: a ViT-B/16 over 16-frame clips cut into 2x16x16 tubelets,
with *divided* space-time attention (each block first attends across time at a fixed patch position, then across
space within a frame; the CLS token attends to everything).  For synchronisation features the CLS path is dropped
after the last block: the patch tokens are layer-normed and, frame-slot by frame-slot, pooled by a one-layer
``TransformerEncoderLayer`` that prepends its own CLS token (spatial aggregation); temporal aggregation is the
identity.  One 16-frame segment therefore gives 8 tokens.

Parameter names follow ``synchformer_state_dict.pth`` (MMAudio's ext_weights), whose visual branch lives under
``vfeat_extractor.``; the audio branch and the synchronisation head in that file are ignored.

Video handling follows the official extractor: 25 fps frames, short side resized to 224 (bicubic), centre crop
224x224, values in [0,1] normalised with mean = std = 0.5; a 10 s window (250 frames, zero/black frames appended when
the clip is shorter) is cut into 16-frame segments every 8 frames -> 30 segments -> features ``[B,30,8,768]``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SEQUENCE, SequenceConfig
from ..progress import check_interrupted
from ..video.transform import short_side_size
from ..weights.checkpoint import CheckpointError, load_strict, state_dict_from, weights_label
from .clip import MultiheadSelfAttention
from .image import frames_to_nchw, normalize_channels, resize_bicubic

__all__ = [
    "SYNCHFORMER_MEAN",
    "SYNCHFORMER_STD",
    "MotionFormer",
    "SynchformerConfig",
    "SynchformerVisualEncoder",
    "fit_length",
    "load_synchformer",
    "preprocess_synchformer_frames",
    "select_vfeat_extractor",
    "split_segments",
]

StateDict = Mapping[str, torch.Tensor]

SYNCHFORMER_MEAN = (0.5, 0.5, 0.5)
SYNCHFORMER_STD = (0.5, 0.5, 0.5)
PREFIX = "vfeat_extractor."


@dataclass(frozen=True)
class SynchformerConfig:
    """Shape of the MotionFormer visual branch; defaults are the released Synchformer (ViT-B/16, 16 frames)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    patch_size: int = 16
    tubelet_size: int = 2  # frames per 3D patch (``PATCH_SIZE_TEMP``)
    num_frames: int = 16  # frames per segment
    img_size: int = 224
    in_chans: int = 3
    mlp_ratio: int = 4
    qkv_bias: bool = True
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by {self.num_heads} heads")
        if self.num_frames % self.tubelet_size or self.img_size % self.patch_size:
            raise ValueError("frames / image size must be multiples of the tubelet / patch size")

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_spatial_patches(self) -> int:
        return self.grid_size**2

    @property
    def temporal_tokens(self) -> int:
        """Tokens per segment along time (= output tokens per segment)."""
        return self.num_frames // self.tubelet_size

    @classmethod
    def from_state_dict(
        cls, state_dict: StateDict, num_heads: int | None = None, head_dim: int = 64
    ) -> "SynchformerConfig":
        """Read the configuration off tensor shapes (keys with or without ``vfeat_extractor.``).

        The head count is invisible in the shapes; it defaults to ``embed_dim // head_dim`` (64-wide heads as in
        ViT-B).  Pass ``num_heads`` for models that differ.
        """
        sd = select_vfeat_extractor(state_dict)
        shape = {k[len(PREFIX) :]: tuple(v.shape) for k, v in sd.items()}

        def need(key: str) -> tuple[int, ...]:
            if key not in shape:
                raise CheckpointError(f"cannot infer the Synchformer configuration: no '{PREFIX}{key}' tensor")
            return shape[key]

        embed_dim, in_chans, tubelet, patch, _ = need("patch_embed_3d.proj.weight")
        positions = need("pos_embed")[1]
        grid = math.isqrt(positions - 1)
        if grid * grid + 1 != positions:
            raise CheckpointError(f"pos_embed {need('pos_embed')} is not a square grid + CLS")
        blocks = {int(m.group(1)) for k in shape if (m := re.match(r"blocks\.(\d+)\.", k))}
        if not blocks:
            raise CheckpointError("cannot infer the Synchformer configuration: no blocks.* tensors")
        if num_heads is None:
            if embed_dim % head_dim:
                raise ValueError(f"head size {head_dim} does not divide embed_dim {embed_dim}; pass num_heads=")
            num_heads = embed_dim // head_dim
        return cls(
            embed_dim=embed_dim,
            depth=max(blocks) + 1,
            num_heads=num_heads,
            patch_size=patch,
            tubelet_size=tubelet,
            num_frames=need("temp_embed")[1] * tubelet,
            img_size=grid * patch,
            in_chans=in_chans,
            mlp_ratio=need("blocks.0.mlp.fc1.weight")[0] // embed_dim,
            qkv_bias="blocks.0.attn.qkv.bias" in shape,
        )


# ---------------------------------------------------------------------------------------------------------------------
# MotionFormer


class PatchEmbed(nn.Module):
    """2D patch embedding.  Unused in the forward pass (tubelets replace it) but present in the checkpoint."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(config.in_chans, config.embed_dim, config.patch_size, stride=config.patch_size)


class TubeletEmbed(nn.Module):
    """3D patch embedding: ``[N,C,T,H,W]`` -> ``[N, t*h*w, D]``, tokens ordered time-major (frame slot, row, col)."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        kernel = (config.tubelet_size, config.patch_size, config.patch_size)
        self.proj = nn.Conv3d(config.in_chans, config.embed_dim, kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DividedAttention(nn.Module):
    """Attention restricted to one axis of the ``(frame slot, patch)`` token grid, plus a global CLS token.

    The CLS query attends to every token; each patch query attends to the CLS key and to the patches that share its
    frame slot (``axis="space"``) or its spatial position (``axis="time"``).
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, frames: int, axis: str) -> torch.Tensor:
        batch, length, dim = x.shape
        heads, head_dim = self.heads, dim // self.heads
        patches = (length - 1) // frames
        q, k, v = self.qkv(x).view(batch, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)  # [B,h,L,d] each

        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # [B,h,1,d]

        def grid(t: torch.Tensor) -> torch.Tensor:  # patch tokens -> [B,h,groups,members,d]
            t = t[:, :, 1:].reshape(batch, heads, frames, patches, head_dim)
            return t if axis == "space" else t.transpose(2, 3)

        q_g, k_g, v_g = grid(q), grid(k), grid(v)
        groups = q_g.shape[2]
        # every group also sees the CLS key/value, prepended
        k_g = torch.cat([k[:, :, :1, None].expand(-1, -1, groups, -1, -1), k_g], dim=3)
        v_g = torch.cat([v[:, :, :1, None].expand(-1, -1, groups, -1, -1), v_g], dim=3)
        members = q_g.shape[3]
        # fold groups into the batch so the fused 4D SDPA kernels apply
        out = F.scaled_dot_product_attention(
            q_g.reshape(batch * heads, groups, members, head_dim),
            k_g.reshape(batch * heads, groups, members + 1, head_dim),
            v_g.reshape(batch * heads, groups, members + 1, head_dim),
        ).view(batch, heads, groups, members, head_dim)
        if axis != "space":
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.reshape(batch, heads, frames * patches, head_dim)], dim=2)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    """Time attention (``norm3``/``timeattn``), then space attention (``norm1``/``attn``), then MLP (``norm2``)."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        dim, eps = config.embed_dim, config.norm_eps
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = DividedAttention(dim, config.num_heads, config.qkv_bias)
        self.timeattn = DividedAttention(dim, config.num_heads, config.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, config.mlp_ratio * dim)
        self.norm3 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), frames, axis="time")
        x = x + self.attn(self.norm1(x), frames, axis="space")
        return x + self.mlp(self.norm2(x))


class SpatialAggregator(nn.Module):
    """A pre-norm ``nn.TransformerEncoderLayer`` (GELU, eps 1e-6) with a learned CLS token, run on the patches of
    each frame slot; the CLS output is that slot's feature.  Names match ``torch.nn.TransformerEncoderLayer``."""

    def __init__(self, config: SynchformerConfig) -> None:
        super().__init__()
        dim, eps = config.embed_dim, config.norm_eps
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.self_attn = MultiheadSelfAttention(dim, config.num_heads)
        self.linear1 = nn.Linear(dim, config.mlp_ratio * dim)
        self.linear2 = nn.Linear(config.mlp_ratio * dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[N, t, h*w, D]`` -> ``[N, t, D]``."""
        n, t, p, d = tokens.shape
        x = torch.cat([self.cls_token.to(tokens.dtype).expand(n * t, 1, d), tokens.reshape(n * t, p, d)], dim=1)
        x = x + self.self_attn(self.norm1(x))
        x = x + self.linear2(F.gelu(self.linear1(self.norm2(x))))
        return x[:, 0].view(n, t, d)


class MotionFormer(nn.Module):
    """The ``vfeat_extractor`` module: one segment ``[N,C,T,H,W]`` -> per-frame-slot features ``[N, T/2, D]``."""

    def __init__(self, config: SynchformerConfig = SynchformerConfig()) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_spatial_patches + 1, dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, config.temporal_tokens, dim))
        self.patch_embed = PatchEmbed(config)
        self.patch_embed_3d = TubeletEmbed(config)
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.spatial_attn_agg = SpatialAggregator(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        expected = (cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"MotionFormer expects segments [N,{','.join(map(str, expected))}], got {tuple(x.shape)}")
        tokens = self.patch_embed_3d(x)  # [N, t*h*w, D]
        n, t, p = tokens.shape[0], cfg.temporal_tokens, cfg.num_spatial_patches
        # separable position code: the same spatial embedding in every frame slot plus one embedding per slot
        pos = self.pos_embed[:, 1:].repeat(1, t, 1) + self.temp_embed.repeat_interleave(p, dim=1)
        pos = torch.cat([self.pos_embed[:, :1], pos], dim=1)
        x = torch.cat([self.cls_token.expand(n, -1, -1), tokens], dim=1) + pos
        for block in self.blocks:
            check_interrupted()  # per block: one batch of ViT-B segments takes seconds on a CPU
            x = block(x, frames=t)
        x = self.norm(x[:, 1:])  # the CLS token is not used for synchronisation features
        return self.spatial_attn_agg(x.view(n, t, p, -1))  # temporal aggregation is the identity


class SynchformerVisualEncoder(nn.Module):
    """Holds the MotionFormer as ``vfeat_extractor`` so ``state_dict()`` matches ``synchformer_state_dict.pth``."""

    def __init__(self, config: SynchformerConfig = SynchformerConfig()) -> None:
        super().__init__()
        self.config = config
        self.vfeat_extractor = MotionFormer(config)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        """Normalised segments ``[B,S,T,C,H,W]`` (T = 16 frames) -> features ``[B,S,T/2,D]``."""
        b, s = segments.shape[:2]
        x = segments.flatten(0, 1).transpose(1, 2)  # [B*S, C, T, H, W]
        return self.vfeat_extractor(x).view(b, s, self.config.temporal_tokens, -1)

    @torch.inference_mode()
    def encode_segments(self, segments: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """:meth:`forward` in chunks of ``batch_size`` segments (a ViT-B segment holds 1569 tokens); float32 out."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        b, s = segments.shape[:2]
        param = self.vfeat_extractor.pos_embed
        # gather each chunk on its own: `segments` is usually an overlapping (unfold) view, and flattening it whole
        # would materialise every frame twice
        order = [(i, j) for i in range(b) for j in range(s)]
        out = []
        for start in range(0, len(order), batch_size):
            check_interrupted()
            chunk = torch.stack([segments[i, j] for i, j in order[start : start + batch_size]])
            out.append(self.forward(chunk.unsqueeze(0).to(param.device, param.dtype)).squeeze(0).float())
        return torch.cat(out).view(b, s, self.config.temporal_tokens, -1)

    @torch.inference_mode()
    def encode_video(
        self,
        frames: torch.Tensor,
        batch_size: int = 8,
        num_frames: int | None = SEQUENCE.synch_frames,
        channels_last: bool | None = None,
        sequence: SequenceConfig = SEQUENCE,
    ) -> torch.Tensor:
        """Frames at 25 fps -> float32 features: one clip ``[T,H,W,3]`` / ``[T,3,H,W]`` gives ``[S,8,D]``, a batch of
        clips ``[B,T,H,W,3]`` / ``[B,T,3,H,W]`` gives ``[B,S,8,D]``.  Values in [0,1] (or uint8).

        Each clip is fitted to ``num_frames`` (default: the 10 s window, 250 frames; black frames appended or the
        tail cut), then cut into ``sequence.synch_segment_frames``-frame segments every ``synch_segment_stride``
        frames (30 segments for 10 s).  ``num_frames=None`` keeps the clip's own length (at least one segment).
        """
        if frames.ndim == 5:
            return torch.stack(
                [self.encode_video(clip, batch_size, num_frames, channels_last, sequence) for clip in frames]
            )
        if sequence.synch_segment_frames != self.config.num_frames:
            raise ValueError(
                f"segments of {sequence.synch_segment_frames} frames do not fit a model built for "
                f"{self.config.num_frames}"
            )
        device = self.vfeat_extractor.pos_embed.device
        pixels = preprocess_synchformer_frames(frames, self.config.img_size, channels_last, normalize=False,
                                               device=device)
        target = num_frames if num_frames is not None else max(pixels.shape[0], sequence.synch_segment_frames)
        # pad in [0,1] space so the padding is black, as when the official decoder appends zero frames
        pixels = normalize_channels(fit_length(pixels, target), SYNCHFORMER_MEAN, SYNCHFORMER_STD)
        segments = split_segments(pixels, sequence.synch_segment_frames, sequence.synch_segment_stride)
        return self.encode_segments(segments.unsqueeze(0), batch_size=batch_size).squeeze(0)


# ---------------------------------------------------------------------------------------------------------------------
# video preprocessing


def preprocess_synchformer_frames(
    frames: torch.Tensor,
    size: int = 224,
    channels_last: bool | None = None,
    normalize: bool = True,
    chunk: int = 32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``Resize(size, bicubic)`` on the short side -> ``CenterCrop(size)`` -> ``Normalize(0.5, 0.5)``.

    Input ``[T,H,W,3]`` / ``[T,3,H,W]`` in [0,1] (or uint8); output float ``[T,3,size,size]`` in [-1,1] (in [0,1]
    with ``normalize=False``) on ``device`` (default: the input's).  Frames travel and are resized ``chunk`` at a time,
    so a full-HD clip is never copied to the device or resized in one piece.
    """
    out = []
    for start in range(0, frames.shape[0], chunk):
        check_interrupted()
        x = frames_to_nchw(frames[start : start + chunk].to(device), channels_last)
        x = resize_bicubic(x, short_side_size(x.shape[-2], x.shape[-1], size))
        top = int(round((x.shape[-2] - size) / 2.0))  # torchvision's CenterCrop offsets
        left = int(round((x.shape[-1] - size) / 2.0))
        out.append(x[..., top : top + size, left : left + size])
    if not out:
        raise ValueError("no frames to preprocess")
    x = torch.cat(out)
    return normalize_channels(x, SYNCHFORMER_MEAN, SYNCHFORMER_STD) if normalize else x


def fit_length(frames: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Cut ``[T,...]`` to ``num_frames`` or append all-zero frames (black before normalisation)."""
    if frames.shape[0] >= num_frames:
        return frames[:num_frames]
    pad = frames.new_zeros((num_frames - frames.shape[0], *frames.shape[1:]))
    return torch.cat([frames, pad])


def split_segments(frames: torch.Tensor, segment_frames: int = SEQUENCE.synch_segment_frames,
                   stride: int = SEQUENCE.synch_segment_stride) -> torch.Tensor:
    """``[T,C,H,W]`` -> overlapping segments ``[S,segment_frames,C,H,W]`` with ``S = (T - segment) // stride + 1``
    (trailing frames that do not fill a segment are dropped, as in the official extractor).  A view, not a copy."""
    if frames.shape[0] < segment_frames:
        raise ValueError(f"need at least {segment_frames} frames for one segment, got {frames.shape[0]}")
    return frames.unfold(0, segment_frames, stride).permute(0, 4, 1, 2, 3)


# ---------------------------------------------------------------------------------------------------------------------
# loading


def select_vfeat_extractor(state_dict: StateDict) -> dict[str, torch.Tensor]:
    """The visual branch of a Synchformer checkpoint, keyed ``vfeat_extractor.*`` (bare MotionFormer keys accepted;
    the audio branch, projections and sync transformer of the full checkpoint are dropped)."""
    selected = {k: v for k, v in state_dict.items() if k.startswith(PREFIX)}
    if selected:
        return selected
    if "patch_embed_3d.proj.weight" in state_dict:
        return {PREFIX + k: v for k, v in state_dict.items()}
    raise KeyError(
        f"no Synchformer visual branch found: expected '{PREFIX}*' keys; first keys are {list(state_dict)[:5]}"
    )


def load_synchformer(
    source: str | os.PathLike | StateDict,
    num_heads: int | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SynchformerVisualEncoder:
    """Build a :class:`SynchformerVisualEncoder` from ``synchformer_state_dict.pth`` (read with
    ``torch.load(weights_only=True)``), a safetensors file or a state dict; shapes give the configuration."""
    state_dict = select_vfeat_extractor(state_dict_from(source))
    config = SynchformerConfig.from_state_dict(state_dict, num_heads=num_heads)
    with torch.device("meta"):
        model = SynchformerVisualEncoder(config)
    load_strict(model, state_dict, weights_label("Synchformer visual", source), dtype=dtype, device=device)
    return model.eval().requires_grad_(False)
