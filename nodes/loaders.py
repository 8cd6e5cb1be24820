"""VSSFlow Checkpoint Loader and VSSFlow Components Loader: weights from ``models/vssflow/``."""

from __future__ import annotations

from ..vssflow_core.devices import resolve_dtype
from ..vssflow_core.loading import DEMO, component_path, load_components, load_network
from ..vssflow_core.weights.registry import REGISTRY
from . import comfy_bridge
from .comfy_bridge import io
from .common import (CATEGORY, DEVICES, DTYPES, ComponentsType, LoadedComponents, LoadedModel, ModelType,
                     compute_device)

AUTO = "auto"
NONE = "none"
COMPONENT_NAMES = ("clip", "synchformer", "vae", "vocoder", "rawnet3")

_AUTO_TIP = ("auto: found in models/vssflow/<component>/ (or the Hugging Face cache) through the weights registry, "
             "which checks it is the right model")
_DEMO_TIP = (" With no full checkpoint installed, auto is the demo model shipped with the pack (trained on synthetic "
             "scenes, no downloads); demo picks it explicitly.")


class VSSFlowCheckpointLoader(io.ComfyNode):
    """The VSSFlow network (DiT and condition projections) from a checkpoint in models/vssflow."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VSSFlowCheckpointLoader", display_name="VSSFlow Checkpoint Loader", category=CATEGORY,
            description="Loads the VSSFlow network from models/vssflow: an official .ckpt, its .safetensors "
                        "conversion, or a checkpoint trained with this package. Weights rest on the offload device "
                        "and move to the GPU only while sampling.",
            inputs=[
                io.Combo.Input("ckpt_name", options=[AUTO, DEMO, *comfy_bridge.model_files()], default=AUTO,
                               tooltip="Checkpoint file in models/vssflow. "
                                       + _AUTO_TIP.replace("<component>", "vssflow") + _DEMO_TIP),
                io.Combo.Input("device", options=DEVICES, default="auto", tooltip="auto: ComfyUI's compute device."),
                io.Combo.Input("dtype", options=list(DTYPES), default="float32",
                               tooltip="Precision of the network. With bfloat16/float16 prefer a fixed-step solver: "
                                       "the adaptive dopri5 takes many more steps on half-precision noise."),
            ],
            outputs=[ModelType.Output("vssflow_model", tooltip="The VSSFlow network, for the FlowDiT Sampler.")],
        )

    @classmethod
    def execute(cls, ckpt_name: str, device: str, dtype: str) -> io.NodeOutput:
        return io.NodeOutput(loaded_model(ckpt_name, device, dtype))


def loaded_model(ckpt_name: str, device: str, dtype: str) -> LoadedModel:
    """The Checkpoint Loader's work (also done by Add Sound to Video)."""
    load_device, offload = compute_device(device), comfy_bridge.offload_device()
    if load_device.type == "cpu":
        offload = load_device
    checkpoint = {AUTO: None, DEMO: DEMO}.get(ckpt_name, ckpt_name)
    if checkpoint not in (None, DEMO):
        checkpoint = comfy_bridge.model_path(ckpt_name)
    model = load_network(checkpoint, models_dir=comfy_bridge.models_dirs(), device=offload, dtype=DTYPES[dtype])
    return LoadedModel(model=model, load_device=load_device, offload_device=offload, name=ckpt_name)


def licence_notice() -> str:
    """Which downloadable component carries which licence, from the weights registry (said where users fetch)."""
    return "; ".join(f"{name}: {REGISTRY[name].license}" for name in COMPONENT_NAMES)


class VSSFlowComponentsLoader(io.ComfyNode):
    """CLIP, Synchformer, the VAE and vocoder, and the optional RawNet3 speaker encoder."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        files = comfy_bridge.model_files()
        return io.Schema(
            node_id="VSSFlowComponentsLoader", display_name="VSSFlow Components Loader", category=CATEGORY,
            description="Loads the frozen helpers VSSFlow works with: the CLIP and Synchformer video encoders, the "
                        "AudioLDM2 VAE and HiFi-GAN vocoder, and the RawNet3 speaker encoder (needed only with a "
                        "speaker reference). 'auto' finds each in models/vssflow/<component>/; with download on, "
                        "missing public weights are fetched there first. All on auto with no full checkpoint "
                        "installed: the demo model's parameter-free stand-ins, which pair with the Checkpoint "
                        "Loader's demo model.",
            inputs=[
                *(io.Combo.Input(name, options=[AUTO, *files], default=AUTO,
                                 tooltip=_AUTO_TIP.replace("<component>", name))
                  for name in COMPONENT_NAMES[:-1]),
                io.Combo.Input("rawnet3", options=[AUTO, NONE, *files], default=AUTO,
                               tooltip="Speaker encoder, used only with a speaker reference. auto: loaded when "
                                       "found; none: skipped."),
                io.Boolean.Input("download", default=False,
                                 tooltip="Download missing public weights (CLIP, Synchformer, VAE, vocoder, RawNet3) "
                                         "into models/vssflow through the weights registry. Off: only local files "
                                         "are used. Licences: " + licence_notice() + "."),
                io.Combo.Input("device", options=DEVICES, default="auto", tooltip="auto: ComfyUI's compute device."),
                io.Combo.Input("encoder_dtype", options=["auto", "float32", "bfloat16"], default="auto",
                               optional=True, advanced=True,
                               tooltip="Precision of CLIP and Synchformer. auto: bfloat16 where the compute device "
                                       "multiplies it in hardware (recent GPUs, CPUs with AVX512-BF16 or AMX), else "
                                       "float32."),
            ],
            outputs=[ComponentsType.Output("vssflow_components",
                                           tooltip="The encoders, VAE and vocoder, for the Visual Encoder, FlowDiT "
                                                   "Sampler and Vocoder Decode.")],
        )

    @classmethod
    def execute(cls, clip: str, synchformer: str, vae: str, vocoder: str, rawnet3: str, download: bool, device: str,
                encoder_dtype: str = "auto") -> io.NodeOutput:
        return io.NodeOutput(loaded_components(clip, synchformer, vae, vocoder, rawnet3, download, device,
                                               encoder_dtype))


def loaded_components(clip: str, synchformer: str, vae: str, vocoder: str, rawnet3: str, download: bool,
                      device: str, encoder_dtype: str = "auto") -> LoadedComponents:
    """The Components Loader's work (also done by Add Sound to Video)."""
    load_device, offload = compute_device(device), comfy_bridge.offload_device()
    if load_device.type == "cpu":
        offload = load_device
    chosen = {"clip": clip, "synchformer": synchformer, "vae": vae, "vocoder": vocoder, "rawnet3": rawnet3}
    paths = {name: component_path(name, comfy_bridge.model_path(value))
             for name, value in chosen.items() if value not in (AUTO, NONE)}
    components = load_components(
        models_dir=comfy_bridge.models_dirs(), **paths, speaker=False if rawnet3 == NONE else None,
        download=bool(download), device=offload,
        encoder_dtype=resolve_dtype(encoder_dtype, load_device),  # the device it computes on, not the offload one
    )
    return LoadedComponents(components=components, load_device=load_device, offload_device=offload, names=chosen)
