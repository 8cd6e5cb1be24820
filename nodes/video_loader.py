"""VideoLoader@10fps (VSSFlow): the clip to add sound to, from a VIDEO, an IMAGE batch with its frame rate, or a file."""

from __future__ import annotations

import os

from ..vssflow_core.config import WINDOWS
from ..vssflow_core.video import preview_frames, resolve_video_input
from . import comfy_bridge
from .comfy_bridge import io
from .common import CATEGORY, VideoSourceType

NO_FILE = "(none)"
LONGEST_LIMIT_SEC = 4 * 3600.0  # the highest max_duration the widget offers


class VSSFlowVideoLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VSSFlowVideoLoader", display_name="VideoLoader@10fps (VSSFlow)", category=CATEGORY,
            description="The clip VSSFlow adds sound to, of any length up to max_duration (clips longer than the "
                        "model's 10 s window are generated in overlapping windows). Connect a VIDEO (Load Video, "
                        "Create Video, a video generator), or an IMAGE batch together with its frame_rate, or pick a "
                        "file from the input folder or the pack's demo clips: exactly one. The frame rate of images "
                        "is never guessed. The frames_10fps output shows what the CLIP branch sees (10 frames per "
                        "second).",
            inputs=[
                # optional, so that it can stay at (none) while a VIDEO or images are connected; first of the
                # optional inputs, so saved workflows keep their widget values in place
                io.Combo.Input("file", options=[NO_FILE, *comfy_bridge.input_videos(), *comfy_bridge.demo_videos()],
                               default=NO_FILE, optional=True,
                               tooltip="A video in ComfyUI's input folder, or one of the pack's demo clips "
                                       "(demo_videos/...). Used only when no VIDEO or images are connected: leave it "
                                       "at (none) then."),
                io.Video.Input("video", optional=True,
                               tooltip="A VIDEO from any node (Load Video, Create Video, generators)."),
                io.Image.Input("images", optional=True,
                               tooltip="Frames of the clip; set frame_rate to their frames per second."),
                io.Float.Input("frame_rate", default=0.0, min=0.0, max=1000.0, step=0.001, optional=True,
                               tooltip="Frames per second of the connected images (required with images, ignored "
                                       "otherwise: a VIDEO or a file carries its own timing)."),
                io.Float.Input("max_duration", default=WINDOWS.max_duration_sec, min=1.0, max=LONGEST_LIMIT_SEC,
                               step=1.0, optional=True,
                               tooltip="Longest video accepted, in seconds; a longer one is refused before any "
                                       "work."),
            ],
            outputs=[
                VideoSourceType.Output("vssflow_video", tooltip="The clip, for the Visual Encoder."),
                io.Video.Output("video", tooltip="The clip as a VIDEO, for Audio Mux (the file itself when it came "
                                                 "from one, so its picture is copied unchanged)."),
                io.Image.Output("frames_10fps", tooltip="The frames sampled at 10 fps, as the CLIP branch sees them "
                                                        "(shrunk for preview; the first minute of a longer clip)."),
                io.Float.Output("duration", tooltip="Seconds of video: the generated audio has exactly this length. "
                                                    "Connect it to the Phoneme Tokenizer."),
                io.Float.Output("fps", tooltip="Average frames per second of the clip."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, file=NO_FILE, **kwargs):
        # A file can change on disk under the same name; linked inputs are tracked by ComfyUI itself.
        if not file or file == NO_FILE:
            return NO_FILE
        path = comfy_bridge.input_file(file)
        try:
            stat = os.stat(path)
        except OSError:
            return f"{file}: missing"
        return f"{file}:{stat.st_mtime_ns}:{stat.st_size}"

    @classmethod
    def execute(cls, file: str = NO_FILE, video=None, images=None, frame_rate: float = 0.0,
                max_duration: float = WINDOWS.max_duration_sec) -> io.NodeOutput:
        return io.NodeOutput(*load_video(file, video, images, frame_rate, max_duration))


def load_video(file: str = NO_FILE, video=None, images=None, frame_rate: float = 0.0,
               max_duration: float = WINDOWS.max_duration_sec) -> tuple:
    """The loader's work (also done by Add Sound to Video): its five outputs."""
    path = comfy_bridge.input_file(file) if file and file != NO_FILE else None
    resolved = resolve_video_input(video=video, images=images, frame_rate=frame_rate if images is not None else None,
                                   path=path, max_duration=max_duration)
    if video is None:
        video = (comfy_bridge.video_from_file(resolved.path) if resolved.path is not None
                 else comfy_bridge.video_from_frames(images, frame_rate))
    return resolved, video, preview_frames(resolved), resolved.duration, resolved.fps
