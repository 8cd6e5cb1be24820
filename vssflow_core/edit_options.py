"""The command line's editing, take and delivery options (``generate``): what they are, how they are checked before
anything is loaded, and the values they make (:class:`~vssflow_core.flow.edit.AudioEdit`,
:class:`~vssflow_core.media.loudness.Delivery`, :class:`~vssflow_core.media.loudness.Ducking`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from .flow.edit import DEFAULT_CROSSFADE_SEC, AudioEdit, parse_ranges
from .media.loudness import DEFAULT_TRUE_PEAK_DB, LOUDNESS_PRESETS, Delivery, Ducking, loudness_target

__all__ = ["INIT_AUDIO_STRENGTH", "add_arguments", "audio_edit", "check_arguments", "delivery", "ducking",
           "generation_settings", "take_seed"]

INIT_AUDIO_STRENGTH = 0.6  # --init-audio without --strength: keeps the track's shape, changes its detail


def add_arguments(p: argparse.ArgumentParser) -> None:
    e = p.add_argument_group("editing an existing track")
    e.add_argument("--edit-audio", metavar="TRACK",
                   help="a track of this clip to edit (a previous output, any audio file, or the video itself for "
                        "its own sound): with --regenerate only those ranges are generated anew, the rest is kept "
                        "sample for sample")
    e.add_argument("--regenerate", action="append", metavar="START-END",
                   help="seconds of --edit-audio to generate anew, e.g. 2.0-3.5 (repeat, or 2-3.5,5-6, for several)")
    e.add_argument("--crossfade-ms", type=float, default=DEFAULT_CROSSFADE_SEC * 1000,
                   help="crossfade just inside each range edge (default %(default)g ms)")
    e.add_argument("--init-audio", metavar="TRACK",
                   help="start the generation from this track (audio-to-audio; --strength says how far from it)")
    e.add_argument("--strength", type=float, default=None,
                   help="0 keeps the track as the codec reproduces it, 1 generates afresh with the same seed (default "
                        f"{INIT_AUDIO_STRENGTH:g} with --init-audio, 1 with --edit-audio)")
    t = p.add_argument_group("takes")
    t.add_argument("--takes", type=int, default=1, help="generate this many takes in one run (seeds seed, seed+1...)")
    t.add_argument("--take", type=int, default=1,
                   help="which take to write (1 = the first); alone, --take K generates just take K (seed + K - 1)")
    d = p.add_argument_group("delivery")
    d.add_argument("--loudness", default="off",
                   help=f"normalise to this integrated loudness: a number of LUFS (e.g. -14), "
                        f"{' or '.join(f'{k} ({v:g})' for k, v in LOUDNESS_PRESETS.items())}, or off (default; the "
                        "true-peak limiter still runs)")
    d.add_argument("--true-peak", type=float, default=DEFAULT_TRUE_PEAK_DB, metavar="DBTP",
                   help="true-peak ceiling of every file written (default %(default)g dBTP)")
    d.add_argument("--duck-depth", type=float, default=Ducking.depth_db, metavar="DB",
                   help="with --mix-original, lower the video's own sound this much under the speech lines "
                        "(default %(default)g dB; 0: no ducking)")
    d.add_argument("--duck-attack-ms", type=float, default=Ducking.attack_ms)
    d.add_argument("--duck-release-ms", type=float, default=Ducking.release_ms)


def check_arguments(args: argparse.Namespace) -> None:
    """Everything these options can get wrong without the clip (ranges are checked against it in
    :func:`audio_edit`)."""
    if args.edit_audio and args.init_audio:
        raise ValueError("--edit-audio and --init-audio both give the track to start from; give one")
    if args.regenerate and not args.edit_audio:
        raise ValueError("--regenerate names ranges of a track: give the track with --edit-audio")
    if args.strength is not None and not (args.edit_audio or args.init_audio):
        raise ValueError("--strength says how far to move from a track: give it with --init-audio or --edit-audio")
    for flag, value in (("--edit-audio", args.edit_audio), ("--init-audio", args.init_audio)):
        if value is not None and not Path(value).expanduser().is_file():
            raise FileNotFoundError(f"{flag}: no such file: {value}")
    parse_ranges(",".join(args.regenerate or []))  # the syntax now; the clip's bounds once it is open
    if not 1 <= args.takes <= 64:
        raise ValueError(f"--takes must be between 1 and 64, got {args.takes}")
    if args.take < 1 or (args.takes > 1 and args.take > args.takes):
        raise ValueError(f"--take {args.take}: there are takes 1 to {args.takes}")
    delivery(args)
    ducking(args)


def audio_edit(args: argparse.Namespace, duration: float) -> AudioEdit | None:
    """The track to edit or start from, brought to the clip; bad ranges fail here, before any weights load."""
    path = args.edit_audio or args.init_audio
    if path is None:
        return None
    strength = args.strength if args.strength is not None else (INIT_AUDIO_STRENGTH if args.init_audio else 1.0)
    return AudioEdit.prepare(path, duration, ranges=",".join(args.regenerate or []) or None, strength=strength,
                             crossfade_sec=args.crossfade_ms / 1000)


def take_seed(args: argparse.Namespace) -> tuple[int, int]:
    """``(seed of the run, take within it)``: ``--take K`` alone generates only that take, from seed + K - 1."""
    if args.takes == 1:
        return (args.seed + args.take - 1) % 2**64, 1
    return args.seed, args.take


def delivery(args: argparse.Namespace) -> Delivery:
    try:
        return Delivery(loudness=loudness_target(args.loudness), true_peak_db=args.true_peak)
    except ValueError as exc:
        raise ValueError(f"--loudness/--true-peak: {exc}") from None


def ducking(args: argparse.Namespace) -> Ducking | None:
    if not math.isfinite(args.duck_depth) or args.duck_depth < 0:
        raise ValueError(f"--duck-depth must be 0 or more dB, got {args.duck_depth}")
    if args.duck_depth == 0:
        return None
    return Ducking(depth_db=args.duck_depth, attack_ms=args.duck_attack_ms, release_ms=args.duck_release_ms)


def generation_settings(args: argparse.Namespace, seed: int, take: int, stats: Any, edit: AudioEdit | None,
                        checkpoint: Any, sampler: Any) -> dict[str, Any]:
    """What the written video's tags carry: enough to regenerate this take alone.  ``sampler``: the
    :class:`~vssflow_core.flow.settings.SamplerSettings` actually used (the options given, else the checkpoint's
    recommendation, else the official defaults)."""
    settings: dict[str, Any] = {"seed": seed, "take": take, "solver": sampler.solver, "steps": stats.steps,
                                "evaluations": stats.evaluations, "schedule": sampler.schedule,
                                "guidance_scale": sampler.guidance_scale, "checkpoint": str(checkpoint),
                                "loudness": args.loudness, "true_peak_db": args.true_peak}
    if not sampler.fixed_steps:
        settings.update(atol=sampler.atol, rtol=sampler.rtol)
    if edit is not None:
        settings.update(strength=edit.strength, regenerate=[str(r) for r in edit.ranges],
                        crossfade_ms=edit.crossfade_sec * 1000)
    if args.transcript:
        settings["transcript"] = args.transcript
    return settings
