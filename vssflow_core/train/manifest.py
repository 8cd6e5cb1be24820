"""Training manifests: JSON lines, one clip per line.

Fields of a row (paths relative to the manifest's folder, or absolute)::

    id            unique name of the item (default: the video or audio path); names its cache file
    task          "v2s" (video to sound), "vtts" (visual text-to-speech), "tts" (speech without video),
                  "joint" (real clips with sound and speech)
    video         the clip (mp4 ...); null for "tts"
    audio         the target audio (wav, flac, or a video's audio track); default: the video's own track
    transcript    the words spoken (English text, or ARPAbet tokens); required for "vtts" and "tts"
    speech_start  seconds where the speech begins in the clip (default 0)
    speech_end    seconds where it ends (default: the end of the audio, at most the window)
    lines         several lines of speech instead of one (dialogue): a list of {"text", "start", "end", "voice"?}
                  in seconds of the clip, each stretched over its own interval (vssflow_core.text.speech); the
                  transcript is then optional (all lines' words, for reference)
    speaker_ref   reference utterance for the RawNet3 speaker embedding; default for speech tasks: the target audio
                  itself (the official "gtref" training lists); "none" for no reference
    lip           precomputed AV-HuBERT lip features (.npy / .safetensors, [frames at 25 fps, 1024]); default zeros

Any other field (ground truth of synthetic clips, labels ...) is kept in :attr:`ManifestRow.extra` and ignored by
training.  The joint mixture of the three tasks is simply several manifests listed in ``data.manifests``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .config import TASKS

_FIELDS = ("id", "task", "video", "audio", "transcript", "speech_start", "speech_end", "lines", "speaker_ref", "lip")


class ManifestError(ValueError):
    """A manifest row that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class ManifestRow:
    id: str
    task: str
    video: Path | None
    audio: Path
    transcript: str | None = None
    speech_start: float | None = None
    speech_end: float | None = None
    speaker_ref: Path | str | None = None  # a path, "self" (the target audio) or None (no reference)
    lip: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    lines: tuple[Mapping[str, Any], ...] = ()  # dialogue: {"text", "start", "end", "voice"?} per line

    def speech_track(self, duration: float | None = None):
        """The row's speech as the :class:`~vssflow_core.text.speech.SpeechTrack` generation uses (the lines, or the
        transcript over [speech_start, speech_end]); ``duration`` is the clip's (the default end of the speech)."""
        from ..text.speech import make_track, one_line_track

        if self.lines:
            return make_track(self.lines, duration=duration, source=f"item {self.id!r}")
        return one_line_track(self.transcript, self.speech_start, self.speech_end, duration)

    @property
    def has_video(self) -> bool:
        return self.video is not None

    @property
    def has_speech(self) -> bool:
        return bool(self.lines) or bool(self.transcript and self.transcript.strip())

    def fingerprint(self) -> str:
        """What the cached features of this row depend on (a changed row is re-extracted)."""
        values = {
            "task": self.task, "video": _stat(self.video), "audio": _stat(self.audio), "transcript": self.transcript,
            "speech_start": self.speech_start, "speech_end": self.speech_end,
            "speaker_ref": _stat(self.speaker_ref) if isinstance(self.speaker_ref, Path) else self.speaker_ref,
            "lip": _stat(self.lip),
        }
        if self.lines:  # only when present: rows without lines keep the fingerprints (and caches) they had
            values["lines"] = [dict(line) for line in self.lines]
        return json.dumps(values, sort_keys=True)

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        def rel(p: Path | str | None) -> str | None:
            if p is None or isinstance(p, str):
                return p
            if relative_to is not None:
                try:
                    return os.path.relpath(p, relative_to)
                except ValueError:
                    pass
            return str(p)

        row = {"id": self.id, "task": self.task, "video": rel(self.video), "audio": rel(self.audio),
               "transcript": self.transcript, "speech_start": self.speech_start, "speech_end": self.speech_end,
               "lines": [dict(line) for line in self.lines] or None,
               "speaker_ref": rel(self.speaker_ref), "lip": rel(self.lip)}
        return {**{k: v for k, v in row.items() if v is not None}, **dict(self.extra)}


def _stat(path: Path | None) -> list | None:
    """A file's identity for the cache: its name, size and modification time.  Not its folder, so a data set moved
    with its times kept (rsync -a, tar) keeps its cache."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
        return [Path(path).name, st.st_size, st.st_mtime_ns]
    except OSError:
        return [Path(path).name]


def parse_row(values: Mapping[str, Any], base: Path, where: str = "manifest") -> ManifestRow:
    """One manifest row (a decoded JSON object), validated; paths resolved against ``base``."""
    if not isinstance(values, Mapping):
        raise ManifestError(f"{where}: a row must be a JSON object")

    def path(key: str) -> Path | None:
        value = values.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise ManifestError(f"{where}: '{key}' must be a path string")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    task = values.get("task")
    if task not in TASKS:
        raise ManifestError(f"{where}: 'task' must be one of {list(TASKS)}, got {task!r}")
    video, audio = path("video"), path("audio")
    if task == "tts":
        if video is not None:
            raise ManifestError(f"{where}: a 'tts' row has no video (use 'vtts' for speech with video)")
    elif video is None:
        raise ManifestError(f"{where}: a '{task}' row needs a 'video'")
    audio = audio or video
    if audio is None:
        raise ManifestError(f"{where}: the row has neither 'audio' nor 'video'")
    transcript = values.get("transcript")
    if transcript is not None and not isinstance(transcript, str):
        raise ManifestError(f"{where}: 'transcript' must be a string")
    lines = _lines(values.get("lines"), where)
    if task in ("vtts", "tts") and not (transcript and transcript.strip()) and not lines:
        raise ManifestError(f"{where}: a '{task}' row needs a 'transcript' (or 'lines')")
    if task == "v2s" and (transcript or lines):
        raise ManifestError(f"{where}: a 'v2s' row has no transcript (use 'joint' for sound with speech)")

    def seconds(key: str) -> float | None:
        value = values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ManifestError(f"{where}: '{key}' must be a non-negative number of seconds")
        return float(value)

    start, end = seconds("speech_start"), seconds("speech_end")
    if start is not None and end is not None and end <= start:
        raise ManifestError(f"{where}: speech_end ({end}) must be after speech_start ({start})")

    ref_value = values.get("speaker_ref")
    speech = bool(transcript and transcript.strip()) or bool(lines)
    if ref_value is None:
        speaker_ref: Path | str | None = "self" if speech else None
    elif ref_value in ("self", "none"):
        speaker_ref = "self" if ref_value == "self" else None
    else:
        speaker_ref = path("speaker_ref")
    item_id = values.get("id") or str((video or audio).relative_to(base) if (video or audio).is_relative_to(base)
                                       else (video or audio))
    if not isinstance(item_id, str):
        raise ManifestError(f"{where}: 'id' must be a string")
    extra = {k: v for k, v in values.items() if k not in _FIELDS}
    return ManifestRow(id=item_id, task=task, video=video, audio=audio,
                       transcript=transcript if transcript and transcript.strip() else None,
                       speech_start=start, speech_end=end, speaker_ref=speaker_ref, lip=path("lip"), extra=extra,
                       lines=lines)


def _lines(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    """The ``lines`` field: well-formed items; their timing and phonemes are checked by the speech track."""
    if value in (None, []):
        return ()
    if not isinstance(value, list):
        raise ManifestError(f"{where}: 'lines' must be a list of {{\"text\", \"start\", \"end\"}} objects")
    out = []
    for number, line in enumerate(value, 1):
        ok = (isinstance(line, Mapping) and isinstance(line.get("text"), str) and line["text"].strip()
              and all(isinstance(line.get(k), (int, float)) and not isinstance(line.get(k), bool)
                      for k in ("start", "end")))
        if not ok:
            raise ManifestError(f"{where}: line {number} of 'lines' needs a 'text' and numeric 'start' and 'end' "
                                "seconds")
        voice = line.get("voice")
        out.append({"text": line["text"], "start": float(line["start"]), "end": float(line["end"]),
                    **({"voice": str(voice)} if voice else {})})
    return tuple(out)


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """All rows of a JSON-lines manifest (blank lines and lines starting with '#' are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    base = path.resolve().parent
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path}:{number}"
            try:
                values = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: invalid JSON ({exc})") from None
            rows.append(parse_row(values, base, where))
    return rows


def read_manifests(paths: Iterable[str | os.PathLike]) -> list[ManifestRow]:
    """The union of several manifests, in order; ids must be unique across all of them."""
    rows: list[ManifestRow] = []
    seen: dict[str, str] = {}
    for p in paths:
        for row in read_manifest(p):
            if row.id in seen:
                raise ManifestError(f"{p}: item id {row.id!r} appears twice (also in {seen[row.id]}); ids must be "
                                    "unique, they name the cache files")
            seen[row.id] = str(p)
            rows.append(row)
    if not rows:
        raise ManifestError("the manifests hold no rows")
    return rows


def write_manifest(path: str | os.PathLike, rows: Iterable[Mapping[str, Any] | ManifestRow]) -> Path:
    """Write rows (dicts or :class:`ManifestRow`, paths made relative to the manifest's folder) as JSON lines,
    atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.resolve().parent
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            values = row.to_json(base) if isinstance(row, ManifestRow) else dict(row)
            f.write(json.dumps(values, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path
