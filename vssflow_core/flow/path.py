"""The conditional optimal-transport probability path and the flow-matching training loss.

t = 0 is noise, t = 1 is data: x_t = (1 - t) x0 + t x1, and the target velocity is u = x1 - x0.
The ODE state carries the condition channels after the audio latent; they are the same at both ends of the path,
so along it they stay fixed and their target velocity is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PathSample:
    x_t: torch.Tensor  # point on the path
    velocity: torch.Tensor  # target velocity u = x1 - x0


class CondOTPath:
    """Affine path with alpha_t = t, sigma_t = 1 - t (facebookresearch/flow_matching's CondOTScheduler)."""

    def sample(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> PathSample:
        t = t.reshape(-1, *([1] * (x1.dim() - 1))).to(x1.dtype)
        return PathSample(x_t=(1 - t) * x0 + t * x1, velocity=x1 - x0)


def with_conditions(latent: torch.Tensor, latent_cond: torch.Tensor) -> torch.Tensor:
    """The ODE state: audio latent channels followed by the condition channels."""
    return torch.cat([latent, latent_cond.to(latent.dtype)], dim=1)


def flow_matching_loss(model, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, conditions,
                       path: CondOTPath | None = None) -> torch.Tensor:
    """MSE between predicted and target velocity over the audio channels only (the official training loss).

    ``model(x, t, context)`` is the velocity network; ``x0`` noise and ``x1`` data latents [B, C_latent, L];
    ``conditions`` a :class:`~vssflow_core.model.vssflow.Conditions`.
    """
    path = path or CondOTPath()
    latent_channels = x1.shape[1]
    sample = path.sample(with_conditions(x0, conditions.latent_cond), with_conditions(x1, conditions.latent_cond), t)
    predicted = model(sample.x_t, t, conditions.context)
    return F.mse_loss(predicted[:, :latent_channels], sample.velocity[:, :latent_channels])
