"""Audio Mux (VSSFlow): the video with the new sound track, saved as an mp4 (and the sound as a wav) and previewed."""

from __future__ import annotations

import logging
import tempfile

from ..vssflow_core.media import OutputPathError, check_output_path, materialize_video, mux_audio, write_audio
from ..vssflow_core.media.output_plan import plan_output
from ..vssflow_core.media.together import written_together
from . import comfy_bridge
from .comfy_bridge import io
from ..vssflow_core.media.delivery import prepare_tracks
from ..vssflow_core.media.loudness import DEFAULT_TRUE_PEAK_DB, Delivery, Ducking
from ..vssflow_core.media.mux import original_audio
from .common import CATEGORY
from .edit import delivery_from_inputs, delivery_inputs, take_tags, workflow_tags


log = logging.getLogger(__name__)

DEFAULT_PREFIX = "vssflow/VSSFlow"
DEFAULT_STEM = DEFAULT_PREFIX.rpartition("/")[2]


def checked_prefix(filename_prefix: str, folder_type: str = "output") -> str:
    """The prefix files are saved under: an empty one, or one naming only a folder ("", "takes/"), gets the default
    name (ComfyUI would turn it into ".", hence hidden "._00001_.mp4" files); a prefix no file system can store (a NUL
    byte, a name too long) is refused with the reason."""
    prefix = (filename_prefix or "").strip()
    folder, _, stem = prefix.replace("\\", "/").rpartition("/")
    if not stem.strip(". "):
        prefix = f"{folder}/{DEFAULT_STEM}" if folder.strip("/") else DEFAULT_PREFIX
    # the longest name saved: <prefix>_00001_.mp4 (counters grow past five digits only after 99,999 takes)
    root = comfy_bridge.temp_dir() if folder_type == "temp" else comfy_bridge.output_dir()
    check_output_path(root / f"{prefix}_00001_.mp4", "filename_prefix")
    return prefix


class VSSFlowAudioMux(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VSSFlowAudioMux", display_name="Audio Mux (VSSFlow)", category=CATEGORY,
            description="Puts the generated sound on the video and saves it in the output folder as "
                        "<prefix>_00001_.mp4 (the picture copied unchanged when the video is a file, else encoded as "
                        "H.264), with the sound alone as <prefix>_00001_.wav, and shows the video. Existing files "
                        "are never overwritten. With mix_original the video's own sound is kept under the new one. "
                        "One file per batch take.",
            inputs=[
                io.Video.Input("video", tooltip="The clip (VideoLoader@10fps's video output, or any VIDEO)."),
                io.Audio.Input("audio", tooltip="The sound to put on it (Vocoder Decode's output, or any AUDIO)."),
                io.String.Input("filename_prefix", default="vssflow/VSSFlow",
                                tooltip="Where to save, inside the output folder."),
                io.Boolean.Input("mix_original", default=False,
                                 tooltip="Keep the video's own sound, mixed under the new one."),
                io.Float.Input("original_gain", default=1.0, min=0.0, max=4.0, step=0.05,
                               tooltip="Linear gain of the video's own sound in the mix."),
                io.Float.Input("generated_gain", default=1.0, min=0.0, max=4.0, step=0.05,
                               tooltip="Linear gain of the new sound (the wav and the video alike)."),
                *delivery_inputs(),
            ],
            outputs=[io.Video.Output("video", tooltip="The saved video with its new sound (the first take when "
                                                      "there are several).")],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, filename_prefix: str) -> bool | str:
        # before the prompt runs: a prefix that cannot be saved is reported before anything is generated
        try:
            checked_prefix(filename_prefix)
        except OutputPathError as exc:
            return str(exc)
        return True

    @classmethod
    def execute(cls, video, audio, filename_prefix: str, mix_original: bool, original_gain: float,
                generated_gain: float, loudness: str = "off", custom_lufs: float = -16.0,
                true_peak_db: float = DEFAULT_TRUE_PEAK_DB, duck_depth_db: float = Ducking.depth_db,
                duck_attack_ms: float = Ducking.attack_ms, duck_release_ms: float = Ducking.release_ms,
                phonemes=None) -> io.NodeOutput:
        duration = audio["waveform"].shape[-1] / int(audio["sample_rate"])
        level, ducking, lines = delivery_from_inputs(loudness, custom_lufs, true_peak_db, duck_depth_db,
                                                     duck_attack_ms, duck_release_ms, phonemes, duration)
        tags = workflow_tags(audio, cls)
        ui, first = mux_and_save(video, audio, filename_prefix, mix_original, original_gain, generated_gain,
                                 delivery=level, ducking=ducking, lines=lines, metadata=tags)
        return io.NodeOutput(first, ui=ui)


def mux_and_save(video, audio, filename_prefix: str, mix_original: bool = False, original_gain: float = 1.0,
                 generated_gain: float = 1.0, *, folder_type: str = "output", delivery: Delivery = Delivery(),
                 ducking: Ducking | None = None, lines=(), metadata: dict | None = None) -> tuple[dict, object]:
    """The mux's work (also done by Add Sound to Video, into the temp folder): one mp4 and one wav per take in
    ``folder_type``; returns the ``ui`` entry that shows them and the first take as a VIDEO.  Each take's files
    share one gain (``delivery``: loudness target and true-peak ceiling; :mod:`vssflow_core.media.delivery`); the
    kept original is ducked under the speech ``lines``."""
    waveforms, rate = audio["waveform"], int(audio["sample_rate"])
    if waveforms.ndim != 3 or waveforms.shape[0] == 0:
        raise ValueError(f"the AUDIO waveform must be [batch, channels, samples], got {tuple(waveforms.shape)}")
    temp = comfy_bridge.temp_dir()
    temp.mkdir(parents=True, exist_ok=True)
    folder, stem, counter, subfolder = comfy_bridge.save_path(checked_prefix(filename_prefix, folder_type),
                                                              folder_type)
    videos, sounds, saved = [], [], []
    with tempfile.TemporaryDirectory(prefix="vssflow_mux_", dir=temp) as scratch:
        source = materialize_video(video, scratch)
        plan = plan_output(source, folder / f"{stem}.mp4")  # copied, or re-encoded as H.264 (e.g. ProRes)
        if plan.note:
            log.info("VSSFlow Audio Mux: %s", plan.note)
        original = original_audio(source) if mix_original else None
        for number, item in enumerate(waveforms):
            tracks = prepare_tracks(item.mean(dim=0), rate, delivery=delivery, original=original,
                                    original_gain=original_gain, generated_gain=generated_gain, lines=lines,
                                    ducking=ducking)
            track, track_rate = tracks.video_track
            while True:
                name = f"{stem}_{counter:05}_"
                mp4, wav = folder / f"{name}.mp4", folder / f"{name}.wav"
                counter += 1
                try:
                    with written_together(mp4, wav) as (tmp_mp4, tmp_wav):
                        mux_audio(source, track, track_rate, tmp_mp4, plan=plan, overwrite=True,
                                  metadata=take_tags(metadata, number))
                        write_audio(tmp_wav, tracks.generated, rate, overwrite=True)
                except FileExistsError:
                    continue  # the name was taken meanwhile: take the next number
                break
            saved.append(mp4)
            videos.append({"filename": mp4.name, "subfolder": subfolder, "type": folder_type})
            sounds.append({"filename": wav.name, "subfolder": subfolder, "type": folder_type})
    ui = {"images": videos, "animated": [True], "audio": sounds}
    return ui, comfy_bridge.video_from_file(saved[0])
