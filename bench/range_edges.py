"""Are the edges of a regenerated range audible?  Range regeneration (flow inpainting) measured at the range edges
as ``bench/seams.py`` measures window seams, against pasting a fresh generation into the same ranges.

What it measures
    A synthetic scene (``vssflow_core.synthetic``; or ``--video``) of ``--seconds`` gets a first track: the model's
    own generation with seed ``--input-seed`` (a previous output), or with ``--input scene`` the scene's true audio
    (a recorded track).  Then ``--ranges`` of that track are regenerated, for every ``--seeds``, two ways:
        inpaint   the frames outside the ranges held on the flow path to the encoded track (the pipeline's edit)
        paste     the ranges generated afresh, knowing nothing of the track around them, crossfaded in the same way
    Both keep the track exactly outside the ranges and crossfade over ``--crossfade-ms`` inside each edge.  On a 10 ms
    log-power spectrogram the statistics of ``bench/seams.py`` (level step, spectral step, flux peak, over
    ``--half-width`` seconds either side) are taken at every range edge inside the clip and at every 0.25 s away
    from the edges (the reference: how much the audio changes where nothing is joined).  Each edge value is ranked
    in that reference distribution; an edge is inaudible by this measure when its percentile is unremarkable (about
    50; a true step sits at 100).  The summary counts edge statistics above the reference's 95th percentile.

Run
    .venv/bin/python bench/range_edges.py                          # tiny random components: a minute
    .venv/bin/python bench/range_edges.py --checkpoint demo        # the shipped demo model
Options: ``--ranges`` (default three ranges on a 20 s scene, one across the window seam), ``--solver`` / ``--steps``,
``--seconds``, ``--seeds``, ``--input``, ``--json``, ``--wav-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from seams import (HOP_SEC, REFERENCE_STEP_SEC, STATISTICS, build_pipeline, percentile_in, spectrogram,  # noqa: E402
                   statistics_at, synthetic_video)

from vssflow_core.flow.edit import AudioEdit  # noqa: E402
from vssflow_core.flow.settings import SamplerSettings  # noqa: E402
from vssflow_core.windows import plan_windows  # noqa: E402

WAYS = ("inpaint", "paste")


def edges(edit: AudioEdit, duration: float) -> list[float]:
    """Range edges inside the clip (a range at the clip's start or end has no edge there)."""
    found = []
    for r in edit.ranges:
        found += [t for t in (r.start, r.end) if 0 < t < duration]
    return found


def measure(waveform: np.ndarray, rate: int, edge_times: list[float], duration: float, half_sec: float) -> dict:
    level, logspec = spectrogram(waveform, rate)
    flux = np.concatenate([[0.0], np.sqrt(np.mean(np.diff(logspec, axis=0) ** 2, axis=1))])
    half = round(half_sec / HOP_SEC)
    keep_away = half_sec + 0.25
    grid = np.arange(half_sec + 0.25, duration - half_sec - 0.25, REFERENCE_STEP_SEC)
    inside = [float(t) for t in grid if all(abs(t - e) > keep_away for e in edge_times)]

    def at(times: list[float]) -> list[dict]:
        return [{"t": t, **statistics_at(level, logspec, flux, round(t / HOP_SEC), half)} for t in times]

    return {"edges": at(edge_times), "inside": at(inside)}


def summarize(runs: list[dict]) -> dict:
    pooled = {kind: [row for run in runs for row in run[kind]] for kind in ("edges", "inside")}
    summary = {}
    for name in STATISTICS:
        reference = np.array([row[name] for row in pooled["inside"]])
        values = np.array([row[name] for row in pooled["edges"]])
        p95 = float(np.percentile(reference, 95))
        summary[name] = {"inside_median": float(np.median(reference)), "inside_p95": p95,
                         "edge_mean": float(values.mean()), "edge_max": float(values.max()),
                         "edge_percentile": float(np.mean([percentile_in(v, reference) for v in values])),
                         "above_p95": int(np.sum(values > p95)), "count": int(values.size)}
    summary["beyond_p95"] = int(sum(summary[name]["above_p95"] for name in STATISTICS))
    summary["score"] = float(np.mean([summary[name]["edge_percentile"] for name in STATISTICS]))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="tiny", help="'tiny' (random test components), 'demo', or a path")
    parser.add_argument("--models-dir", help="components folder for a full checkpoint")
    parser.add_argument("--video", help="a video to use instead of the synthetic scene")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ranges", default="2.0-3.5, 8.8-10.4, 14.0-15.0",
                        help="ranges to regenerate (the default's second one crosses the window seam of 20 s)")
    parser.add_argument("--crossfade-ms", type=float, default=30.0)
    parser.add_argument("--input", choices=("generated", "scene"), default="generated",
                        help="the track to edit: the model's own generation, or the scene's true audio")
    parser.add_argument("--input-seed", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--solver", default="midpoint")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--half-width", type=float, default=0.25, help="seconds either side of a position")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", help="write every number here")
    parser.add_argument("--wav-dir", help="keep the audio here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = build_pipeline(args.checkpoint, args.models_dir, args.device)
    rate = pipe.components.sample_rate
    scratch = Path(tempfile.mkdtemp(prefix="vssflow_range_edges_"))
    video = Path(args.video) if args.video else synthetic_video(scratch / "scene.mp4", args.seconds, seed=0)
    sampling = {"settings": SamplerSettings(solver=args.solver, steps=args.steps)}
    if args.input == "scene" and not args.video:
        from vssflow_core.synthetic.scenes import SceneSpec, make_sound_clip

        events = max(2, round(args.seconds / 2.5))
        clip = make_sound_clip(np.random.default_rng(0), SceneSpec(duration=args.seconds, events=(events, events)))
        track = torch.from_numpy(clip.audio)
    else:
        track = pipe.generate(video, seed=args.input_seed, max_duration=float("inf"), **sampling).waveform[0]
    duration = track.shape[-1] / rate
    plan = plan_windows(duration)
    results: dict[str, dict] = {}
    for way in WAYS:
        edit = AudioEdit.prepare(track, duration, sample_rate=rate, ranges=args.ranges,
                                 crossfade_sec=args.crossfade_ms / 1000, held=way == "inpaint")
        edge_times = edges(edit, duration)
        runs, started = [], time.perf_counter()
        for seed in args.seeds:
            audio = pipe.generate(video, seed=seed, edit=edit, max_duration=float("inf"), **sampling)
            waveform = audio.waveform[0].numpy()
            kept = edit.generated_weight().numpy() == 0
            assert np.array_equal(waveform[kept], track.numpy()[kept]), "the kept track changed"
            runs.append(measure(waveform, rate, edge_times, duration, args.half_width))
            if args.wav_dir:
                from vssflow_core.media import write_audio

                write_audio(Path(args.wav_dir) / f"{video.stem}_{way}_seed{seed}.wav", waveform, rate)
        results[way] = {"summary": summarize(runs), "runs": runs, "seconds": time.perf_counter() - started}

    print(f"{video.name}: {duration:.1f} s, windows at {list(plan.starts)}, ranges {args.ranges}, input "
          f"{args.input}, crossfade {args.crossfade_ms:g} ms, seeds {args.seeds}, {args.solver} {args.steps}, "
          f"checkpoint {args.checkpoint}, +-{args.half_width:g} s")
    print(f"{'way':<8} {'statistic':<17} {'inside median':>13} {'inside p95':>10} {'edge mean':>9} {'edge max':>8} "
          f"{'edge pct':>8} {'>p95':>6}")
    for way in WAYS:
        summary = results[way]["summary"]
        for name in STATISTICS:
            row = summary[name]
            print(f"{way:<8} {name:<17} {row['inside_median']:>13.2f} {row['inside_p95']:>10.2f} "
                  f"{row['edge_mean']:>9.2f} {row['edge_max']:>8.2f} {row['edge_percentile']:>8.0f} "
                  f"{row['above_p95']:>3}/{row['count']:<2}")
        count = summary[STATISTICS[0]]["count"]
        print(f"{way:<8} edge statistics beyond the inside p95: {summary['beyond_p95']}/{count * len(STATISTICS)}, "
              f"mean edge percentile {summary['score']:.0f} ({results[way]['seconds']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "args": vars(args), "results": results},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
