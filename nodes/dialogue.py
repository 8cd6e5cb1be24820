"""Dialogue (VSSFlow): several lines of speech at their own times and voices, from rows or a subtitle file."""

from __future__ import annotations

from ..vssflow_core.text.speech import ROW_EXAMPLE, SpeechTrack, parse_rows
from ..vssflow_core.text.subtitles import SUBTITLE_FORMATS, read_subtitles
from . import comfy_bridge
from .comfy_bridge import io
from .common import CATEGORY, PhonemesType
from .phonemes import mode_input

NO_FILE = "(none)"
VOICES = 3  # voice reference sockets (execute names each pair)


def subtitle_files() -> list[str]:
    """The .srt and .vtt files of ComfyUI's input folder."""
    folder = comfy_bridge.input_dir()
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUBTITLE_FORMATS)
    except OSError:
        return []


class VSSFlowDialogue(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        voices = []
        for n in range(1, VOICES + 1):
            voices += [
                io.String.Input(f"voice_{n}_name", default="", optional=True,
                                tooltip=f"Name of voice {n}, as the lines write it ([name] in a row, <v name> in "
                                        "WebVTT, NAME: in SRT)."),
                io.Audio.Input(f"voice_{n}", optional=True,
                               tooltip=f"A recording of voice {n} to imitate (needs the RawNet3 speaker encoder)."),
            ]
        return io.Schema(
            node_id="VSSFlowDialogue", display_name="Dialogue (VSSFlow)", category=CATEGORY,
            description="Several lines of speech, each spoken at its own time (and voice): one "
                        f"'start-end [voice]: text' per row (e.g. '{ROW_EXAMPLE}'), or a subtitle file (.srt, .vtt) "
                        "from the input folder. Each line's phonemes are spread over its own interval, silence "
                        "between lines. Connect the output to the Visual Encoder too, so that no window seam cuts a "
                        "line.",
            search_aliases=["subtitles", "srt", "dubbing", "dialogue", "lip sync", "script"],
            inputs=[
                io.String.Input("lines", multiline=True, default="",
                                tooltip=f"One line per row: start-end [voice]: text, in seconds, e.g. "
                                        f"{ROW_EXAMPLE}. The voice is optional."),
                io.Combo.Input("subtitle_file", options=[NO_FILE, *subtitle_files()], default=NO_FILE,
                               tooltip="An .srt or .vtt file in ComfyUI's input folder (instead of the rows)."),
                mode_input(),
                io.Float.Input("duration", force_input=True, optional=True,
                               tooltip="The clip's duration (VideoLoader's duration output): the lines are checked "
                                       "and drawn against the real clip."),
                *voices,
            ],
            outputs=[PhonemesType.Output("phonemes", tooltip="The lines on the clip's time axis, for the Visual "
                                                             "Encoder and the FlowDiT Sampler.")],
        )

    @classmethod
    def fingerprint_inputs(cls, subtitle_file=NO_FILE, **kwargs):
        if not subtitle_file or subtitle_file == NO_FILE:
            return NO_FILE
        try:
            stat = comfy_bridge.input_file(subtitle_file).stat()
        except OSError:
            return f"{subtitle_file}: missing"
        return f"{subtitle_file}:{stat.st_mtime_ns}:{stat.st_size}"

    @classmethod
    def execute(cls, lines: str, subtitle_file: str, mode: str, duration=None, voice_1_name: str = "", voice_1=None,
                voice_2_name: str = "", voice_2=None, voice_3_name: str = "", voice_3=None) -> io.NodeOutput:
        voices = {(voice_1_name or "").strip(): voice_1, (voice_2_name or "").strip(): voice_2,
                  (voice_3_name or "").strip(): voice_3}
        track = dialogue_track(lines, subtitle_file, mode, duration, voices)
        ui = {"duration": duration, "lines": [
            {"row": line.cue, "start": line.start, "end": line.end, "voice": line.voice, "text": line.text,
             "tokens": list(line.tokens)} for line in track.lines]}
        return io.NodeOutput(track, ui={"vssflow_dialogue": [ui]})


def dialogue_track(lines: str, subtitle_file: str = NO_FILE, mode: str = "auto", duration: float | None = None,
                   voices: dict | None = None) -> SpeechTrack:
    """The node's work: the rows or the subtitle file as a speech track, with its voice references (name ->
    AUDIO; an empty name with no recording is ignored)."""
    has_file = bool(subtitle_file) and subtitle_file != NO_FILE
    if has_file and lines.strip():
        raise ValueError("give the lines either as rows or as a subtitle file, not both; clear one of them")
    if has_file:
        track = read_subtitles(comfy_bridge.input_file(subtitle_file), duration=duration, mode=mode)
    elif lines.strip():
        track = parse_rows(lines, duration=duration, mode=mode)
    else:
        raise ValueError(f"no lines: write one 'start-end [voice]: text' per row (e.g. '{ROW_EXAMPLE}') or pick a "
                         "subtitle file")
    references = {}
    for name, audio in (voices or {}).items():
        if audio is not None and not name:
            raise ValueError("a voice recording has no name; set its voice_N_name to the voice its lines use (one "
                             f"of: {', '.join(track.voices) or 'the lines name no voice'})")
        if audio is not None:
            references[name] = audio
    return track.with_references(references) if references else track
