"""The pack's server routes, for the frontend extension (``web/vssflow.js``): a live timeline before any run.

* ``GET /vssflow/facts``: what the extension draws with and which widgets each setting leaves unused (phoneme rate,
  the model's window, the adaptive solvers), read from ``vssflow_core`` so the browser never keeps a copy.
* ``POST /vssflow/timeline`` ``{text, mode, rows, speech_start, speech_end, duration, subtitle_file}``: the speech
  track the node would build (one line, dialogue rows, or a subtitle file of the input folder), line by line with its
  phoneme tokens, or the message the node would give.
* ``GET /vssflow/duration?file=NAME``: the duration of a clip the VideoLoader (or core Load Video) would read.

ComfyUI serves every route also under ``/api``, where the frontend's ``api.fetchApi`` sends it.  The work is done
by plain functions (:func:`facts`, :func:`timeline_preview`, :func:`clip_duration`) that the tests call without a
server; :func:`register` adds the handlers to ComfyUI's ``PromptServer`` when the pack is loaded by ComfyUI.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Mapping

from ..vssflow_core.config import SEQUENCE, WINDOWS
from ..vssflow_core.flow.solvers import SOLVER_NAMES, Dopri5Solver, make_solver
from ..vssflow_core.text.phonemes import MODES
from ..vssflow_core.text.speech import SpeechTrackError, describe_rows, one_line_track
from ..vssflow_core.text.subtitles import read_subtitles
from . import comfy_bridge

PREFIX = "/vssflow"
MAX_TEXT_CHARS = 100_000  # a dialogue of many minutes; more is refused rather than phonemized on every keystroke


def facts() -> dict[str, Any]:
    """The facts the timeline and the widget states depend on."""
    adaptive = [name for name in SOLVER_NAMES if isinstance(make_solver(name), Dopri5Solver)]
    return {
        "phoneme_fps": SEQUENCE.phoneme_fps,
        "window_sec": SEQUENCE.duration_sec,
        "max_duration_sec": WINDOWS.max_duration_sec,
        "adaptive_solvers": adaptive,
        # the sampler's inputs that only one kind of solver reads
        "fixed_step_inputs": ["steps", "schedule"],
        "adaptive_inputs": ["atol", "rtol"],
    }


def _number(payload: Mapping[str, Any], name: str) -> float | None:
    value = payload.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return number


def timeline_preview(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The lines the node would speak for these widget values: ``{"ok": True, "lines": [{start, end, voice, text,
    tokens, row}], "duration"}``, or ``{"ok": False, "error": message}`` with the node's own message."""
    text = payload.get("text") or ""
    if not isinstance(text, str):
        return {"ok": False, "error": "text must be a string"}
    if len(text) > MAX_TEXT_CHARS:
        return {"ok": False, "error": f"the text is longer than {MAX_TEXT_CHARS:,} characters"}
    mode = payload.get("mode") or "auto"
    if mode not in MODES:
        return {"ok": False, "error": f"unknown mode {mode!r}; choose one of {list(MODES)}"}
    try:
        duration = _number(payload, "duration")
        if duration is not None and duration <= 0:
            duration = None  # unknown yet: the node checks against the real clip when it runs
        subtitle_file = payload.get("subtitle_file")
        if subtitle_file and subtitle_file != "(none)":
            path = _readable(str(subtitle_file))
            track = read_subtitles(path, duration=duration, mode=mode)
            lines = [{"row": line.cue, "start": line.start, "end": line.end, "voice": line.voice, "text": line.text,
                      "tokens": list(line.tokens)} for line in track.lines]
        elif payload.get("rows"):
            lines = describe_rows(text, duration=duration, mode=mode)
        else:
            start = _number(payload, "speech_start") or 0.0
            end = _number(payload, "speech_end")
            track = one_line_track(text, start, end if end else None, duration, mode=mode)
            lines = [{"row": None, "start": line.start, "end": line.interval(duration)[1] if line.end is None
                      else line.end, "voice": line.voice, "text": line.text, "tokens": list(line.tokens)}
                     for line in track.lines]
    except (SpeechTrackError, ValueError, OSError) as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "lines": lines, "duration": duration}


def _readable_roots() -> list[Path]:
    roots = [comfy_bridge.DEMO_VIDEOS_DIR]
    for folder in (comfy_bridge.input_dir, comfy_bridge.output_dir, comfy_bridge.temp_dir):
        try:
            roots.append(folder())
        except Exception:  # a folder ComfyUI does not configure here
            continue
    return [root.resolve() for root in roots]


def _readable(name: str) -> Path:
    """The file a file widget names, if it lies in a folder the routes may read; else ValueError."""
    try:
        path = Path(comfy_bridge.input_file(name)).resolve()
    except Exception as exc:
        raise ValueError(f"{name}: {exc}") from None
    if not any(path == root or root in path.parents for root in _readable_roots()):
        raise ValueError(f"{name}: not a file of ComfyUI's input, output or temp folder")
    if not path.is_file():
        raise ValueError(f"{name}: no such file")
    return path


def clip_duration(name: str) -> dict[str, Any]:
    """``{"ok": True, "duration", "fps", "frames"}`` of a clip chosen in a file widget (input folder, ``[output]``
    style annotated names, the pack's demo clips), or ``{"ok": False, "error"}``.  Only files under ComfyUI's
    input, output and temp folders and the demo clips are read."""
    from ..vssflow_core.video.inputs import resolve_video_input

    if not isinstance(name, str) or not name.strip() or name == "(none)":
        return {"ok": False, "error": "no file chosen"}
    try:
        path = _readable(name)
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}
    try:
        video = resolve_video_input(path=path, sequence=None)
    except Exception as exc:  # the node's own message (damaged file, no video stream, ...)
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "duration": video.duration, "fps": video.fps, "frames": video.num_frames,
            "mtime": os.stat(path).st_mtime}


def register() -> bool:
    """Adds the routes to ComfyUI's server; False (and nothing done) outside ComfyUI."""
    try:
        from aiohttp import web
    except ImportError:
        return False
    instance = comfy_bridge.prompt_server()
    if instance is None:
        return False
    routes = instance.routes

    @routes.get(PREFIX + "/facts")
    async def _facts(request):
        return web.json_response(facts())

    @routes.post(PREFIX + "/timeline")
    async def _timeline(request):
        try:
            payload = await request.json()
        except Exception:
            return web.json_response({"ok": False, "error": "the body must be a JSON object"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"ok": False, "error": "the body must be a JSON object"}, status=400)
        # G2P takes a moment on first use: keep the server's event loop free meanwhile
        return web.json_response(await asyncio.to_thread(timeline_preview, payload))

    @routes.get(PREFIX + "/duration")
    async def _duration(request):
        return web.json_response(await asyncio.to_thread(clip_duration, request.query.get("file", "")))

    return True
