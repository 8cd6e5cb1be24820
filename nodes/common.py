"""The values that travel between our nodes, and moving weights to the compute device and back."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import torch

from ..vssflow_core.model.vssflow import VSSFlow
from ..vssflow_core.components import PipelineComponents
from ..vssflow_core.flow.settings import SamplingStats
from ..vssflow_core.windows import WindowPlan
from . import comfy_bridge

CATEGORY = "audio/VSSFlow"

# Socket types private to the pack (unique names, so nothing else can be plugged in by mistake).
MODEL = "VSSFLOW_MODEL"
COMPONENTS = "VSSFLOW_COMPONENTS"
VIDEO_SOURCE = "VSSFLOW_VIDEO"
VISUAL = "VSSFLOW_VISUAL"
PHONEMES = "VSSFLOW_PHONEMES"
LATENT = "VSSFLOW_LATENT"
# ... as V3 socket types
ModelType, ComponentsType, VideoSourceType, VisualType, PhonemesType, LatentType = (
    comfy_bridge.io.Custom(name) for name in (MODEL, COMPONENTS, VIDEO_SOURCE, VISUAL, PHONEMES, LATENT))

# What people type in the node search for this kind of model (the node names say "VSSFlow").
SEARCH_ALIASES = ["foley", "video to audio", "sound effects", "dubbing", "lip sync", "text to speech"]

DEVICES = ["auto", "cpu"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def compute_device(choice: str) -> torch.device:
    """``auto``: the device ComfyUI computes on; ``cpu``: the CPU."""
    if choice == "cpu":
        return torch.device("cpu")
    if choice != "auto":
        raise ValueError(f"unknown device '{choice}'; choose one of {', '.join(DEVICES)}")
    return comfy_bridge.torch_device()


@dataclass(eq=False)
class LoadedModel:
    """``VSSFLOW_MODEL``: the VSSFlow network, resting on ``offload_device``, computing on ``load_device``."""

    model: VSSFlow
    load_device: torch.device
    offload_device: torch.device
    name: str


@dataclass(eq=False)
class LoadedComponents:
    """``VSSFLOW_COMPONENTS``: CLIP, Synchformer, VAE, vocoder and (optionally) RawNet3, resting on
    ``offload_device``, computing on ``load_device``."""

    components: PipelineComponents
    load_device: torch.device
    offload_device: torch.device
    names: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class Latent:
    """``VSSFLOW_LATENT``: sampled packed latents ``[B, 128, L]``, or ``[B, windows, 128, L]`` for a clip longer than
    one window (CPU), and the clip they belong to."""

    latent: torch.Tensor
    duration: float  # seconds of the clip: the decoded audio is exactly this long
    stats: SamplingStats  # seeds, solver, steps and evaluations of the run, as the core reports them
    plan: WindowPlan | None = None  # where the windows lie (None: the one window of a short clip)
    edit: Any = None  # the AudioEdit it was sampled with (decoding puts its kept track back)
    speech_only: tuple = ()  # (start, end) of the lines when only speech is wanted: decoding silences the rest


def _bytes(modules: Iterable[torch.nn.Module]) -> int:
    return sum(t.numel() * t.element_size() for m in modules for t in [*m.parameters(), *m.buffers()])


@contextlib.contextmanager
def on_device(modules: list[torch.nn.Module], load_device: torch.device, offload_device: torch.device) -> Iterator[None]:
    """Move ``modules`` to ``load_device`` for the duration of the block, then back to ``offload_device`` (also when
    the block fails or is cancelled), and let ComfyUI return the freed memory to the driver."""
    if load_device == offload_device:
        yield
        return
    comfy_bridge.free_memory(int(_bytes(modules) * 1.2), load_device)  # make room: ComfyUI unloads its own models
    try:
        for module in modules:
            module.to(load_device)
        yield
    finally:
        for module in modules:
            module.to(offload_device)
        comfy_bridge.soft_empty_cache()
