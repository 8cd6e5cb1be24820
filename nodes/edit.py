"""Editing instead of regenerating: Edit Existing Audio (regenerate time ranges of a track, or start from it with a
strength) and Pick Take (one take of a batch, with its seed); and the loudness and ducking inputs of the Audio Mux.

The nodes only parse inputs and call the core (:mod:`vssflow_core.flow.edit`, :mod:`vssflow_core.media.loudness`).
"""

from __future__ import annotations

from typing import Any

from ..vssflow_core.flow.edit import DEFAULT_CROSSFADE_SEC, AudioEdit
from ..vssflow_core.media.loudness import DEFAULT_TRUE_PEAK_DB, LOUDNESS_PRESETS, Delivery, Ducking
from ..vssflow_core.media.mux import generation_metadata
from . import comfy_bridge
from .comfy_bridge import io
from .common import CATEGORY, VisualType

AUDIO_EDIT = "VSSFLOW_AUDIO_EDIT"
EditType = io.Custom(AUDIO_EDIT)
SETTINGS_KEY = "vssflow"  # what Vocoder Decode adds to its AUDIO: seeds and sampler, for Pick Take and the mux
LOUDNESS_CHOICES = ["off", *(f"{name} ({value:g} LUFS)" for name, value in LOUDNESS_PRESETS.items()), "custom"]


class VSSFlowAudioEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VSSFlowAudioEdit", display_name="Edit Existing Audio (VSSFlow)", category=CATEGORY,
            description="Edit a track instead of generating from nothing. With time ranges, only those seconds are "
                        "generated anew (flow inpainting: the rest of the track guides them) and everything else is "
                        "kept sample for sample, crossfaded just inside each range edge. Without ranges, the whole "
                        "clip is generated starting from the track: strength 0 keeps it as the codec reproduces it, "
                        "1 generates afresh with the same seed. Plug it into the FlowDiT Sampler's audio_edit.",
            inputs=[
                io.Audio.Input("audio", tooltip="The track to edit: a previous output, any AUDIO (Load Audio), or "
                                                "the video's own sound."),
                VisualType.Input("visual_features", tooltip="From the Visual Encoder: the clip the track belongs to "
                                                            "(it is cut or padded to the clip's length)."),
                io.String.Input("regenerate", default="2.0-3.5",
                                tooltip="Seconds to generate anew, START-END, several separated by commas (2-3.5, "
                                        "5-6). Empty: the whole clip, starting from the track."),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Where the flow starts: 1 from noise (inside the ranges: fresh audio that "
                                       "fits the kept track), lower from the track itself (0: the track unchanged)."),
                io.Float.Input("crossfade_ms", default=DEFAULT_CROSSFADE_SEC * 1000, min=0.0, max=1000.0, step=1.0,
                               tooltip="Crossfade just inside each range edge."),
            ],
            outputs=[EditType.Output("audio_edit", tooltip="For the FlowDiT Sampler's audio_edit input.")],
        )

    @classmethod
    def execute(cls, audio, visual_features, regenerate: str, strength: float, crossfade_ms: float) -> io.NodeOutput:
        edit = AudioEdit.prepare(audio, visual_features.duration, ranges=regenerate or None, strength=strength,
                                 crossfade_sec=crossfade_ms / 1000)
        return io.NodeOutput(edit)


class VSSFlowPickTake(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VSSFlowPickTake", display_name="Pick Take (VSSFlow)", category=CATEGORY,
            description="One take of a batch (Vocoder Decode shows a player per take), for the Audio Mux; shows and "
                        "outputs its seed, so it can be generated again alone (the sampler with that seed and batch "
                        "size 1).",
            inputs=[io.Audio.Input("audio", tooltip="The takes, from Vocoder Decode."),
                    io.Int.Input("take", default=1, min=1, max=64, tooltip="Which take: 1 is the first.")],
            outputs=[io.Audio.Output("audio", tooltip="The chosen take alone."),
                     io.Int.Output("seed", tooltip="The chosen take's seed.")],
        )

    @classmethod
    def execute(cls, audio, take: int) -> io.NodeOutput:
        picked, seed = pick_take(audio, take)
        count = audio["waveform"].shape[0]
        note = f"take {take} of {count}" + (f", seed {seed}" if seed is not None else "")
        ui = {**comfy_bridge.preview_audio(picked, cls), "text": [note]}
        return io.NodeOutput(picked, -1 if seed is None else seed, ui=ui)


def pick_take(audio: dict, take: int) -> tuple[dict, int | None]:
    """Take ``take`` (from 1) of a ComfyUI AUDIO batch, and its seed when the AUDIO says (Vocoder Decode's does)."""
    waveform = audio["waveform"]
    count = waveform.shape[0]
    if not 1 <= int(take) <= count:
        raise ValueError(f"there is no take {take}: the audio holds {count} take(s), numbered 1 to {count}")
    i = int(take) - 1
    picked = {**audio, "waveform": waveform[i:i + 1]}
    settings = audio.get(SETTINGS_KEY)
    seed = None
    if settings and len(settings.get("seeds", ())) == count:
        seed = int(settings["seeds"][i])
        picked[SETTINGS_KEY] = {**settings, "seeds": [seed], "take": int(take)}
    return picked, seed


def audio_settings(latent: Any) -> dict:
    """What Vocoder Decode adds to its AUDIO (under :data:`SETTINGS_KEY`): the seeds and the sampler's work."""
    stats = latent.stats
    return {"seeds": [int(s) for s in stats.seeds], "solver": stats.solver, "steps": int(stats.steps),
            "evaluations": int(stats.evaluations)}


# --------------------------------------------------------------------------------------------------------------------
# The mux's loudness, ducking and tags
# --------------------------------------------------------------------------------------------------------------------


def delivery_inputs() -> list:
    """The Audio Mux's optional inputs after its own (last, so older workflows keep their widget values)."""
    from .common import PhonemesType

    return [
        io.Combo.Input("loudness", options=LOUDNESS_CHOICES, default="off", optional=True,
                       tooltip="Normalise the delivered sound to an integrated loudness (ITU-R BS.1770 / EBU R128). "
                               "off: the level as generated. The true-peak limiter runs either way: nothing clips."),
        io.Float.Input("custom_lufs", default=-16.0, min=-70.0, max=-1.0, step=0.5, optional=True,
                       tooltip="The target when loudness is custom."),
        io.Float.Input("true_peak_db", default=DEFAULT_TRUE_PEAK_DB, min=-20.0, max=0.0, step=0.1, optional=True,
                       tooltip="True-peak ceiling (dBTP) of the wav and the video alike."),
        io.Float.Input("duck_depth_db", default=Ducking.depth_db, min=0.0, max=60.0, step=0.5, optional=True,
                       advanced=True, tooltip="With mix_original: how far the video's own sound goes down under the "
                                              "speech lines (0: no ducking)."),
        io.Float.Input("duck_attack_ms", default=Ducking.attack_ms, min=0.0, max=5000.0, step=10.0, optional=True,
                       advanced=True, tooltip="It goes down over this long before each line."),
        io.Float.Input("duck_release_ms", default=Ducking.release_ms, min=0.0, max=10000.0, step=10.0,
                       optional=True, advanced=True, tooltip="It comes back up over this long after each line."),
        PhonemesType.Input("phonemes", optional=True,
                           tooltip="The speech (Phoneme Tokenizer): where its lines are is where ducking acts."),
    ]


def delivery_from_inputs(loudness: str = "off", custom_lufs: float = -16.0,
                         true_peak_db: float = DEFAULT_TRUE_PEAK_DB, duck_depth_db: float = Ducking.depth_db,
                         duck_attack_ms: float = Ducking.attack_ms, duck_release_ms: float = Ducking.release_ms,
                         phonemes: Any = None, duration: float | None = None
                         ) -> tuple[Delivery, Ducking | None, list[tuple[float, float]]]:
    if loudness == "custom":
        target: float | None = custom_lufs
    elif loudness == "off":
        target = None
    else:
        name = loudness.split(" ")[0]
        if name not in LOUDNESS_PRESETS:
            raise ValueError(f"unknown loudness choice {loudness!r}; choose one of {', '.join(LOUDNESS_CHOICES)}")
        target = LOUDNESS_PRESETS[name]
    ducking = None if duck_depth_db == 0 else Ducking(duck_depth_db, duck_attack_ms, duck_release_ms)
    return Delivery(loudness=target, true_peak_db=true_peak_db), ducking, speech_lines(phonemes, duration)


def speech_lines(track: Any, duration: float | None = None) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of every line of a speech track (one line for a single transcript)."""
    if track is None or getattr(track, "silent", True):
        return []
    if hasattr(track, "lines"):
        return [line.interval(duration) for line in track.lines]
    return [track.window(duration)]


def workflow_tags(audio: dict, cls: type) -> dict:
    """What every take's video carries: the sampler's settings (from the AUDIO) and the graph (ComfyUI's hidden
    prompt and workflow, as core SaveVideo saves them)."""
    hidden = getattr(cls, "hidden", None)
    extra = getattr(hidden, "extra_pnginfo", None) or {}
    return {"settings": audio.get(SETTINGS_KEY), "prompt": getattr(hidden, "prompt", None),
            "workflow": extra.get("workflow") if isinstance(extra, dict) else None}


def take_tags(tags: dict | None, number: int) -> dict[str, str] | None:
    """The container tags of take ``number`` (from 0): its own seed in the settings."""
    if not tags:
        return None
    settings = dict(tags["settings"]) if tags.get("settings") else None
    if settings is not None and len(settings.get("seeds", ())) > number:
        settings["seed"] = settings["seeds"][number]
        settings.setdefault("take", number + 1)
    return generation_metadata(settings, prompt=tags.get("prompt"), workflow=tags.get("workflow")) or None
