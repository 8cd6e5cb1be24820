"""Classifier-free guidance as a velocity field the ODE solvers integrate.

v = u + w (c - u) with u the unconditional velocity (all conditions zero, exactly as training's condition dropout
saw them) and c the conditional one; the velocity of the condition channels is set to zero so they stay fixed.

One call is one *evaluation* of the guided field, whatever it costs in network passes: by default the unconditional
and conditional inputs travel as one batch of 2B (``batched=True``: one pass, the matrix products twice as tall),
or as two passes of B (``batched=False``, as the official sampler does).  :class:`CachedGuidedVelocity` is the fast
path the pipeline samples with: the same field, with everything constant over a generation computed once
(:class:`~vssflow_core.model.dit.DiTCache`).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..model.dit import DiTCache
from ..model.vssflow import Conditions

OFFICIAL_GUIDANCE_SCALE = 3.0


class GuidedVelocity:
    """Callable ``v(t, x)`` over the full ODE state [B, latent + cond channels, L] of a network
    ``model(x, t, context)``; counts its evaluations and the network passes they took."""

    def __init__(self, model, conditions: Conditions, guidance_scale: float = OFFICIAL_GUIDANCE_SCALE,
                 latent_channels: int | None = None, batched: bool = True):
        self.model = model
        self.conditions = conditions
        self.unconditional = conditions.zeros_like()
        self.guidance_scale = float(guidance_scale)
        self.latent_channels = latent_channels if latent_channels is not None else model.latent_channels
        self.batched = batched
        both = batched and self.guided and not self.conditional_only
        self._both_contexts = torch.cat([self.unconditional.context, conditions.context]) if both else None
        self.evaluations = 0  # guided-velocity evaluations (what the solvers count)
        self.network_passes = 0  # network calls they took: 1 each batched, 2 each unbatched, 1 unguided

    @property
    def guided(self) -> bool:
        """As official: below 1, guidance is off and the unconditional field is used alone."""
        return self.guidance_scale >= 1.0

    @property
    def conditional_only(self) -> bool:
        """At exactly 1 the guided field is the conditional one: one pass of B, not two (a student with guidance
        folded in, see :mod:`vssflow_core.distill`)."""
        return self.guidance_scale == 1.0

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.evaluations += 1
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        v_uncond, v_cond = self._velocities(t, x)
        v = v_uncond if v_cond is None else v_uncond + self.guidance_scale * (v_cond - v_uncond)
        out = torch.zeros_like(x)  # the condition channels do not move
        out[:, : self.latent_channels] = v[:, : self.latent_channels]
        return out

    def _velocities(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(unconditional, conditional or None when unguided) network velocities at (t, x)."""
        x_uncond = x.clone()
        x_uncond[:, self.latent_channels:] = 0
        if not self.guided:
            return self._pass(x_uncond, t, self.unconditional.context), None
        if self.conditional_only:
            return self._pass(x, t, self.conditions.context), None
        if self.batched:
            return self._pass(torch.cat([x_uncond, x]), torch.cat([t, t]), self._both_contexts).chunk(2)
        return self._pass(x_uncond, t, self.unconditional.context), self._pass(x, t, self.conditions.context)

    def _pass(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.network_passes += 1
        return self.model(x, t, context)


LatentVelocity = Callable[[torch.Tensor, torch.Tensor, DiTCache], torch.Tensor]


class CachedGuidedVelocity(GuidedVelocity):
    """:class:`GuidedVelocity` of a VSSFlow network on prepared conditions: the same field, faster.

    The :class:`~vssflow_core.model.dit.DiTCache` of [unconditional ; conditional] (or of each alone, unbatched) is
    made once here; each evaluation then runs ``model.latent_velocity`` on the audio-latent channels of the state.
    Its condition channels are not read: they are constants of the flow (their velocity is zero, so the solvers
    carry them unchanged), and the cache holds them.  The state may be float32 with a bfloat16 network: the stream
    and the velocity are float32 (see :meth:`~vssflow_core.model.dit.VSSFlowDiT.latent_velocity`).

    ``latent_velocity`` replaces ``model.latent_velocity`` (e.g. by its compiled form, see
    :mod:`vssflow_core.model.compile`).
    """

    def __init__(self, model, conditions: Conditions, guidance_scale: float = OFFICIAL_GUIDANCE_SCALE,
                 batched: bool = True, latent_velocity: LatentVelocity | None = None):
        super().__init__(model, conditions, guidance_scale, model.latent_channels, batched)
        self.latent_velocity = latent_velocity or model.latent_velocity
        if not self.guided:
            self.caches = [model.prepare(self.unconditional)]
        elif self.conditional_only:
            self.caches = [model.prepare(conditions)]
        elif batched:
            self.caches = [model.prepare(Conditions.cat([self.unconditional, conditions]))]
        else:
            self.caches = [model.prepare(self.unconditional), model.prepare(conditions)]

    def _velocities(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        latent = x[:, : self.latent_channels]
        if not self.guided or self.conditional_only:  # the one prepared cache (unconditional, or conditional)
            return self._pass(latent, t, self.caches[0]), None
        if self.batched:
            return self._pass(torch.cat([latent, latent]), torch.cat([t, t]), self.caches[0]).chunk(2)
        return self._pass(latent, t, self.caches[0]), self._pass(latent, t, self.caches[1])

    def _pass(self, latent: torch.Tensor, t: torch.Tensor, cache: DiTCache) -> torch.Tensor:
        self.network_passes += 1
        return self.latent_velocity(latent, t, cache)
