"""Window plans that respect the lines of a speech track: no seam cuts a line, and a window speaks in one voice.

The audio of window ``k`` is kept between the crossfades of its two seams (:meth:`WindowPlan.fade`); a line is
spoken by one window when no crossfade comes within :data:`MARGIN_SEC` of it.  The model has one speaker token per
window, so a line's voice must be the voice of every window that *generates* part of it: with the ``"continue"``
seam window ``k`` holds the frames it shares with window ``k - 1`` to what that window generated, so it generates
``[end of window k - 1, end of window k]`` (window 0 from the start); with ``"crossfade"`` it generates what is kept
of it.  A window may carry lines of one voice *with a speaker reference*; lines without a reference fit any window.

:func:`plan_line_windows` keeps the evenly spaced plan of :func:`~vssflow_core.windows.plan_windows` when it is
valid, and otherwise searches the window grid for the valid plan with the fewest windows (ties: closest to evenly
spaced); :class:`LinePlanError` names the lines when there is none.
"""

from __future__ import annotations

import functools
import math
from typing import Iterable, Sequence

from .config import SEQUENCE, WINDOWS, SequenceConfig, WindowConfig
from .windows import WindowPlan, plan_windows

__all__ = ["LinePlanError", "MARGIN_SEC", "check_line_plan", "owners", "plan_line_windows", "speech_lines", "speech_plan",
           "window_voices"]

MARGIN_SEC = 0.08  # two latent frames: a seam this close to a line would still clip its edge


class LinePlanError(ValueError):
    """No window plan keeps every line inside one window (or one voice per window); the message names the lines."""


Line = tuple[float, float, "str | None"]  # start, end, voice (None: no speaker reference)


def _describe(index: int, line: Line) -> str:
    voice = f" [{line[2]}]" if line[2] else ""
    return f"line {index + 1} ({line[0]:.2f}-{line[1]:.2f} s{voice})"


def _cuts(lines: Sequence[Line], a: float, b: float) -> bool:
    """True when the interval ``[a, b]`` (a seam's crossfade or a window's end) comes within the margin of a line."""
    return any(a < end + MARGIN_SEC and b > start - MARGIN_SEC for start, end, _ in lines)


def _fade(plan: WindowPlan, k: int) -> tuple[float, float]:
    """The crossfade of the seam between windows ``k - 1`` and ``k``, in seconds."""
    rate = plan.sequence.sample_rate
    first, length = plan.fade(k)
    return first / rate, (first + length) / rate


def _generated(plan: WindowPlan, k: int) -> tuple[float, float]:
    """What window ``k`` generates itself (see the module docstring)."""
    if plan.windows.seam == "continue":
        start = plan.starts[k - 1] + plan.window_sec if k else 0.0
        return start, (plan.starts[k] + plan.window_sec if k + 1 < plan.count else math.inf)
    return (_fade(plan, k)[0] if k else 0.0), (_fade(plan, k + 1)[1] if k + 1 < plan.count else math.inf)


def owners(plan: WindowPlan, lines: Sequence[Line]) -> list[int]:
    """The window whose kept audio holds each line (by its middle)."""
    cuts = [0.5 * sum(_fade(plan, k)) for k in range(1, plan.count)]
    return [sum(0.5 * (start + end) >= cut for cut in cuts) for start, end, _ in lines]


def _voices(lines: Sequence[Line], a: float, b: float) -> list[int]:
    """Indices of the lines with a voice that reach into ``[a, b)``."""
    return [i for i, (start, end, voice) in enumerate(lines) if voice is not None and start < b and end > a]


def _one_voice(lines: Sequence[Line], a: float, b: float) -> bool:
    return len({lines[i][2] for i in _voices(lines, a, b)}) <= 1


def check_line_plan(plan: WindowPlan, lines: Sequence[Line]) -> None:
    """Raise :class:`LinePlanError` naming the lines a plan cuts or gives two voices."""
    lines = sorted(lines)
    window = plan.window_sec
    for i, line in enumerate(lines):
        if line[1] - line[0] > window - 2 * MARGIN_SEC:
            raise LinePlanError(f"{_describe(i, line)} is longer than one generation window ({window:g} s, less "
                                f"{2 * MARGIN_SEC:g} s of margin); split it into shorter lines")
    for k in range(1, plan.count):
        fade = _fade(plan, k)
        for i, line in enumerate(lines):
            if _cuts([line], *fade):
                raise LinePlanError(f"{_describe(i, line)} crosses the seam between windows {k} and {k + 1} "
                                    f"({fade[0]:.2f}-{fade[1]:.2f} s)")
    for k in range(plan.count):
        voiced = _voices(lines, *_generated(plan, k))
        if len({lines[i][2] for i in voiced}) > 1:
            names = ", ".join(_describe(i, lines[i]) for i in voiced)
            raise LinePlanError(f"{names} fall in one generation window ({plan.starts[k]:.1f}-"
                                f"{plan.starts[k] + window:.1f} s), which speaks in one voice; give them one voice, "
                                f"move them apart (a window generates {window - plan.windows.overlap_sec:g}-"
                                f"{window:g} s of its own), or leave one voice without a reference")


def plan_line_windows(duration: float, lines: Iterable[Line], sequence: SequenceConfig = SEQUENCE,
                      windows: WindowConfig = WINDOWS) -> WindowPlan:
    """The window plan for a clip of ``duration`` seconds whose lines (``(start, end, voice)``, voice None when it
    has no speaker reference) must each be generated by one window; see the module docstring."""
    lines = sorted(lines)
    default = plan_windows(duration, sequence, windows)
    if not lines:
        return default
    try:
        check_line_plan(default, lines)
        return default
    except LinePlanError as exc:
        if default.count == 1 or "longer than one generation window" in str(exc):
            raise
        first_problem = exc
    grid, window = windows.grid_sec, sequence.duration_sec
    hop_max = math.floor((window - windows.overlap_sec) / grid + 1e-9)
    hop_min = max(1, math.ceil(windows.continue_fade_sec / grid))  # consecutive crossfades never meet
    last = round(default.starts[-1] / grid)
    even = [s / grid for s in default.starts]
    if windows.seam == "continue" and not _one_voice(lines, 0.0, window):  # window 0 always generates 0..10 s
        check_line_plan(WindowPlan(float(duration), (0.0,), sequence, windows), lines)  # names the lines

    @functools.lru_cache(maxsize=None)
    def pair_ok(a: int, b: int) -> bool:
        """Seam between windows starting at grid points a and b, and the voices window b owns."""
        plan = WindowPlan(float(duration), (a * grid, b * grid), sequence, windows)
        if _cuts(lines, *_fade(plan, 1)):
            return False
        start, end = _generated(plan, 1)
        if windows.seam == "continue" and b != last:
            end = b * grid + window
        return _one_voice(lines, start, end)

    # Fewest windows first: breadth-first over grid starts, one layer per window; the distance to the evenly
    # spaced starts breaks ties.  The full check runs on the result (crossfade ownership spans three windows).
    layer = {0: (0.0, (0,))}
    while layer:
        following: dict[int, tuple[float, tuple[int, ...]]] = {}
        for a, (cost, path) in layer.items():
            target = even[min(len(path), len(even) - 1)]
            for b in range(a + hop_min, min(a + hop_max, last) + 1):
                if pair_ok(a, b):
                    item = (cost + (b - target) ** 2, path + (b,))
                    if b not in following or item[0] < following[b][0]:
                        following[b] = item
        if last in following:
            plan = WindowPlan(float(duration), tuple(round(s * grid, 6) for s in following[last][1]), sequence,
                              windows)
            try:
                check_line_plan(plan, lines)
                return plan
            except LinePlanError as exc:
                first_problem = exc
            del following[last]
        layer = following
    raise LinePlanError(f"no window plan keeps every line inside one window: {first_problem}. Move that line "
                        f"away from the others by a pause of a few seconds, or split the video") from None


def window_voices(plan: WindowPlan, lines: Sequence[Line]) -> list[str | None]:
    """The voice each window speaks in: that of the voiced lines it generates (None: no voiced line)."""
    out: list[str | None] = []
    for k in range(plan.count):
        voiced = _voices(list(lines), *_generated(plan, k))
        out.append(lines[voiced[0]][2] if voiced else None)
    return out


def speech_lines(track, references: Iterable[str] = ()) -> list[Line]:
    """The lines of a :class:`~vssflow_core.text.speech.SpeechTrack` for planning: a line keeps its voice only when
    that voice has a speaker reference (only then do two voices need two windows)."""
    from .text.speech import voice_key

    known = {voice_key(name) for name in references}
    out = []
    for line in track.lines:
        # The one-line form (no cue) over a stretch longer than a window keeps the behaviour it always had: its
        # phonemes are cut per window wherever they fall.
        if line.cue is None and (line.end is None or line.end - line.start > SEQUENCE.duration_sec - 2 * MARGIN_SEC):
            continue
        out.append((line.start, line.end, voice_key(line.voice) if line.voice and voice_key(line.voice) in known
                    else None))
    return out


def speech_plan(duration: float, track, references: Iterable[str] = (), sequence: SequenceConfig = SEQUENCE,
                windows: WindowConfig = WINDOWS, max_duration: float | None = None) -> WindowPlan:
    """The window plan of a clip with this speech track, once its duration is known (checked as
    :func:`~vssflow_core.windows.window_plan` checks it); the track's lines are checked against the clip first."""
    from .windows import check_duration

    duration = check_duration(duration, windows, max_duration)
    track.check(duration, sequence, windows)
    lines = [(s, e if e is not None else duration, v) for s, e, v in speech_lines(track, references)]
    try:
        return plan_line_windows(duration, lines, sequence, windows)
    except LinePlanError:
        if any(line.cue is not None for line in track.lines):
            raise
        # the one-line form keeps the behaviour it always had: cut per window where it falls
        return plan_windows(duration, sequence, windows)
