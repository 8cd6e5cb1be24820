"""Distillation benchmark (issue 19): does a few-step student sound like its teacher, and what does it save?

A distilled student (``python -m vssflow_core distill``) is an ordinary VSSFlow checkpoint of its teacher's
architecture whose metadata recommends a fixed-step sampler at guidance scale 1 (guidance folded in: one network pass
per evaluation).  The teacher is sampled by the official sampler: dopri5 at atol = rtol = 1e-5, guidance scale 3 (two
passes per evaluation, batched into one call of batch 2).

``--quality --teacher T --student S [S2 ...] --manifest heldout.jsonl [--limit N] [--evals 1,2,4,8] [--dialogue]``
    On held-out synthetic clips (rows as ``python -m vssflow_core.demo.evaluate`` reads them: v2s sound clips, vtts
    talking clips; dialogue rows only with ``--dialogue``, then scored with the talking clips), each pipeline loaded
    once (``VSSFlowPipeline.load(..., device="cpu")``) and each clip's video decoded once, every clip is generated
    from the same seed (the same noise) by
      - the teacher at the official sampler, and
      - the student at each evaluation count k of ``--evals``: its recommended solver with k evaluations (steps = k
        for one-evaluation-per-step solvers such as euler, k / 2 for heun, ...), guidance scale 1,
    each from the true frames and from the same frames shuffled (the baseline that destroys the timing).  Measured:
      - the largest, the 99th-percentile and the mean absolute difference of the student's decoded log-mel bins from
        the teacher's, in dB, on the true frames: the mel the pipeline's VAE decoded on the way to the waveform, over
        the clip's duration; the largest is the measure of ``bench/sampler_efficiency.py`` (its dB scale and its 1 dB
        tolerance, imported);
      - onset F1 (sound clips) and the loudness-vs-mouth correlation over the clip (talking clips), true vs shuffled
        frames, with the demo evaluation's own scorers.
    Several students are each measured against the same teacher runs (one per clip), their settings named after
    their folders.  The table gives, per setting: the evaluations per clip as the solver counts them and the network
    passes (batch-1 passes: 2 per guided evaluation, 1 at guidance scale 1), the scores, the fraction of clips whose
    mel is within 1 dB of the teacher's in every bin, and the medians of the largest, the 99th-percentile and the
    mean difference.

    The bar (:func:`bar_verdict`).  A student setting passes when ALL of:
      - network passes per clip <= 8 (the most any clip took);
      - |onset F1 - the teacher's| <= 0.02 and |lip corr - the teacher's| <= 0.02 (true frames; both ways: the
        student has to match the teacher, not merely beat it);
      - at least 0.9 of the clips have every decoded mel bin within 1 dB of the teacher's;
      - the shuffled baseline still collapses: shuffled onset F1 < 0.5 and shuffled lip corr < 0.3.
    A part with no clips to measure it (e.g. no talking clips) fails as "not measured".  Otherwise the verdict says by
    how much each part misses.

``--fit --student S --pairs P [P2 ...] [--limit N] [--evals 1,2,4,8]``
    The student against its own training pairs (``bench/distill_fit.py``): from each pair's noise and conditions
    (``--limit`` of them, spread over the set), its endpoint at each evaluation count against the teacher's endpoint
    in the pair, decoded to log-mel: the fraction within 1 dB in every bin and the medians of the largest, the
    99th-percentile and the mean difference.  As large a gap here as on held-out clips is underfitting.

``--speed-full [--student-steps 4] [--max-evals N] [--tiny]``
    Only the sampler (the DiT): the full-size network (``VSSFlowConfig`` defaults, 453 M parameters) with random
    weights, random but fixed conditions of a 10 s clip (250 latent frames; no lip, no speaker, as in-the-wild) and
    fixed noise, ONE run each: the official dopri5 (w = 3, batched guidance, ``CachedGuidedVelocity`` as the pipeline
    samples) against the student's schedule (euler at ``--student-steps``, guidance scale 1: conditional only).
    Prints evaluations, network passes, wall seconds, seconds per pass and the ratios.  A random field is not a
    trained one: dopri5's count is the random field's (the demo's counts are in the README's sampler rows), which is
    why the seconds per pass are printed; ``--max-evals`` caps dopri5 if the field makes it explode (the run is then
    marked capped and its ratio is a lower bound).  The rest of the pipeline (video decode, encoders, VAE, vocoder,
    mux) is the same for both; it is the README's ``bench/pipeline_stages.py`` row.  ``--tiny``: a small network
    instead (the test's).

``--speed-demo --teacher demo --student S --video demo_videos/bouncing.mp4``
    End to end: the library call ``pipeline.generate`` from the video file to the waveform (reading, encoding,
    sampling, decoding), wall seconds with the teacher at the official sampler against the student at its
    recommended one, after one untimed 1-step warm-up of each pipeline; evaluations and network passes of each.

Run
    .venv/bin/python bench/distill.py --quality --teacher demo --student runs/distill/student \\
        --manifest data/dialogue/heldout.jsonl --limit 10 --json runs/distill/quality.json
    .venv/bin/python bench/distill.py --speed-full --student-steps 4 --max-evals 400
    .venv/bin/python bench/distill.py --speed-full --tiny            # seconds
    .venv/bin/python bench/distill.py --speed-demo --teacher demo --student runs/distill/student \\
        --video demo_videos/bouncing.mp4
Options: ``--seed``, ``--threads``, ``--json PATH`` (every figure), ``--no-progress``; ``--speed-full`` also takes
``--dtype float32|bfloat16`` and ``--device``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

# the two halves; what the tests use is importable from here too
from distill_quality import (DEFAULT_EVALS, MEL_TOLERANCE_DB, TEACHER_NAME, Summary, bar_verdict,  # noqa: E402,F401
                             clip_mel, measure_quality, mel_difference_db, passes_per_evaluation, print_quality,
                             student_settings)
from distill_fit import measure_fit, print_fit  # noqa: E402
from distill_speed import print_speed, speed_demo, speed_full  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quality", action="store_true", help="student vs teacher on held-out clips")
    mode.add_argument("--fit", action="store_true", help="student vs the teacher's endpoints on its own training pairs")
    mode.add_argument("--speed-full", action="store_true", help="sampler time of the full-size random network")
    mode.add_argument("--speed-demo", action="store_true", help="end-to-end generate time on one video")
    parser.add_argument("--teacher", default="demo")
    parser.add_argument("--student", default=None, nargs="+", help="the student checkpoint (--quality: several, "
                        "each against the same teacher runs)")
    parser.add_argument("--manifest", default=None)
    parser.add_argument("--pairs", default=None, nargs="+",
                        help="--fit: the pairs folder(s) the student was trained on")
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips of each kind")
    parser.add_argument("--evals", default=",".join(map(str, DEFAULT_EVALS)),
                        help="the student's evaluation counts (default 1,2,4,8)")
    parser.add_argument("--dialogue", action="store_true", help="also the dialogue rows (with the talking clips)")
    parser.add_argument("--mel-tolerance-db", type=float, default=MEL_TOLERANCE_DB)
    parser.add_argument("--student-steps", type=int, default=4, help="--speed-full: the student's euler steps")
    parser.add_argument("--max-evals", type=int, default=None, help="--speed-full: cap dopri5's evaluations")
    parser.add_argument("--tiny", action="store_true", help="--speed-full: a tiny network (for the test)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="--speed-full")
    parser.add_argument("--device", default="cpu", help="--speed-full")
    parser.add_argument("--video", default=None, help="--speed-demo: the video")
    parser.add_argument("--transcript", default=None, help="--speed-demo: speech over the whole clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="write every figure to this file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    with torch.no_grad():  # a context, not set_grad_enabled(False): main() also runs inside the test process
        return _run(parser, args)


def student_label(path: str, paths: Sequence[str]) -> str:
    """A student's name in the table: its file or folder name (its path where two share a name)."""
    name = Path(path).name
    return name if sum(Path(p).name == name for p in paths) == 1 else path


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.quality or args.speed_demo:
        missing = [flag for flag, value in (("--student", args.student),
                                            ("--manifest" if args.quality else "--video",
                                             args.manifest if args.quality else args.video)) if value is None]
        if missing:
            parser.error(f"{'--quality' if args.quality else '--speed-demo'} needs {' and '.join(missing)}")

    if args.fit:
        from vssflow_core.distill.pairs import PairsDataset
        from vssflow_core.pipeline import VSSFlowPipeline

        if args.student is None or args.pairs is None or len(args.student) > 1:
            parser.error("--fit needs one --student and its --pairs")
        rows = measure_fit(VSSFlowPipeline.load(args.student[0], device="cpu"), PairsDataset(*args.pairs),
                           evals=[int(v) for v in args.evals.split(",") if v], limit=args.limit,
                           mel_tolerance_db=args.mel_tolerance_db)
        print_fit(rows, args.mel_tolerance_db)
        out = {"mode": "fit", "student": args.student[0], "pairs": args.pairs, "rows": [asdict(r) for r in rows]}
    elif args.quality:
        from vssflow_core.pipeline import VSSFlowPipeline

        evals = [int(v) for v in args.evals.split(",") if v]
        teacher = VSSFlowPipeline.load(args.teacher, device="cpu")
        students = ({"student": VSSFlowPipeline.load(args.student[0], device="cpu")} if len(args.student) == 1
                    else {student_label(path, args.student): VSSFlowPipeline.load(path, device="cpu")
                          for path in args.student})
        report = measure_quality(teacher, students, args.manifest, evals=evals, limit=args.limit,
                                 dialogue=args.dialogue, seed=args.seed, mel_tolerance_db=args.mel_tolerance_db,
                                 progress=not args.no_progress)
        print_quality(report, args.mel_tolerance_db)
        out = {"mode": "quality", "teacher": args.teacher, "student": args.student, "manifest": args.manifest,
               "seed": args.seed, **report.as_json()}
    else:
        if args.speed_full:
            rows = speed_full(tiny=args.tiny, student_steps=args.student_steps, max_evals=args.max_evals,
                              seed=args.seed, dtype=getattr(torch, args.dtype), device=args.device)
        else:
            if len(args.student) > 1:
                parser.error("--speed-demo times one student; give one --student")
            rows = speed_demo(args.teacher, args.student[0], args.video, transcript=args.transcript, seed=args.seed)
        print_speed(rows, per_pass=args.speed_full)
        if args.speed_full:
            print("only the sampler (the DiT): the rest of the pipeline is the same for both, see the "
                  "bench/pipeline_stages.py row of the README; random weights: dopri5's count is the random field's, "
                  "the seconds per pass scale to any count")
        out = {"mode": "speed-full" if args.speed_full else "speed-demo",
               "runs": [{**asdict(r), **({"seconds_per_pass": r.seconds_per_pass} if args.speed_full else {})}
                        for r in rows],
               "ratio_seconds": rows[0].seconds / rows[1].seconds, "ratio_passes": rows[0].passes / rows[1].passes}
        if args.speed_demo:
            out.update(teacher=args.teacher, student=args.student[0], video=args.video)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
