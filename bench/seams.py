"""Are the seams of windowed generation audible?  Both seam strategies on a 45 s video, measured against the model's
own variation inside a window.

What it measures
    A 45 s synthetic scene (``vssflow_core.synthetic``: bouncing balls, lamps and bars whose events make sounds; or
    ``--video``) is generated with each seam strategy of :mod:`vssflow_core.windows` (``continue``: each window
    sampled as the continuation of the previous one, then a short linear crossfade; ``crossfade``: windows sampled on
    their own, equal-power crossfade over 2 s), for every ``--seeds``.  On a 10 ms log-power
    spectrogram three statistics are taken at a position p, over ``--half-width`` seconds either side:
        level step     |mean level after p - mean level before p|, dB
        spectral step  RMS over frequency bins of the change of the mean log spectrum across p, dB
        flux peak      the largest frame-to-frame spectral flux (RMS dB change between consecutive frames) within
                       20 ms of p: a click or a cut shows here
    at every seam (the middle of each crossfade), for ``continue`` also at every continuation boundary (where the
    frames held from the previous window end and the new ones begin, inside a window), and at every 0.25 s inside
    windows away from both (the reference: how much the same model changes inside a window).  Each seam value is
    ranked in that reference distribution (percentile); a seam is inaudible by this measure when it is no larger than
    what happens inside windows, i.e. its percentiles are unremarkable (about 50 on average; a true step sits at 100).
    The better strategy is the one with fewer seam statistics above the reference's 95th percentile (a step beyond
    what the model does inside a window: the issue's criterion), then the lower mean seam percentile when the two
    differ by more than its noise (the standard error of a mean of uniform percentiles over the seams); otherwise
    the verdict is a tie.

Run
    .venv/bin/python bench/seams.py                          # tiny random components: a minute
    .venv/bin/python bench/seams.py --checkpoint demo        # the shipped demo model
    .venv/bin/python bench/seams.py --checkpoint models/vssflow/official --models-dir models
Options: ``--subtitles`` (a dialogue's .srt/.vtt for ``--video``: windows planned around its lines, which are
spoken), ``--solver`` / ``--steps`` (default the pipeline's dopri5), ``--seconds``, ``--seeds``, ``--half-width``,
``--video`` (your own video instead of the synthetic scene), ``--json`` (write every number), ``--wav-dir`` (keep
the generated audio to listen to the seams).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vssflow_core.config import SEQUENCE, WINDOWS  # noqa: E402
from vssflow_core.flow.settings import SamplerSettings  # noqa: E402
from vssflow_core.flow.solvers import OFFICIAL_SOLVER  # noqa: E402
from vssflow_core.pipeline import VSSFlowPipeline  # noqa: E402
from vssflow_core.line_windows import speech_plan  # noqa: E402
from vssflow_core.text.subtitles import read_subtitles  # noqa: E402
from vssflow_core.windows import SEAMS, WindowPlan, plan_windows  # noqa: E402

HOP_SEC = 0.01  # spectrogram hop
N_FFT = 512
REFERENCE_STEP_SEC = 0.25  # spacing of the reference positions inside windows
FLUX_REACH_SEC = 0.02  # a seam's flux peak is looked for this close to it
STATISTICS = ("level_step_db", "spectral_step_db", "flux_peak_db")


# ---------------------------------------------------------------------------------------------------- inputs


def build_pipeline(checkpoint: str, models_dir: str | None, device: str) -> VSSFlowPipeline:
    if checkpoint == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import build_tiny_components

        paths = build_tiny_components(Path(tempfile.mkdtemp(prefix="vssflow_seams_")))
        return VSSFlowPipeline.load(paths.pop("checkpoint"), device=device, **paths)
    return VSSFlowPipeline.load(checkpoint, models_dir=models_dir, device=device)


def synthetic_video(path: Path, seconds: float, seed: int) -> Path:
    """A sound scene of ``seconds`` (about one event every 2.5 s), picture only."""
    from vssflow_core.media.video_file import write_frames_video
    from vssflow_core.synthetic.scenes import SceneSpec, make_sound_clip

    events = max(2, round(seconds / 2.5))
    spec = SceneSpec(duration=seconds, events=(events, events))
    clip = make_sound_clip(np.random.default_rng(seed), spec)
    return write_frames_video(path, clip.frames, spec.fps)


# ---------------------------------------------------------------------------------------------------- statistics


def spectrogram(waveform: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(level dB ``[T]``, log power dB ``[T, bins]``) every ``HOP_SEC``."""
    hop = round(HOP_SEC * rate)
    spec = torch.stft(torch.from_numpy(waveform).float(), N_FFT, hop, window=torch.hann_window(N_FFT),
                      return_complex=True, center=True).abs().pow(2).T.numpy()  # [T, bins]
    floor = 1e-10
    return 10 * np.log10(spec.mean(axis=1) + floor), 10 * np.log10(spec + floor)


def statistics_at(level: np.ndarray, logspec: np.ndarray, flux: np.ndarray, frame: int, half: int) -> dict:
    before, after = slice(frame - half, frame), slice(frame, frame + half)
    reach = round(FLUX_REACH_SEC / HOP_SEC)
    return {
        "level_step_db": float(abs(level[after].mean() - level[before].mean())),
        "spectral_step_db": float(np.sqrt(np.mean((logspec[after].mean(0) - logspec[before].mean(0)) ** 2))),
        "flux_peak_db": float(flux[max(0, frame - reach):frame + reach + 1].max()),
    }


def positions(plan: WindowPlan, half_sec: float) -> tuple[list[float], list[float], list[float]]:
    """(seams, continuation boundaries, reference positions inside windows), seconds."""
    rate = plan.sequence.sample_rate
    seams, boundaries, fades = [], [], []
    for k in range(1, plan.count):
        first, length = plan.fade(k)
        seams.append((first + length / 2) / rate)
        fades.append((first / rate, (first + length) / rate))
        if plan.windows.seam == "continue":
            boundaries.append(plan.starts[k - 1] + plan.window_sec)  # the held frames end here
    keep_away = half_sec + 0.5
    special = seams + boundaries + [e for fade in fades for e in fade] + list(plan.starts[1:])
    special += [s + plan.window_sec for s in plan.starts[:-1]]
    grid = np.arange(half_sec + 0.5, plan.duration - half_sec - 0.5, REFERENCE_STEP_SEC)
    inside = [float(t) for t in grid if all(abs(t - s) > keep_away for s in special)]
    return seams, boundaries, inside


def measure(waveform: np.ndarray, plan: WindowPlan, half_sec: float) -> dict[str, list[dict]]:
    level, logspec = spectrogram(waveform, plan.sequence.sample_rate)
    flux = np.concatenate([[0.0], np.sqrt(np.mean(np.diff(logspec, axis=0) ** 2, axis=1))])
    half = round(half_sec / HOP_SEC)
    seams, boundaries, inside = positions(plan, half_sec)

    def at(times: list[float]) -> list[dict]:
        return [{"t": t, **statistics_at(level, logspec, flux, round(t / HOP_SEC), half)} for t in times]

    return {"seams": at(seams), "boundaries": at(boundaries), "inside": at(inside)}


def percentile_in(value: float, reference: np.ndarray) -> float:
    """Share of the reference below ``value`` (ties count half), in percent."""
    return float(100 * (np.mean(reference < value) + 0.5 * np.mean(reference == value)))


def summarize(runs: list[dict[str, list[dict]]]) -> dict:
    pooled = {kind: [row for run in runs for row in run[kind]] for kind in ("seams", "boundaries", "inside")}
    summary = {}
    for name in STATISTICS:
        reference = np.array([row[name] for row in pooled["inside"]])
        entry = {"inside_median": float(np.median(reference)), "inside_p95": float(np.percentile(reference, 95)),
                 "inside_max": float(reference.max())}
        for kind in ("seams", "boundaries"):
            values = np.array([row[name] for row in pooled[kind]])
            if values.size:
                ranks = [percentile_in(v, reference) for v in values]
                entry[kind] = {"mean": float(values.mean()), "max": float(values.max()),
                               "mean_percentile": float(np.mean(ranks)),
                               "above_inside_p95": int(np.sum(values > entry["inside_p95"])), "count": int(values.size)}
        summary[name] = entry
    seam_ranks = [summary[name]["seams"]["mean_percentile"] for name in STATISTICS]
    summary["score"] = float(np.mean(seam_ranks))  # mean seam percentile over the statistics: lower is better
    summary["beyond_p95"] = int(sum(summary[name]["seams"]["above_inside_p95"] for name in STATISTICS))
    return summary


def verdict(summaries: dict[str, dict]) -> str:
    """The better seam strategy by the rule in the module docstring, or "tie"."""
    first, second = (summaries[seam] for seam in SEAMS)
    if first["beyond_p95"] != second["beyond_p95"]:
        return min(SEAMS, key=lambda seam: summaries[seam]["beyond_p95"])
    seams = first[STATISTICS[0]]["seams"]["count"]
    noise = 100 / math.sqrt(12 * seams)  # a uniform percentile has SD 100 / sqrt(12)
    if abs(first["score"] - second["score"]) <= noise:
        return "tie"
    return min(SEAMS, key=lambda seam: summaries[seam]["score"])


# ---------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="tiny", help="'tiny' (random test components), 'demo', or a path")
    parser.add_argument("--models-dir", help="components folder for a full checkpoint")
    parser.add_argument("--video", help="a video to use instead of the synthetic scene")
    parser.add_argument("--subtitles", help="an .srt/.vtt of the video's dialogue: windows are planned around its lines "
                        "(no seam inside a line) and the lines are spoken")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--solver", default=OFFICIAL_SOLVER)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--half-width", type=float, default=0.25, help="seconds either side of a position")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", help="write every number here")
    parser.add_argument("--wav-dir", help="keep the generated audio here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = build_pipeline(args.checkpoint, args.models_dir, args.device)
    scratch = Path(tempfile.mkdtemp(prefix="vssflow_seams_video_"))
    video = Path(args.video) if args.video else synthetic_video(scratch / "scene.mp4", args.seconds, seed=0)
    settings = SamplerSettings(solver=args.solver, steps=args.steps)
    track = read_subtitles(args.subtitles) if args.subtitles else None
    results: dict[str, dict] = {}
    for seam in SEAMS:
        windows = dataclasses.replace(WINDOWS, seam=seam)
        runs, started = [], time.perf_counter()
        for seed in args.seeds:
            audio = pipe.generate(video, seed=seed, settings=settings, windows=windows, speech=track,
                                  max_duration=float("inf"))
            plan = (speech_plan(audio.duration, track, windows=windows, max_duration=float("inf")) if track
                    else plan_windows(audio.duration, SEQUENCE, windows))
            waveform = audio.waveform[0].numpy()
            runs.append(measure(waveform, plan, args.half_width))
            if args.wav_dir:
                from vssflow_core.media import write_audio

                write_audio(Path(args.wav_dir) / f"{video.stem}_{seam}_seed{seed}.wav", waveform, audio.sample_rate)
        results[seam] = {"summary": summarize(runs), "runs": runs, "seconds": time.perf_counter() - started,
                         "windows": list(plan.starts), "duration": audio.duration}

    print(f"{video.name}: {results[SEAMS[0]]['duration']:.1f} s, windows at {results[SEAMS[0]]['windows']}, "
          f"seeds {args.seeds}, {args.solver}, checkpoint {args.checkpoint}, +-{args.half_width:g} s")
    header = f"{'strategy':<10} {'statistic':<17} {'inside median':>13} {'inside p95':>10} {'seam mean':>9} " \
             f"{'seam max':>8} {'seam pct':>8} {'>p95':>5}   {'bound. mean':>11} {'bound. pct':>10}"
    print(header)
    for seam in SEAMS:
        summary = results[seam]["summary"]
        for name in STATISTICS:
            row = summary[name]
            s, b = row["seams"], row.get("boundaries")
            tail = f"   {b['mean']:>11.2f} {b['mean_percentile']:>10.0f}" if b else ""
            print(f"{seam:<10} {name:<17} {row['inside_median']:>13.2f} {row['inside_p95']:>10.2f} {s['mean']:>9.2f} "
                  f"{s['max']:>8.2f} {s['mean_percentile']:>8.0f} {s['above_inside_p95']:>2}/{s['count']:<2}{tail}")
        seams = summary[STATISTICS[0]]["seams"]["count"]
        print(f"{seam:<10} seam statistics beyond the inside p95: {summary['beyond_p95']}/{seams * len(STATISTICS)}, "
              f"mean seam percentile {summary['score']:.0f} ({results[seam]['seconds']:.0f} s)")
    better = verdict({seam: results[seam]["summary"] for seam in SEAMS})
    print(f"better: {better} (default: {WINDOWS.seam})")
    if args.json:
        Path(args.json).write_text(json.dumps({"better": better, "checkpoint": args.checkpoint, "results": results},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
