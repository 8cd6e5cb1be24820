"""VSSFlow: the DiT plus the condition projections and the routing of every condition to where the DiT reads it.

Routing ("disentangled condition aggregation"):
- cross-attention context: [speaker token ; one token per latent frame of CLIP]   -> [B, 1 + L, context_dim]
- concatenated to the latent channels: [lip ; phoneme embedding ; Synchformer]   -> [B, cond_channels, L]

The projections are bias-free MLPs, so an all-zero input maps to exactly zero: padding, a missing modality and the
unconditional branch of classifier-free guidance all rely on that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SEQUENCE, VSSFlowConfig
from .dit import DiTCache, VSSFlowDiT


def projection_mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, 2 * out_dim, bias=False), nn.SiLU(), nn.Linear(2 * out_dim, out_dim, bias=False))


@dataclass
class Conditions:
    """Everything the velocity network is conditioned on, already projected and aligned to L latent frames."""

    context: torch.Tensor  # [B, 1 + L, context_dim] cross-attention tokens
    latent_cond: torch.Tensor  # [B, cond_channels, L] channels concatenated after the audio latent

    def zeros_like(self) -> "Conditions":
        """The unconditional inputs of classifier-free guidance (as trained with condition dropout)."""
        return Conditions(torch.zeros_like(self.context), torch.zeros_like(self.latent_cond))

    @property
    def batch_size(self) -> int:
        return self.context.shape[0]

    @staticmethod
    def cat(items: "list[Conditions]") -> "Conditions":
        """One batch of several (e.g. [unconditional ; conditional] for batched guidance)."""
        return Conditions(torch.cat([c.context for c in items]), torch.cat([c.latent_cond for c in items]))


def resize_time(features: torch.Tensor, length: int, mode: str) -> torch.Tensor:
    """Resample [B, T, D] along T to ``length`` with F.interpolate (``nearest`` or ``nearest-exact``)."""
    return F.interpolate(features.transpose(1, 2), size=length, mode=mode).transpose(1, 2)


def pad_or_crop(x: torch.Tensor, length: int, dim: int = 1) -> torch.Tensor:
    """Zero-pad at the end or crop ``x`` along ``dim`` to ``length``."""
    size = x.shape[dim]
    if size >= length:
        return x.narrow(dim, 0, length)
    pad_shape = list(x.shape)
    pad_shape[dim] = length - size
    return torch.cat([x, x.new_zeros(pad_shape)], dim=dim)


class VSSFlow(nn.Module):
    def __init__(self, cfg: VSSFlowConfig = VSSFlowConfig()):
        super().__init__()
        self.cfg = cfg
        self.dit = VSSFlowDiT(cfg)
        self.lip_proj = projection_mlp(cfg.lip_dim, cfg.lip_channels)
        self.synch_proj = projection_mlp(cfg.synch_dim, cfg.synch_channels)
        self.ref_proj = projection_mlp(cfg.speaker_dim, cfg.context_dim)
        self.cond_proj = projection_mlp(cfg.clip_dim, cfg.context_dim)
        # No padding_idx: id 0 ("no speech") is a learned vector like any other.
        self.phone_embedding = nn.Embedding(cfg.phone_vocab, cfg.phone_channels)

    def prepare_conditions(
        self,
        clip: torch.Tensor,
        synch: torch.Tensor,
        phone_ids: torch.Tensor,
        lip: torch.Tensor | None = None,
        speaker: torch.Tensor | None = None,
        latent_length: int = SEQUENCE.latent_length,
    ) -> Conditions:
        """Align every condition to ``latent_length`` frames and project it.

        clip [B, Tc, clip_dim] at 10 fps (nearest upsampling), synch [B, S, 8, synch_dim] or [B, Ts, synch_dim]
        (nearest-exact resampling), phone_ids [B, Tp] at the latent rate and lip [B, Tl, lip_dim] at the latent rate
        (zero-padded or cropped at the end), speaker [B, speaker_dim].  Missing lip / speaker inputs are zeros, as the
        official in-the-wild inference feeds.
        """
        batch = clip.shape[0]
        dtype = self.cond_proj[0].weight.dtype
        if lip is None:
            lip = clip.new_zeros(batch, latent_length, self.cfg.lip_dim)
        if speaker is None:
            speaker = clip.new_zeros(batch, self.cfg.speaker_dim)

        clip = resize_time(clip.to(dtype), latent_length, mode="nearest")
        synch = resize_time(synch.reshape(batch, -1, synch.shape[-1]).to(dtype), latent_length, mode="nearest-exact")
        lip = pad_or_crop(lip.to(dtype), latent_length)
        phone_ids = pad_or_crop(phone_ids.long(), latent_length)

        context = torch.cat([self.ref_proj(speaker.to(dtype))[:, None, :], self.cond_proj(clip)], dim=1)
        latent_cond = torch.cat([self.lip_proj(lip), self.phone_embedding(phone_ids), self.synch_proj(synch)], dim=-1)
        return Conditions(context=context, latent_cond=latent_cond.transpose(1, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Velocity of the full state x [B, latent + cond channels, L] at flow time t."""
        return self.dit(x, t, context, rope)

    def prepare(self, conditions: Conditions) -> DiTCache:
        """What every DiT pass of a generation with these conditions shares (see :class:`DiTCache`)."""
        return self.dit.prepare(conditions.context, conditions.latent_cond)

    def latent_velocity(self, latent: torch.Tensor, t: torch.Tensor, cache: DiTCache) -> torch.Tensor:
        """Velocity of the audio latent [B, latent_channels, L] given a prepared cache (the fast path of sampling)."""
        return self.dit.latent_velocity(latent, t, cache)

    @property
    def latent_channels(self) -> int:
        return self.cfg.latent_channels
