"""Loading: which checkpoint (a full one, else the demo shipped with the package), the network from it, and the frozen
components found beside it, in the models folder(s) or the Hugging Face cache."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from .codec.vae import VAEConfig, load_vae
from .codec.vocoder import VocoderConfig, load_vocoder
from .components import PipelineComponents, PipelineConfigError
from .config import SEQUENCE, SequenceConfig
from .convert import COMPONENT_FILES
from .demo import DEMO_CHECKPOINT, demo_available, frontend_config, load_frontends
from .devices import default_device, resolve_dtype
from .encoders.clip import load_clip_visual
from .encoders.rawnet3 import load_rawnet3
from .encoders.synchformer import load_synchformer
from .model.vssflow import VSSFlow
from .flow.settings import SAMPLER_METADATA_KEY, recommended_settings
from .weights.checkpoint import CheckpointError, load_vssflow, read_metadata
from .weights.hub import MissingWeightsError, resolve_any

__all__ = ["DEMO", "component_finder", "component_path", "load_components", "load_network", "read_config",
           "recommended_sampler",
           "resolve_checkpoint"]

log = logging.getLogger(__name__)

DEMO = "demo"  # the checkpoint name that always means the shipped demo model


def load_network(
    checkpoint: str | os.PathLike | None = None,
    *,
    models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    download: bool = False,
    verify: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    head_dim: int | None = None,
) -> VSSFlow:
    """The VSSFlow network from ``checkpoint`` (see :func:`resolve_checkpoint`)."""
    device = torch.device(device) if device is not None else default_device()
    path = resolve_checkpoint(checkpoint, models_dir=models_dir, download=download, verify=verify)
    model = load_vssflow(path, head_dim=head_dim, dtype=dtype, device=device)
    # the checkpoint's own sampler (a distilled student's), carried with the network for the pipeline and the nodes
    model.recommended_sampler = _recommendation(path)
    return model


def resolve_checkpoint(
    checkpoint: str | os.PathLike | None = None,
    *,
    models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    download: bool = False,
    verify: bool = True,
    announce: bool = True,
) -> Path:
    """The checkpoint to load: ``checkpoint`` itself (a file or a converted folder); ``"demo"`` for the shipped demo
    model; None for the full model found in the models folder(s) or the Hugging Face cache, else the demo.

    Falling back to the demo is logged (``announce``), because the demo only knows synthetic scenes.
    """
    if checkpoint is not None and str(checkpoint) != DEMO:
        return Path(checkpoint).expanduser()
    if checkpoint is None:
        try:
            return component_finder(None, models_dir, download, verify)("vssflow", None)[0]
        except MissingWeightsError:
            if not demo_available():
                raise
            if announce:
                log.warning("no full VSSFlow checkpoint installed: using the demo model shipped with the package "
                            "(trained on synthetic scenes; see the README to install the full model)")
    if not demo_available():
        raise PipelineConfigError(f"the demo checkpoint is missing from {DEMO_CHECKPOINT}; reinstall the package")
    return DEMO_CHECKPOINT


def load_components(
    checkpoint: str | os.PathLike | None = None,
    *,
    models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    clip: str | os.PathLike | None = None,
    synchformer: str | os.PathLike | None = None,
    vae: str | os.PathLike | None = None,
    vocoder: str | os.PathLike | None = None,
    rawnet3: str | os.PathLike | None = None,
    speaker: bool | None = None,
    download: bool = False,
    verify: bool = True,
    device: torch.device | str | None = None,
    encoder_dtype: torch.dtype | str | None = "auto",
    decode: bool = True,
    sequence: SequenceConfig = SEQUENCE,
) -> PipelineComponents:
    """The frozen components.

    A component given as a path is loaded from it as is (its loader still checks keys and shapes strictly).
    One not given is taken from a folder written by ``python -m vssflow_core convert`` when ``checkpoint`` is
    such a folder and holds it, else found through :func:`vssflow_core.weights.hub.resolve` in ``models_dir``
    (default ``$VSSFLOW_MODELS_DIR``) or the Hugging Face cache, checked against the registry unless
    ``verify=False``, and fetched first with ``download=True``.  Missing weights raise
    :class:`~vssflow_core.weights.hub.MissingWeightsError`, whose message says how to get them.  With nothing chosen,
    the components of the network :func:`load_network` would pick (the full model, else the demo's stand-ins).

    ``speaker``: True requires the RawNet3 speaker encoder, False skips it, None loads it when it can be found.
    ``decode`` False leaves the vocoder out (training only encodes).  ``sequence``: the time axes they work on.

    ``models_dir`` may be a list of folders: the first that holds a component wins, and downloads go to the first.
    ``encoder_dtype``: the dtype CLIP and Synchformer run in; ``"auto"`` is bfloat16 where the device multiplies
    bf16 in hardware (:func:`~vssflow_core.devices.has_native_bfloat16`), else float32.
    """
    device = torch.device(device) if device is not None else default_device()
    if (checkpoint is None and not download and clip is None and synchformer is None and vae is None
            and vocoder is None):
        # nothing chosen: the components of the network that load_network(None) would pick (full, else demo);
        # download=True asks for the public pretrained components, so it never falls back to the demo
        checkpoint = resolve_checkpoint(None, models_dir=models_dir, download=download, verify=verify,
                                        announce=False)
    elif checkpoint is not None:
        checkpoint = resolve_checkpoint(checkpoint)
    frontend = frontend_config(checkpoint)
    if frontend is not None:
        chosen = [name for name, path in (("clip", clip), ("synchformer", synchformer), ("vae", vae),
                                          ("vocoder", vocoder)) if path is not None]
        if chosen:
            raise PipelineConfigError(
                f"{checkpoint} is a demo-model checkpoint, which works only with its built-in stand-ins; it "
                f"cannot use the chosen {', '.join(chosen)} weights. Install a full VSSFlow checkpoint to use "
                "them (python -m vssflow_core convert), or leave the components unset")
        clip_model, synch_model, vae_model, voc_model = load_frontends(frontend, device)
        return PipelineComponents(clip_model, synch_model, vae_model, voc_model if decode else None,
                                  sequence=sequence)
    find = component_finder(checkpoint, models_dir, download, verify)
    encoder_dtype = resolve_dtype(encoder_dtype, device)
    clip_model = _load_component("clip", load_clip_visual, find("clip", clip)[0], device=device,
                                 dtype=encoder_dtype)
    synch_model = _load_component("synchformer", load_synchformer, find("synchformer", synchformer)[0],
                                  device=device, dtype=encoder_dtype)
    vae_path, vae_config = find("vae", vae)
    vae_model = _load_component("vae", load_vae, vae_path,
                                read_config(vae_config, VAEConfig.from_diffusers_config), device=device)
    voc_model = None
    if decode:
        voc_path, voc_config = find("vocoder", vocoder)
        voc_model = _load_component("vocoder", load_vocoder, voc_path,
                                    read_config(voc_config, VocoderConfig.from_transformers_config), device=device)
    speaker_model = None
    if rawnet3 is not None or speaker:
        speaker_model = _load_component("rawnet3", load_rawnet3, find("rawnet3", rawnet3)[0], device=device)
    elif speaker is None:
        try:
            speaker_path, _ = find("rawnet3", None)
        except MissingWeightsError:
            speaker_path = None  # optional: generation without a speaker reference does not need it
        if speaker_path is not None:
            speaker_model = _load_component("rawnet3", load_rawnet3, speaker_path, device=device)
    return PipelineComponents(clip_model, synch_model, vae_model, voc_model, speaker_model, sequence=sequence)


def component_path(component: str, path: str | os.PathLike) -> Path:
    """The path to load a component from, given the weights file a user picked.

    A VAE or vocoder weights file with the diffusers/transformers name (``diffusion_pytorch_model.*``,
    ``model.safetensors``, ``pytorch_model.bin``) next to a ``config.json`` stands for its folder, so the loader reads
    the exact configuration instead of inferring it from tensor shapes.  Anything else is the file itself.
    """
    path = Path(path).expanduser()
    names = {"vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
             "vocoder": ("model.safetensors", "pytorch_model.bin")}.get(component, ())
    if path.name in names and (path.parent / "config.json").is_file():
        return path.parent
    return path


def component_finder(
    checkpoint: str | os.PathLike | None,
    models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None,
    download: bool,
    verify: bool,
) -> Callable[[str, str | os.PathLike | None], tuple[Path, Path | None]]:
    """``find(component, given) -> (weights, config.json or None)``: the given path, else the converted checkpoint
    folder's file, else the models folder(s) or the hub cache through the weights registry."""
    converted = _converted_folder_files(checkpoint)
    if models_dir is None or isinstance(models_dir, (str, os.PathLike)):
        folders: list[Any] = [models_dir]
    else:
        folders = list(models_dir)

    def find(component: str, given: str | os.PathLike | None) -> tuple[Path, Path | None]:
        if given is not None:
            return Path(given).expanduser(), None
        if component in converted:
            return converted[component], None
        found = resolve_any(component, folders, download=download, verify=verify)
        return found.weights, found.config

    return find


def _converted_folder_files(checkpoint: str | os.PathLike | None) -> dict[str, Path]:
    """Component files inside a folder written by ``python -m vssflow_core convert`` (the official checkpoint also
    carries the exact CLIP tower, VAE and vocoder it was trained with)."""
    if checkpoint is None or not Path(checkpoint).expanduser().is_dir():
        return {}
    folder = Path(checkpoint).expanduser()
    return {name: folder / file for name, file in COMPONENT_FILES.items()
            if name != "vssflow" and (folder / file).is_file()}


def _load_component(component: str, loader: Callable[..., Any], path: Path, *args: Any, **kwargs: Any) -> Any:
    """``loader(path, ...)``, with "this file holds other weights" (the loaders' KeyError when the tensors they look
    for are absent) turned into a :class:`~vssflow_core.weights.checkpoint.CheckpointError` naming the file."""
    try:
        return loader(path, *args, **kwargs)
    except KeyError as exc:
        reason = exc.args[0] if exc.args else exc
        raise CheckpointError(f"{path} does not hold {component} weights ({reason}); choose the {component} file, or "
                              f"let the weights registry find it (leave it out, or 'auto' in the loader node)") \
            from None


def read_config(path: Path | None, parse: Callable[[Mapping[str, Any]], Any]) -> Any:
    """``parse`` of the JSON file at ``path`` (None: None), a bad file named in a :class:`PipelineConfigError`."""
    if path is None:
        return None
    try:
        return parse(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise PipelineConfigError(f"cannot use the configuration {path}: {exc}") from None


def recommended_sampler(checkpoint: str | os.PathLike | None = None, *, base: Any = None,
                        models_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                        **overrides: Any):
    """The :class:`~vssflow_core.flow.settings.SamplerSettings` to sample ``checkpoint`` with by default: what its
    metadata recommends (a distilled student: its solver, steps and guidance scale 1, see :mod:`vssflow_core.distill`),
    else ``base``/the defaults; the user's ``overrides`` (None: not given) win."""
    path = resolve_checkpoint(checkpoint, models_dir=models_dir, announce=False)
    return recommended_settings(read_metadata(path), base, **overrides)


def _recommendation(path: Path):
    """The settings ``path``'s metadata recommends, or None for a checkpoint without a recommendation."""
    metadata = read_metadata(path)
    return recommended_settings(metadata) if metadata.get(SAMPLER_METADATA_KEY) else None
