"""VideoLoader@10fps (VSSFlow): the clip to add sound to, from a VIDEO, an IMAGE batch with its frame rate, or a file."""

from __future__ import annotations

import os

from ..vssflow_core.config import WINDOWS
from ..vssflow_core.video import preview_frames, resolve_video_input
from . import comfy_bridge
from .common import CATEGORY, VIDEO_SOURCE

NO_FILE = "(none)"
LONGEST_LIMIT_SEC = 4 * 3600.0  # the highest max_duration the widget offers


class VSSFlowVideoLoader:
    DESCRIPTION = ("The clip VSSFlow adds sound to, of any length up to max_duration (clips longer than the model's "
                   "10 s window are generated in overlapping windows). Connect a VIDEO (Load Video, Create Video, a "
                   "video generator), or an IMAGE batch together with its frame_rate, or pick a file from the input "
                   "folder: exactly one. The frame rate of images is never guessed. The frames_10fps output shows what "
                   "the CLIP branch sees (10 frames per second).")
    CATEGORY = CATEGORY
    RETURN_TYPES = (VIDEO_SOURCE, "VIDEO", "IMAGE", "FLOAT", "FLOAT")
    RETURN_NAMES = ("vssflow_video", "video", "frames_10fps", "duration", "fps")
    OUTPUT_TOOLTIPS = (
        "The clip, for the Visual Encoder.",
        "The clip as a VIDEO, for Audio Mux (the file itself when it came from one, so its picture is copied "
        "unchanged).",
        "The frames sampled at 10 fps, as the CLIP branch sees them (shrunk for preview; the first minute of a longer "
        "clip).",
        "Seconds of video: the generated audio has exactly this length. Connect it to the Phoneme Tokenizer.",
        "Average frames per second of the clip.",
    )
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "file": ([NO_FILE, *comfy_bridge.input_videos()], {
                    "default": NO_FILE,
                    "tooltip": "A video in ComfyUI's input folder; leave at (none) when a VIDEO or images are "
                               "connected."}),
            },
            "optional": {
                "video": ("VIDEO", {"tooltip": "A VIDEO from any node (Load Video, Create Video, generators)."}),
                "images": ("IMAGE", {"tooltip": "Frames of the clip; set frame_rate to their frames per second."}),
                "frame_rate": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.001,
                    "tooltip": "Frames per second of the connected images (required with images, ignored "
                               "otherwise: a VIDEO or a file carries its own timing)."}),
                "max_duration": ("FLOAT", {
                    "default": WINDOWS.max_duration_sec, "min": 1.0, "max": LONGEST_LIMIT_SEC, "step": 1.0,
                    "tooltip": "Longest video accepted, in seconds; a longer one is refused before any work."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, file=NO_FILE, **kwargs):
        # A file can change on disk under the same name; linked inputs are tracked by ComfyUI itself.
        if not file or file == NO_FILE:
            return NO_FILE
        path = comfy_bridge.input_file(file)
        try:
            stat = os.stat(path)
        except OSError:
            return f"{file}: missing"
        return f"{file}:{stat.st_mtime_ns}:{stat.st_size}"

    def load(self, file: str = NO_FILE, video=None, images=None, frame_rate: float = 0.0,
             max_duration: float = WINDOWS.max_duration_sec):
        path = comfy_bridge.input_file(file) if file and file != NO_FILE else None
        resolved = resolve_video_input(video=video, images=images, frame_rate=frame_rate if images is not None else None,
                                       path=path, max_duration=max_duration)
        if video is None:
            video = (comfy_bridge.video_from_file(resolved.path) if resolved.path is not None
                     else comfy_bridge.video_from_frames(images, frame_rate))
        return (resolved, video, preview_frames(resolved), resolved.duration, resolved.fps)
