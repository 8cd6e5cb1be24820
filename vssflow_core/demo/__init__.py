"""The demo model: the VSSFlow network trained here on procedural clips, shipped in ``checkpoint/``, the default of
the command line and the nodes when no full checkpoint is installed.

It is the same network class, condition routing, phoneme pipeline and sampler as the full model, narrower and
shallower, with the frozen pretrained parts replaced by parameter-free stand-ins (:mod:`.frontends`), so it runs with
nothing to download.  It knows the synthetic world it was trained on (bouncing balls, flashing lamps, sliding bars,
drawn talking faces; see :mod:`vssflow_core.synthetic`), not real video.

A checkpoint folder that holds ``frontend.json`` beside ``vssflow.safetensors`` is a demo-style checkpoint: every
training run with ``encoders.frontend = "demo"`` writes one, and :func:`load_frontends` builds its stand-ins.
"""

from __future__ import annotations

import os
from pathlib import Path

from .frontends import (FRONTEND_FILE, DemoFrontendConfig, GriffinLimVocoder, MelPatchCodec, MotionGridEncoder,
                        PixelGridEncoder)

__all__ = ["DEMO_CHECKPOINT", "FRONTEND_FILE", "DemoFrontendConfig", "demo_available", "frontend_config",
           "load_frontends"]

DEMO_CHECKPOINT = Path(__file__).resolve().with_name("checkpoint")


def demo_available() -> bool:
    """True when the shipped demo checkpoint is present (it is, in every checkout and install of this package)."""
    return (DEMO_CHECKPOINT / FRONTEND_FILE).is_file() and any(DEMO_CHECKPOINT.glob("*.safetensors"))


def frontend_config(checkpoint: str | os.PathLike | None) -> DemoFrontendConfig | None:
    """The demo front-ends a checkpoint was trained with (``frontend.json`` in its folder, or beside the file), or
    None for a checkpoint of the full model."""
    if checkpoint is None:
        return None
    path = Path(checkpoint).expanduser()
    folder = path if path.is_dir() else path.parent
    spec = folder / FRONTEND_FILE
    return DemoFrontendConfig.read(spec) if spec.is_file() else None


def load_frontends(cfg: DemoFrontendConfig, device=None):
    """``(clip, synchformer, vae, vocoder)`` stand-ins on ``device``, in the pipeline's component order."""
    parts = (PixelGridEncoder(cfg), MotionGridEncoder(cfg), MelPatchCodec(cfg), GriffinLimVocoder(cfg))
    return tuple(part.to(device) if device is not None else part for part in parts)
