"""Visual Encoder (VSSFlow): CLIP features at 10 fps and Synchformer features at 25 fps, 10 s window by window."""

from __future__ import annotations

import math

from .common import CATEGORY, COMPONENTS, VIDEO_SOURCE, VISUAL, on_device


class VSSFlowVisualEncoder:
    DESCRIPTION = ("Encodes the clip with CLIP (10 frames per second: what is seen) and Synchformer (25 frames per "
                   "second: when things happen) over VSSFlow's 10 s windows: a shorter clip is padded with black, as "
                   "the model was trained; a longer one is covered by overlapping windows, read one window at a "
                   "time.")
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
            # the loader already held the clip to the user's max_duration
            features = parts.encode_video(vssflow_video.source, max_duration=math.inf)
        features.clip, features.synch = features.clip.cpu(), features.synch.cpu()
        return (features,)
