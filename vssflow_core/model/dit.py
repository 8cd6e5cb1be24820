"""The VSSFlow diffusion transformer: Stable Audio Open's DiT as VSSFlow modifies it.

Read top to bottom: Fourier time features -> 1x1 residual pre-conv -> project to width -> prepend ONE time token ->
N blocks of (self-attention, cross-attention, SwiGLU feed-forward), each pre-norm and residual -> project back ->
drop the time token -> 1x1 residual post-conv.  The sequence is [time token, latent frames], so with 250 latent
frames the transformer sees 251 tokens.

Module and parameter names follow diffusers' ``StableAudioDiTModel`` exactly, because that is the layout of the
official checkpoint (``vaflow.*``); see ``vssflow_core.weights.checkpoint`` for the routing.

:meth:`VSSFlowDiT.forward` is the reference computation (golden parity).  Sampling uses the equivalent fast path:
:meth:`VSSFlowDiT.prepare` computes once per generation what the sampler's many passes share (a :class:`DiTCache`)
and :meth:`VSSFlowDiT.latent_velocity` runs a pass on the audio latent alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    half = rotary_dim // 2
    first, second = x[..., :rotary_dim].float().chunk(2, dim=-1)
    # x_rot * cos + rotate_half(x_rot) * sin, written half by half: the same float32 operations (a + (-b) is a - b
    # exactly) with half the memory traffic, and the pass-through features are never converted
    rotated = torch.cat([first * cos[..., :half] - second * sin[..., :half],
                         second * cos[..., half:] + first * sin[..., half:]], dim=-1)
    return torch.cat([rotated.to(x.dtype), x[..., rotary_dim:]], dim=-1)


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
        return self.attend(x, rope, self.keys_values(x if context is None else context))

    def keys_values(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values [B, heads, N, head_dim] of ``source`` [B, N, dim], key/value heads already repeated for
        grouped-query attention (query head h reads kv head h // group); keys not yet rotated."""
        k = rearrange(self.to_k(source), "b l (h d) -> b h l d", h=self.num_kv_heads)
        v = rearrange(self.to_v(source), "b l (h d) -> b h l d", h=self.num_kv_heads)
        if self.num_kv_heads != self.num_heads:
            group = self.num_heads // self.num_kv_heads
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        return k, v

    def attend(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor],
               keys_values: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Queries from ``x`` attend to the given keys and values (see :meth:`keys_values`)."""
        k, v = keys_values
        q = apply_rotary(rearrange(self.to_q(x), "b l (h d) -> b h l d", h=self.num_heads), rope)
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

    def forward_prepared(self, x: torch.Tensor, cross_kv: tuple[torch.Tensor, torch.Tensor],
                         rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """:meth:`forward` with the cross-attention keys and values of the context given (:class:`DiTCache`).

        The residual stream ``x`` stays in its own dtype (float32) and the norms run in it; each sublayer runs in
        the weights' dtype (bfloat16 included) and its output is added back in float32, so a bfloat16 network does
        not round the running sum of ten blocks to 8 bits of mantissa.  In float32 every cast is a no-op.
        """
        dtype = self.norm1.weight.dtype
        # a float32 + bfloat16 sum is computed and stored in float32 (type promotion): no separate cast
        x = x + self.attn1(_layer_norm(self.norm1, x).to(dtype), rope)
        x = x + self.attn2.attend(_layer_norm(self.norm2, x).to(dtype), rope, cross_kv)
        return x + self.ff(_layer_norm(self.norm3, x).to(dtype))


def _layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm`` applied in the dtype of ``x`` (its statistics in float32 for a float32 stream)."""
    weight = None if norm.weight is None else norm.weight.to(x.dtype)
    bias = None if norm.bias is None else norm.bias.to(x.dtype)
    return F.layer_norm(x, norm.normalized_shape, weight, bias, norm.eps)


# --------------------------------------------------------------------------------------------------------------------
# The DiT
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DiTCache:
    """What every DiT pass of one generation shares, computed once by :meth:`VSSFlowDiT.prepare`.

    Sampling evaluates the network dozens of times on states that differ only in the audio latent and the time: the
    condition channels of the state are constants of the flow (guidance gives them zero velocity, so every solver
    stage leaves them bit-exact), and so are the context tokens and the sequence length.  Everything derived from
    them alone is here.  The input and output maps are folded into small matrices over the audio-latent channels,
    so a pass never touches the (many more) condition channels; they and the condition tokens are kept in float32
    (the dtype of the stream, float64 for a float64 network) whatever the weights' dtype, the cross-attention keys
    and values in the weights' dtype.
    """

    latent_in: torch.Tensor  # [width, latent_channels]: proj_in(x + preprocess_conv(x)) restricted to the latent
    cond_tokens: torch.Tensor  # [B, L, width]: the same map applied to the condition channels
    cross_kv: tuple[tuple[torch.Tensor, torch.Tensor], ...]  # per block: context keys, values [B, heads, N, head_dim]
    rope: tuple[torch.Tensor, torch.Tensor]  # rotary tables for the time token plus L frames, float32
    latent_out: torch.Tensor  # [latent_channels, width]: proj_out then x + postprocess_conv(x), latent rows only

    @property
    def batch_size(self) -> int:
        return self.cond_tokens.shape[0]

    @property
    def length(self) -> int:
        return self.cond_tokens.shape[1]


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

    # ---------------------------------------------------------------------------------------------------- sampling

    def _stream_dtype(self) -> torch.dtype:
        """The dtype of the residual stream and the folded maps: float32 for float32/bfloat16/float16 weights."""
        return torch.promote_types(self.proj_in.weight.dtype, torch.float32)

    def prepare(self, context: torch.Tensor, latent_cond: torch.Tensor) -> DiTCache:
        """The :class:`DiTCache` of a generation: context [B, N, context_dim], condition channels [B, cond, L]."""
        stream, lat = self._stream_dtype(), self.cfg.latent_channels
        w_pre = self.preprocess_conv.weight[:, :, 0].to(stream)  # [C, C]
        w_in = self.proj_in.weight.to(stream)  # [width, C]
        w_out = self.proj_out.weight.to(stream)  # [C, width]
        w_post = self.postprocess_conv.weight[:, :, 0].to(stream)  # [C, C]
        # proj_in(x + preprocess_conv(x)) is linear in x = [latent ; cond]: split it into the two channel groups
        batch, _, length = latent_cond.shape
        x_cond = torch.cat([latent_cond.new_zeros(batch, lat, length), latent_cond], dim=1).transpose(1, 2).to(stream)
        cond_tokens = F.linear(x_cond + F.linear(x_cond, w_pre), w_in)
        latent_in = w_in[:, :lat] + w_in @ w_pre[:, :lat]
        # only the latent rows of the output move (the condition channels' velocity is zeroed by guidance)
        latent_out = w_out[:lat] + w_post[:lat] @ w_out
        context = context.to(self.proj_in.weight.dtype)
        cross_kv = tuple(block.attn2.keys_values(context) for block in self.transformer_blocks)
        return DiTCache(latent_in=latent_in, cond_tokens=cond_tokens, cross_kv=cross_kv,
                        rope=self.rope(length, device=latent_cond.device), latent_out=latent_out)

    def latent_velocity(self, latent: torch.Tensor, t: torch.Tensor, cache: DiTCache) -> torch.Tensor:
        """The audio-latent channels of :meth:`forward` for the state [latent ; the cache's condition channels].

        latent [B, latent_channels, L] (any float dtype), t [B] or scalar -> [B, latent_channels, L] in the stream
        dtype (float32 unless the network is float64).  The time features are computed from t in that dtype too:
        t rounded to bfloat16 would move the Fourier phases by up to a few hundredths of a radian.
        """
        batch = latent.shape[0]
        if batch != cache.batch_size or latent.shape[-1] != cache.length:
            raise ValueError(f"the cache was prepared for batch {cache.batch_size} x {cache.length} frames, "
                             f"got a latent of batch {batch} x {latent.shape[-1]} frames")
        stream, dtype = self._stream_dtype(), self.proj_in.weight.dtype
        t = t.to(device=latent.device, dtype=stream).reshape(-1).expand(batch)
        time_token = self.timestep_proj(self.time_proj(t).to(dtype))[:, None, :].to(stream)
        h = F.linear(latent.to(stream).transpose(1, 2), cache.latent_in) + cache.cond_tokens
        h = torch.cat([time_token, h], dim=1)
        for block, cross_kv in zip(self.transformer_blocks, cache.cross_kv):
            h = block.forward_prepared(h, cross_kv, cache.rope)
        return F.linear(h[:, 1:], cache.latent_out).transpose(1, 2)
