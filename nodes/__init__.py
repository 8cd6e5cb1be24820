"""The ComfyUI nodes: thin wrappers over ``vssflow_core``, one module per stage, in the classic (V1) node API.

The graph: VSSFlow Checkpoint Loader + VSSFlow Components Loader; VideoLoader@10fps -> Visual Encoder; Phoneme
Tokenizer; FlowDiT Sampler -> Vocoder Decode -> Audio Mux.
"""

from . import comfy_bridge
from .decode import VSSFlowVocoderDecode
from .loaders import VSSFlowCheckpointLoader, VSSFlowComponentsLoader
from .mux import VSSFlowAudioMux
from .phonemes import VSSFlowPhonemeTokenizer
from .sampler import VSSFlowSampler
from .video_loader import VSSFlowVideoLoader
from .visual_encoder import VSSFlowVisualEncoder

comfy_bridge.register_model_folder()

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "VSSFlowCheckpointLoader": VSSFlowCheckpointLoader,
    "VSSFlowComponentsLoader": VSSFlowComponentsLoader,
    "VSSFlowVideoLoader": VSSFlowVideoLoader,
    "VSSFlowPhonemeTokenizer": VSSFlowPhonemeTokenizer,
    "VSSFlowVisualEncoder": VSSFlowVisualEncoder,
    "VSSFlowSampler": VSSFlowSampler,
    "VSSFlowVocoderDecode": VSSFlowVocoderDecode,
    "VSSFlowAudioMux": VSSFlowAudioMux,
}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "VSSFlowCheckpointLoader": "VSSFlow Checkpoint Loader",
    "VSSFlowComponentsLoader": "VSSFlow Components Loader",
    "VSSFlowVideoLoader": "VideoLoader@10fps (VSSFlow)",
    "VSSFlowPhonemeTokenizer": "Phoneme Tokenizer (VSSFlow)",
    "VSSFlowVisualEncoder": "Visual Encoder (VSSFlow)",
    "VSSFlowSampler": "FlowDiT Sampler (VSSFlow)",
    "VSSFlowVocoderDecode": "Vocoder Decode (VSSFlow)",
    "VSSFlowAudioMux": "Audio Mux (VSSFlow)",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
