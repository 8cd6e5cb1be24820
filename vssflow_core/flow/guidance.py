"""Classifier-free guidance as a velocity field the ODE solvers integrate.

v = u + w (c - u) with u the unconditional velocity (all conditions zero, exactly as training's condition dropout
saw them) and c the conditional one; the velocity of the condition channels is set to zero so they stay fixed.
"""

from __future__ import annotations

import torch

from ..model.vssflow import Conditions

OFFICIAL_GUIDANCE_SCALE = 3.0


class GuidedVelocity:
    """Callable ``v(t, x)`` over the full ODE state [B, latent + cond channels, L]; counts its evaluations."""

    def __init__(self, model, conditions: Conditions, guidance_scale: float = OFFICIAL_GUIDANCE_SCALE,
                 latent_channels: int | None = None):
        self.model = model
        self.conditions = conditions
        self.unconditional = conditions.zeros_like()
        self.guidance_scale = float(guidance_scale)
        self.latent_channels = latent_channels if latent_channels is not None else model.latent_channels
        self.evaluations = 0  # velocity-field evaluations (each is one or two network passes)

    def _velocity(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.model(x, t, context)

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        x_uncond = x.clone()
        x_uncond[:, self.latent_channels:] = 0
        v_uncond = self._velocity(x_uncond, t, self.unconditional.context)
        if self.guidance_scale < 1.0:  # as official: below 1, guidance is off and the unconditional field is used
            v = v_uncond
        else:
            v_cond = self._velocity(x, t, self.conditions.context)
            v = v_uncond + self.guidance_scale * (v_cond - v_uncond)
        v[:, self.latent_channels:] = 0
        return v
