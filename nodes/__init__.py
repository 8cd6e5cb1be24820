"""The ComfyUI nodes: thin wrappers over ``vssflow_core``, one module per stage, in the V3 node API (``comfy_api``,
pinned to ``v0_0_2``; a stand-in outside ComfyUI), registered through :func:`comfy_entrypoint`.

The graph: VSSFlow Checkpoint Loader + VSSFlow Components Loader; VideoLoader@10fps -> Visual Encoder; Phoneme
Tokenizer; FlowDiT Sampler -> Vocoder Decode -> Audio Mux. Add Sound to Video runs the same steps in one node.
The node ids and input names are the V1 pack's, so workflows saved before the port load unchanged.
"""

from . import comfy_bridge, routes
from .add_sound import VSSFlowAddSoundToVideo
from .comfy_bridge import ComfyExtension
from .decode import VSSFlowVocoderDecode
from .dialogue import VSSFlowDialogue
from .edit import VSSFlowAudioEdit, VSSFlowPickTake
from .loaders import VSSFlowCheckpointLoader, VSSFlowComponentsLoader
from .mux import VSSFlowAudioMux
from .phonemes import VSSFlowPhonemeTokenizer
from .sampler import VSSFlowSampler
from .video_loader import VSSFlowVideoLoader
from .visual_encoder import VSSFlowVisualEncoder

comfy_bridge.register_model_folder()
routes.register()  # the frontend extension's live timeline (nothing outside ComfyUI)

NODES: list[type] = [
    VSSFlowCheckpointLoader,
    VSSFlowComponentsLoader,
    VSSFlowVideoLoader,
    VSSFlowPhonemeTokenizer,
    VSSFlowDialogue,
    VSSFlowVisualEncoder,
    VSSFlowSampler,
    VSSFlowVocoderDecode,
    VSSFlowAudioMux,
    VSSFlowAddSoundToVideo,
    VSSFlowAudioEdit,
    VSSFlowPickTake,
]


class VSSFlowExtension(ComfyExtension):
    async def get_node_list(self) -> list[type]:
        return list(NODES)


async def comfy_entrypoint() -> VSSFlowExtension:
    """What ComfyUI calls to register the nodes (a pack must not also export NODE_CLASS_MAPPINGS: ComfyUI then
    reads that and never calls this)."""
    return VSSFlowExtension()


__all__ = ["NODES", "comfy_entrypoint"]
