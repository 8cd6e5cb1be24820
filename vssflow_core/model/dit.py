"""The VSSFlow diffusion transformer: Stable Audio Open's DiT as VSSFlow modifies it.

Read top to bottom: Fourier time features -> 1x1 residual pre-conv -> project to width -> prepend ONE time token ->
N blocks of (self-attention, cross-attention, SwiGLU feed-forward), each pre-norm and residual -> project back ->
drop the time token -> 1x1 residual post-conv.  The sequence is [time token, latent frames], so with 250 latent
frames the transformer sees 251 tokens.

Module and parameter names follow diffusers' ``StableAudioDiTModel`` exactly, because that is the layout of the
official checkpoint (``vaflow.*``); see ``vssflow_core.weights.checkpoint`` for the routing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..config import VSSFlowConfig


# --------------------------------------------------------------------------------------------------------------------
# Rotary position embedding (partial: the first half of every head)
# --------------------------------------------------------------------------------------------------------------------


def rotary_tables(rotary_dim: int, num_positions: int, theta: float = 10_000.0, device=None) -> tuple[torch.Tensor, ...]:
    """cos/sin tables [num_positions, rotary_dim] in the half-split layout (not interleaved), float32.

    The frequencies are ``theta^(-2k/rotary_dim)`` for k < rotary_dim/2, each used twice: once for the first half of
    the rotated dimensions and once for the second.
    """
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.float32, device=device)[: rotary_dim // 2] / rotary_dim
    inv_freq = 1.0 / (theta**exponents)
    angles = torch.outer(torch.arange(num_positions, device=device), inv_freq)
    cos, sin = angles.cos(), angles.sin()
    return torch.cat([cos, cos], dim=-1).float(), torch.cat([sin, sin], dim=-1).float()


def apply_rotary(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate the first ``rotary_dim`` features of ``x`` [B, heads, L, head_dim]; the rest pass through.

    Rotation runs in float32 whatever the model dtype, as the official processor does.
    """
    cos, sin = rope
    rotary_dim = cos.shape[-1]
    dtype = x.dtype
    x = x.float()
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    first, second = x_rot.chunk(2, dim=-1)
    rotated = x_rot * cos + torch.cat([-second, first], dim=-1) * sin
    return torch.cat([rotated, x_pass], dim=-1).to(dtype)


# --------------------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------------------


class FourierTimeEmbedding(nn.Module):
    """Gaussian Fourier features of the flow time: [cos(2 pi t W), sin(2 pi t W)] with W fixed (not trained)."""

    def __init__(self, dim: int):
        super().__init__()
        # Stored in the checkpoint but frozen: excluded from the optimizer, hence requires_grad=False.
        self.weight = nn.Parameter(torch.randn(dim // 2), requires_grad=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        phase = t[:, None] * self.weight[None, :] * 2 * math.pi
        return torch.cat([phase.cos(), phase.sin()], dim=-1)


class Attention(nn.Module):
    """Multi-head attention with optional grouped-query key/value heads and partial rotary embedding.

    In self-attention queries and keys are rotated; in cross-attention only the queries are (the context tokens are
    not a time axis).  No biases, no masks, default 1/sqrt(head_dim) scale.
    """

    def __init__(self, query_dim: int, num_heads: int, head_dim: int, context_dim: int | None = None,
                 num_kv_heads: int | None = None):
        super().__init__()
        self.is_cross_attention = context_dim is not None
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads or num_heads
        kv_in = context_dim if context_dim is not None else query_dim
        self.to_q = nn.Linear(query_dim, num_heads * head_dim, bias=False)
        self.to_k = nn.Linear(kv_in, self.num_kv_heads * head_dim, bias=False)
        self.to_v = nn.Linear(kv_in, self.num_kv_heads * head_dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(num_heads * head_dim, query_dim, bias=False)])

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
                context: torch.Tensor | None = None) -> torch.Tensor:
        kv_source = x if context is None else context
        q = rearrange(self.to_q(x), "b l (h d) -> b h l d", h=self.num_heads)
        k = rearrange(self.to_k(kv_source), "b l (h d) -> b h l d", h=self.num_kv_heads)
        v = rearrange(self.to_v(kv_source), "b l (h d) -> b h l d", h=self.num_kv_heads)
        if self.num_kv_heads != self.num_heads:  # grouped-query: query head h reads kv head h // group
            group = self.num_heads // self.num_kv_heads
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        q = apply_rotary(q, rope)
        if not self.is_cross_attention:
            k = apply_rotary(k, rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](rearrange(out, "b h l d -> b l (h d)"))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.silu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        # Index 1 is a (parameter-free) dropout in the original, kept so the keys read ff.net.0 / ff.net.2.
        self.net = nn.ModuleList([SwiGLU(dim, hidden_dim), nn.Identity(), nn.Linear(hidden_dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class DiTBlock(nn.Module):
    """Pre-norm residual block: self-attention, cross-attention to the context tokens, SwiGLU feed-forward."""

    def __init__(self, cfg: VSSFlowConfig):
        super().__init__()
        width = cfg.width
        self.norm1 = nn.LayerNorm(width, eps=cfg.norm_eps)
        self.attn1 = Attention(width, cfg.num_heads, cfg.head_dim)
        self.norm2 = nn.LayerNorm(width, eps=cfg.norm_eps)
        self.attn2 = Attention(width, cfg.num_heads, cfg.head_dim, context_dim=cfg.context_dim,
                               num_kv_heads=cfg.num_kv_heads)
        self.norm3 = nn.LayerNorm(width, eps=cfg.norm_eps)
        self.ff = FeedForward(width, cfg.ff_inner_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x), rope)
        x = x + self.attn2(self.norm2(x), rope, context=context)
        return x + self.ff(self.norm3(x))


# --------------------------------------------------------------------------------------------------------------------
# The DiT
# --------------------------------------------------------------------------------------------------------------------


class VSSFlowDiT(nn.Module):
    """Velocity network v(x_t, t, context) over [B, in_channels, L] sequences (channels first, as the latent)."""

    def __init__(self, cfg: VSSFlowConfig):
        super().__init__()
        self.cfg = cfg
        width, channels = cfg.width, cfg.in_channels
        self.time_proj = FourierTimeEmbedding(cfg.time_proj_dim)
        self.timestep_proj = nn.Sequential(nn.Linear(cfg.time_proj_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.preprocess_conv = nn.Conv1d(channels, channels, 1, bias=False)
        self.proj_in = nn.Linear(channels, width, bias=False)
        self.transformer_blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.num_layers))
        self.proj_out = nn.Linear(width, channels, bias=False)
        self.postprocess_conv = nn.Conv1d(channels, channels, 1, bias=False)

    def rope(self, num_latent_frames: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary tables for the time token plus ``num_latent_frames`` frames."""
        return rotary_tables(self.cfg.rotary_dim, num_latent_frames + 1, self.cfg.rope_theta, device=device)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x [B, C, L], t [B] (or scalar) flow time in [0, 1] (0 = noise), context [B, N, context_dim] -> [B, C, L]."""
        batch, _, length = x.shape
        if rope is None:
            rope = self.rope(length, device=x.device)
        t = t.to(x.dtype).reshape(-1).expand(batch)
        time_token = self.timestep_proj(self.time_proj(t))[:, None, :]

        h = x + self.preprocess_conv(x)
        h = self.proj_in(h.transpose(1, 2))
        h = torch.cat([time_token, h], dim=1)
        for block in self.transformer_blocks:
            h = block(h, context, rope)
        h = self.proj_out(h).transpose(1, 2)[:, :, 1:]
        return h + self.postprocess_conv(h)
