"""Visual Encoder (VSSFlow): CLIP features at 10 fps and Synchformer features at 25 fps over the 10 s window."""

from __future__ import annotations

from .common import CATEGORY, COMPONENTS, VIDEO_SOURCE, VISUAL, on_device


class VSSFlowVisualEncoder:
    DESCRIPTION = ("Encodes the clip with CLIP (10 frames per second: what is seen) and Synchformer (25 frames per "
                   "second: when things happen), over VSSFlow's 10 s window; a shorter clip is padded with black, as "
                   "the model was trained.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (VISUAL,)
    RETURN_NAMES = ("visual_features",)
    OUTPUT_TOOLTIPS = ("The clip's visual features and duration, for the FlowDiT Sampler.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vssflow_components": (COMPONENTS, {"tooltip": "From the VSSFlow Components Loader."}),
                "vssflow_video": (VIDEO_SOURCE, {"tooltip": "From VideoLoader@10fps."}),
            }
        }

    def encode(self, vssflow_components, vssflow_video):
        parts = vssflow_components.components
        with on_device([parts.clip, parts.synchformer], vssflow_components.load_device,
                       vssflow_components.offload_device):
            features = parts.encode_video(vssflow_video.source)
        features.clip, features.synch = features.clip.cpu(), features.synch.cpu()
        return (features,)
