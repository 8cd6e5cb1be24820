"""Add Sound to Video (VSSFlow): the whole modular graph in one node, for a first result without wiring.

It runs the same steps, through the same functions, as the eight-node graph (loaders on auto, VideoLoader,
Phoneme Tokenizer, Visual Encoder, FlowDiT Sampler with its defaults, Vocoder Decode, Audio Mux), and keeps the
loaded weights between runs, as ComfyUI's cache keeps the loaders' outputs in the graph.
"""

from __future__ import annotations

from ..vssflow_core.flow.guidance import OFFICIAL_GUIDANCE_SCALE
from ..vssflow_core.flow.solvers import DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER
from . import comfy_bridge
from .comfy_bridge import io
from .common import CATEGORY, SEARCH_ALIASES
from .decode import decode_audio
from .loaders import AUTO, NONE, loaded_components, loaded_model
from .mux import mux_and_save
from .phonemes import tokenize
from .sampler import MAX_SEED, sample_latent
from .video_loader import load_video
from .visual_encoder import encode_visual

PREVIEW_PREFIX = "vssflow/add_sound"  # in the temp folder: connect Save Video to keep the result

_weights: dict[tuple, tuple] = {}  # the last weights loaded, by what was found in models/vssflow


def _model_and_components():
    """The loaders' outputs with every choice on auto (the speaker encoder skipped: no reference is taken here),
    loaded again only when the files in models/vssflow change."""
    key = (tuple(map(str, comfy_bridge.models_dirs())), tuple(comfy_bridge.model_files()))
    if key not in _weights:
        _weights.clear()  # one set of weights at a time
        _weights[key] = (loaded_model(AUTO, "auto", "float32"),
                         loaded_components(AUTO, AUTO, AUTO, AUTO, NONE, False, "auto"))
    return _weights[key]


class VSSFlowAddSoundToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VSSFlowAddSoundToVideo", display_name="Add Sound to Video (VSSFlow)", category=CATEGORY,
            description="Adds sound effects, and speech when a transcript is given, to a video in one step: the "
                        "modular VSSFlow graph with its defaults (models on auto, the official dopri5 sampler, "
                        "guidance 3). Shows the result; connect Save Video to keep it. For other settings (solver, "
                        "speech window, speaker, several takes) use the modular nodes or the VSSFlow blueprint.",
            search_aliases=SEARCH_ALIASES,
            inputs=[
                io.Video.Input("video", tooltip="The clip: a VIDEO from Load Video, Create Video, a generator."),
                io.String.Input("transcript", multiline=True, default="", optional=True,
                                tooltip="Words to be spoken over the whole clip (English, or ARPAbet phones). "
                                        "Empty: sound effects only."),
                io.Int.Input("seed", default=0, min=0, max=MAX_SEED, control_after_generate=True, optional=True,
                             tooltip="Seed of the starting noise."),
            ],
            outputs=[io.Video.Output("video", tooltip="The video with its new sound."),
                     io.Audio.Output("audio", tooltip="The new sound alone: 16 kHz mono, as long as the video.")],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video, transcript: str = "", seed: int = 0) -> io.NodeOutput:
        model, components = _model_and_components()
        vssflow_video, video, _, duration, _ = load_video(video=video)
        phonemes = tokenize(transcript, duration=duration)
        visual = encode_visual(components, vssflow_video, phonemes)  # windows placed around the speech
        latent = sample_latent(model, components, visual, seed, DEFAULT_FIXED_STEPS, OFFICIAL_GUIDANCE_SCALE,
                               DEFAULT_SOLVER, 1, phonemes, schedule=DEFAULT_SCHEDULE,
                               node_id=comfy_bridge.node_id(cls), use_checkpoint_sampler=True)
        audio = decode_audio(components, latent)
        ui, with_sound = mux_and_save(video, audio, PREVIEW_PREFIX, folder_type="temp")
        return io.NodeOutput(with_sound, audio, ui=ui)
