"""``python -m vssflow_core generate``: sound (and speech) for a video of any length, written as an mp4 and/or a wav.

    python -m vssflow_core generate --video in.mp4 -o out.mp4
    python -m vssflow_core generate --video in.mp4 --transcript "Hello there" --speech-start 1 --speech-end 3.5 \\
        --speaker ref.wav -o out.mp4 --wav out.wav

Inputs are checked before any weights are loaded (a wrong path fails in a second, not after a minute of loading), and
outputs appear only when everything succeeded, under a temporary name renamed into place at the end: nothing is
written on an error or an interrupt, and an existing file is never replaced.  Known failures (bad video, missing
weights, bad transcript, existing output...) end with exit status 1 and a short message, no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from . import edit_options
from .config import WINDOWS
from .flow.guidance import OFFICIAL_GUIDANCE_SCALE
from .flow.schedules import SCHEDULES
from .flow.settings import recommended_settings
from .flow.solvers import (DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER, OFFICIAL_ATOL, OFFICIAL_RTOL,
                           OFFICIAL_SOLVER, SOLVER_NAMES)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vssflow_core generate",
        description="Generate sound effects and speech for a video with VSSFlow. Videos longer than the model's 10 s "
                    "window are generated in overlapping windows joined without audible seams.",
    )
    io_ = p.add_argument_group("input and output")
    io_.add_argument("--video", required=True, help="the video to add sound to")
    io_.add_argument("-o", "--output", help="mp4/mov/mkv to write: the video stream copied unchanged plus the sound, "
                                            "or re-encoded as H.264 where the container cannot hold its codec (a "
                                            "note says so); no suffix keeps the video's own container (never over "
                                            "an existing file)")
    io_.add_argument("--wav", help="also (or only) write the generated sound as .wav or .flac (16 kHz mono)")
    io_.add_argument("--max-duration", type=float, default=WINDOWS.max_duration_sec, metavar="SECONDS",
                     help=f"refuse videos longer than this (default {WINDOWS.max_duration_sec:g} s)")
    io_.add_argument("--srt", metavar="OUT.srt", help="also write the spoken lines as a sidecar subtitle file")
    io_.add_argument("--subtitle-track", action="store_true",
                     help="put the spoken lines into the output video as a soft subtitle track (mp4/mov)")
    io_.add_argument("--mix-original", action="store_true",
                     help="mix the video's own soundtrack into the output video (not into --wav)")
    io_.add_argument("--original-gain", type=float, default=1.0, help="linear gain of the original soundtrack")
    io_.add_argument("--generated-gain", type=float, default=1.0,
                     help="linear gain of the generated sound (the WAV and the video alike)")

    cond = p.add_argument_group("conditions")
    cond.add_argument("--transcript", help="words to be spoken (English text or ARPAbet); leave out for sound only")
    cond.add_argument("--speech-start", type=float, default=None, help="second where speech starts (default 0)")
    cond.add_argument("--speech-end", type=float, default=None, help="second where speech ends (default: clip end)")
    cond.add_argument("--subtitles", metavar="FILE",
                      help="the lines to speak, each at its own time: an .srt or .vtt file (voices from WebVTT <v Name> "
                           "or an SRT 'NAME:' prefix); instead of --transcript")
    cond.add_argument("--voice", action="append", default=[], metavar="NAME=REF",
                      help="reference recording of the voice NAME of the subtitles (repeatable)")
    cond.add_argument("--speech-only", action="store_true",
                      help="speech alone, without the picture's sound effects")
    cond.add_argument("--speaker", help="reference recording of the voice to imitate (wav, flac, mp3, m4a...)")
    cond.add_argument("--lip", help="precomputed AV-HuBERT lip features, .npy or .safetensors [frames, 1024] @ 25 fps")

    w = p.add_argument_group("weights")
    w.add_argument("--checkpoint", help="VSSFlow network: official .ckpt, .safetensors, or a converted folder")
    w.add_argument("--models-dir", help="folder holding the components as <dir>/<component>/... "
                                        "(default: $VSSFLOW_MODELS_DIR, then the Hugging Face cache)")
    for name in ("clip", "synchformer", "vae", "vocoder", "rawnet3"):
        w.add_argument(f"--{name}", dest=f"{name}_path", metavar="PATH", help=f"explicit {name} weights (file/folder)")
    w.add_argument("--download", action="store_true", help="download missing public weights into the models folder")

    s = p.add_argument_group("sampling")
    s.add_argument("--seed", type=int, default=0)
    # None: what the checkpoint recommends (a distilled student's solver and steps), else the official defaults
    s.add_argument("--solver", choices=SOLVER_NAMES, default=None,
                   help=f"ODE solver (default: the checkpoint's recommendation, else {DEFAULT_SOLVER}; official: "
                        f"{OFFICIAL_SOLVER})")
    s.add_argument("--steps", type=int, default=None,
                   help=f"steps of the fixed-step solvers (default: the checkpoint's recommendation, else "
                        f"{DEFAULT_FIXED_STEPS}; {OFFICIAL_SOLVER} adapts)")
    s.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help=f"time grid of the fixed-step solvers: uniform or balanced (more steps early, where errors "
                        f"grow the most); default: the checkpoint's recommendation, else {DEFAULT_SCHEDULE}")
    s.add_argument("--guidance-scale", type=float, default=None,
                   help=f"classifier-free guidance (default: the checkpoint's recommendation, else the official "
                        f"{OFFICIAL_GUIDANCE_SCALE:g})")
    s.add_argument("--atol", type=float, default=None,
                   help=f"dopri5 absolute tolerance (default: the checkpoint's, else the official {OFFICIAL_ATOL:g})")
    s.add_argument("--rtol", type=float, default=None,
                   help=f"dopri5 relative tolerance (default: the checkpoint's, else the official {OFFICIAL_RTOL:g})")
    s.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    s.add_argument("--dtype", choices=sorted(_DTYPES), default="float32", help="precision of the VSSFlow network")
    s.add_argument("--encoder-dtype", choices=("auto", *sorted(_DTYPES)), default="auto",
                   help="precision of CLIP and Synchformer (auto: bfloat16 where the hardware multiplies it natively)")
    s.add_argument("--compile", action="store_true",
                   help="run the network through torch.compile (a minute or more to start; pays off on long runs; "
                        "falls back with a warning where it cannot compile)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    edit_options.add_arguments(p)
    return p


def _known_errors() -> tuple[type[BaseException], ...]:
    """Failures a user can fix from the message alone; anything else is a bug and keeps its traceback."""
    from .flow.solvers import SolverError
    from .media import AudioReadError, MuxError
    from .video import VideoError
    from .weights.checkpoint import CheckpointError
    from .weights.hub import MissingWeightsError, UnsupportedComponentError, WeightsVerificationError

    # ValueError covers bad transcripts, speech windows, clip length, lip features and component mismatches;
    # OSError covers missing input files, existing outputs and unwritable folders.
    return (VideoError, MissingWeightsError, WeightsVerificationError, UnsupportedComponentError, CheckpointError,
            AudioReadError, MuxError, SolverError, ValueError, OSError)


def _fail(message: object) -> int:
    text = str(message).strip() or type(message).__name__
    first, _, rest = text.partition("\n")
    print(f"error: {first}", file=sys.stderr)
    if rest:  # e.g. where weights were looked for and the command that fetches them
        print("\n".join(f"  {line}" for line in rest.splitlines()), file=sys.stderr)
    return 1


def _check_args(args: argparse.Namespace) -> None:
    if not args.output and not args.wav:
        raise ValueError("nothing to write: give -o OUT.mp4 and/or --wav OUT.wav")
    if args.transcript is not None and not args.transcript.strip():
        raise ValueError("--transcript is empty: give the words to be spoken, or leave --transcript out for sound "
                         "effects only")
    if (args.speech_start is not None or args.speech_end is not None) and not (args.transcript or "").strip():
        raise ValueError("--speech-start/--speech-end place a transcript in time; give --transcript too")
    _check_speech_args(args)
    for flag, value in (("--speaker", args.speaker), ("--lip", args.lip)):
        if value is not None and not Path(value).expanduser().is_file():
            raise FileNotFoundError(f"{flag}: no such file: {value}")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available to this PyTorch")
    from .media import AUDIO_FORMATS, CONTAINER_FORMATS, check_output_path

    for flag, value in (("-o", args.output), ("--wav", args.wav)):
        if value:  # a NUL byte or a name too long for the file system: said now, not after the generation
            check_output_path(value, f"{flag} path")
    if args.output and Path(args.output).suffix.lower() not in ("", *CONTAINER_FORMATS):
        raise ValueError(f"-o {args.output}: write a video as one of {', '.join(CONTAINER_FORMATS)}, or give no "
                         f"suffix to keep the video's own container")
    if args.wav and Path(args.wav).suffix.lower() not in AUDIO_FORMATS:
        raise ValueError(f"--wav {args.wav}: write the sound as one of {', '.join(AUDIO_FORMATS)}")
    outputs = [Path(p).expanduser() for p in (args.output, args.wav) if p]
    if len(outputs) == 2 and outputs[0].resolve() == outputs[1].resolve():
        raise ValueError("-o and --wav name the same file")
    for path in outputs:
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"{path} already exists and is never overwritten; choose another name or move the "
                                  "file away")
        if path.parent.exists() and not path.parent.is_dir():
            raise NotADirectoryError(f"cannot write {path}: {path.parent} is a file, not a folder")
    edit_options.check_arguments(args)


def _plan_video_output(args: argparse.Namespace):
    """How the picture goes into ``-o`` (copied, or re-encoded as H.264 where the container cannot hold its codec;
    the source's container when ``-o`` has no suffix), decided before any weights load; None without ``-o``."""
    from .media.output_plan import plan_output

    if not args.output:
        return None
    planned = plan_output(args.video, args.output)
    if planned.note:
        print(f"note: {planned.note}", file=sys.stderr)
    if planned.path.exists() or planned.path.is_symlink():  # a suffix chosen here names a file not checked yet
        raise FileExistsError(f"{planned.path} already exists and is never overwritten; choose another name or move "
                              "the file away")
    return planned


class _ProgressBar:
    """tqdm on stderr, in percent of flow time (dopri5 does not know its step count in advance)."""

    def __init__(self, solver: str, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=100, unit="%", desc=f"sampling ({solver})", file=sys.stderr, disable=not enabled,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

    def __call__(self, progress) -> None:
        self.bar.update(round(progress.t * 100) - self.bar.n)
        steps = f"{progress.step}/{progress.total_steps}" if progress.total_steps else str(progress.step)
        self.bar.set_postfix_str(f"step {steps}, {progress.evaluations} evals", refresh=False)

    def close(self) -> None:
        self.bar.close()


def _voices(args: argparse.Namespace) -> dict[str, str]:
    voices = {}
    for item in args.voice:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"--voice {item!r}: write it as NAME=reference.wav, NAME as the subtitles name the voice")
        if not Path(path).expanduser().is_file():
            raise FileNotFoundError(f"--voice {name}: no such file: {path}")
        voices[name.strip()] = path
    return voices


def _check_speech_args(args: argparse.Namespace) -> None:
    if args.subtitles is not None:
        if args.transcript is not None:
            raise ValueError("give the speech either as --transcript or as --subtitles, not both")
        if not Path(args.subtitles).expanduser().is_file():
            raise FileNotFoundError(f"--subtitles: no such file: {args.subtitles}")
    elif args.voice:
        raise ValueError("--voice names a voice of the subtitles; give --subtitles too (or --speaker for one voice)")
    _voices(args)
    if args.speech_only and args.subtitles is None and not (args.transcript or "").strip():
        raise ValueError("--speech-only needs speech: give --transcript or --subtitles")
    if args.subtitle_track and not (args.output and Path(args.output).suffix.lower() in (".mp4", ".mov")):
        raise ValueError("--subtitle-track needs an .mp4 or .mov output (-o); use --srt for a sidecar file")
    if args.srt is not None:
        srt = Path(args.srt).expanduser()
        if srt.suffix.lower() != ".srt":
            raise ValueError(f"--srt {args.srt}: the sidecar subtitle file must end in .srt")
        if srt.exists():
            raise FileExistsError(f"{srt} already exists and is never overwritten; choose another name or move the "
                                  "file away")


def _speech_track(args: argparse.Namespace, duration: float):
    """The lines to speak: the subtitles, or the transcript over its window (checked against the clip)."""
    from .text.speech import one_line_track
    from .text.subtitles import read_subtitles

    if args.subtitles is not None:
        track = read_subtitles(Path(args.subtitles).expanduser(), duration=duration)
    else:
        track = one_line_track(args.transcript, args.speech_start, args.speech_end, duration)
    voices = _voices(args)
    return track.with_references(voices) if voices else track


def _sampler_options(args: argparse.Namespace) -> dict:
    """The sampler options as :class:`SamplerSettings` fields; None: not given (the checkpoint's recommendation, else
    the official default)."""
    return {"solver": args.solver, "steps": args.steps, "schedule": args.schedule,
            "guidance_scale": args.guidance_scale, "atol": args.atol, "rtol": args.rtol, "compile": args.compile}


def run(args: argparse.Namespace) -> int:
    from .media import mux_audio, write_audio
    from .media.together import written_together
    from .media.delivery import prepare_tracks
    from .media.mux import generation_metadata, original_audio
    from .pipeline import VSSFlowPipeline
    from .line_windows import speech_plan
    from .media.mux import add_subtitle_track
    from .text.subtitles import track_to_srt
    from .video import open_video
    from .windows import check_duration

    _check_args(args)
    # the user's explicit sampler options, checked now (before any video is read); the checkpoint's recommendation
    # fills in the rest once it is loaded
    chosen = _sampler_options(args)
    recommended_settings(None, **chosen)
    if not 0 <= args.seed < 2**64:  # any integer is a seed: the noise generators take it modulo 2^64
        print(f"note: seed {args.seed} is used modulo 2^64, as {args.seed % 2**64}", file=sys.stderr)
    # Cheap checks first: the video opens and is not too long, the transcript is pronounceable in its window.  The
    # opened video and its window plan are what the pipeline then works on.
    with open_video(args.video) as source:
        duration = check_duration(source.end_time, max_duration=args.max_duration)
        track = _speech_track(args, duration)
        # windows placed so that no seam cuts a line and each window speaks in one voice
        plan = speech_plan(duration, track, dict(track.references), max_duration=args.max_duration)
        track.frame_ids_on(plan)
        edit = edit_options.audio_edit(args, plan.duration)  # bad ranges fail here, before any weights load
        seed, take = edit_options.take_seed(args)
        video_out = _plan_video_output(args)

        started = time.perf_counter()
        pipe = VSSFlowPipeline.load(
            args.checkpoint, models_dir=args.models_dir, clip=args.clip_path, synchformer=args.synchformer_path,
            vae=args.vae_path, vocoder=args.vocoder_path, rawnet3=args.rawnet3_path,
            speaker=bool(args.speaker or args.voice),
            download=args.download, device=args.device, dtype=_DTYPES[args.dtype], encoder_dtype=args.encoder_dtype,
        )
        settings = recommended_settings(None, pipe.default_settings, **chosen)
        progress = _ProgressBar(settings.solver, enabled=not args.quiet)
        try:
            audio = pipe.generate(source, speech=track, speaker=args.speaker, lip=args.lip, seed=seed,
                                  settings=settings, callback=progress, plan=plan, edit=edit,
                                  batch_size=args.takes, speech_only=args.speech_only)
        finally:
            progress.close()
    audio = audio.take(take)
    # One gain for every file: measured on what the video plays, bounded so neither file passes the ceiling.
    original = original_audio(args.video) if (args.output and args.mix_original) else None
    lines = [line.interval(audio.duration) for line in track.lines]
    tracks = prepare_tracks(audio.waveform[0], audio.sample_rate, delivery=edit_options.delivery(args),
                            original=original, original_gain=args.original_gain, generated_gain=args.generated_gain,
                            lines=lines, ducking=edit_options.ducking(args))
    video_track, video_rate = tracks.video_track
    tags = generation_metadata(edit_options.generation_settings(args, audio.stats.seeds[0], take, audio.stats, edit,
                                                                args.checkpoint or "default", settings))

    # Both files are built under temporary names and renamed into place together at the very end; a name that
    # appeared meanwhile is not replaced, and then neither file appears.
    with written_together(video_out.path if video_out else None, args.wav or None) as (tmp_video, tmp_audio):
        if tmp_video:
            mux_audio(args.video, video_track, video_rate, tmp_video, overwrite=True, metadata=tags, plan=video_out)
            if args.subtitle_track:
                add_subtitle_track(tmp_video, [(*line.interval(audio.duration), f"{line.voice}: {line.text}"
                                                if line.voice else line.text) for line in track.lines])
        if tmp_audio:
            write_audio(tmp_audio, tracks.generated, tracks.sample_rate, overwrite=True)
    if args.srt is not None:
        from .media.audio_io import atomic_output

        with atomic_output(Path(args.srt).expanduser()) as tmp:
            tmp.write_text(track_to_srt(track, audio.duration), encoding="utf-8")
    written = " and ".join(str(p) for p in (video_out.path if video_out else None, args.wav, args.srt) if p)
    stats = audio.stats
    takes = f"take {take} of {args.takes}, " if args.takes > 1 else ""
    print(f"wrote {written}: {audio.duration:.2f} s, {takes}seed {stats.seeds[0]}, {settings.describe()} at guidance "
          f"scale {settings.guidance_scale:g}: {stats.steps} steps / {stats.evaluations} evaluations, {tracks.report.loudness_after:.1f} LUFS, true peak "
          f"{tracks.report.true_peak_after_db:.1f} dBTP, {time.perf_counter() - started:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error; the caller wants a status, not an exit
        return int(exc.code or 0)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    except _known_errors() as exc:
        if os.environ.get("VSSFLOW_DEBUG"):
            raise
        return _fail(exc)


if __name__ == "__main__":
    sys.exit(main())
