"""Audio and video files out (and reference audio in): atomic wav/flac writing, stream-copy muxing onto a video."""

from .audio_io import (AUDIO_FORMATS, AudioReadError, OutputPathError, atomic_output, check_output_path, read_audio,
                       write_audio)
from .mux import CONTAINER_FORMATS, MuxError, MuxResult, mux_audio, video_duration
from .video_file import materialize_video, write_frames_video

__all__ = [
    "AUDIO_FORMATS",
    "CONTAINER_FORMATS",
    "AudioReadError",
    "MuxError",
    "MuxResult",
    "OutputPathError",
    "atomic_output",
    "check_output_path",
    "materialize_video",
    "mux_audio",
    "read_audio",
    "video_duration",
    "write_audio",
    "write_frames_video",
]
