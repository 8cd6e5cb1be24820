"""Visual Encoder (VSSFlow): CLIP features at 10 fps and Synchformer features at 25 fps, 10 s window by window."""

from __future__ import annotations

import math

from .comfy_bridge import io
from .common import CATEGORY, ComponentsType, PhonemesType, VideoSourceType, VisualType, on_device


class VSSFlowVisualEncoder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VSSFlowVisualEncoder", display_name="Visual Encoder (VSSFlow)", category=CATEGORY,
            description="Encodes the clip with CLIP (10 frames per second: what is seen) and Synchformer (25 frames "
                        "per second: when things happen) over VSSFlow's 10 s windows: a shorter clip is padded with "
                        "black, as the model was trained; a longer one is covered by overlapping windows, read one "
                        "window at a time.",
            inputs=[ComponentsType.Input("vssflow_components", tooltip="From the VSSFlow Components Loader."),
                    VideoSourceType.Input("vssflow_video", tooltip="From VideoLoader@10fps."),
                    PhonemesType.Input("phonemes", optional=True,
                                       tooltip="From the Dialogue node or the Phoneme Tokenizer: the windows of a "
                                               "long clip are then placed so that no seam cuts a line.")],
            outputs=[VisualType.Output("visual_features", tooltip="The clip's visual features and duration, for the "
                                                                  "FlowDiT Sampler.")],
        )

    @classmethod
    def execute(cls, vssflow_components, vssflow_video, phonemes=None) -> io.NodeOutput:
        return io.NodeOutput(encode_visual(vssflow_components, vssflow_video, phonemes))


def encode_visual(vssflow_components, vssflow_video, phonemes=None):
    """The encoder's work (also done by Add Sound to Video)."""
    parts = vssflow_components.components
    with on_device([parts.clip, parts.synchformer], vssflow_components.load_device,
                   vssflow_components.offload_device):
        # the loader already held the clip to the user's max_duration
        features = parts.encode_video(vssflow_video.source, max_duration=math.inf, speech=phonemes)
    features.clip, features.synch = features.clip.cpu(), features.synch.cpu()
    return features
