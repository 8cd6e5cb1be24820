"""``python -m vssflow_core.synthetic --out data/synthetic``: write a procedural data set (no downloads).

    python -m vssflow_core.synthetic --out data/synth --sound 400 --talk 400 --tts 200 \\
        --heldout-sound 50 --heldout-talk 50 --size 96 --duration 4 --events 2 5 --seed 0 --workers 2

Talking and TTS clips need espeak-ng (Debian/Ubuntu: apt-get install espeak-ng).  The manifests
(``train.jsonl``, ``heldout.jsonl``) can be listed directly in a training configuration's ``data.manifests``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from .generator import DatasetCounts, generate_dataset
    from .scenes import SceneSpec, espeak_available

    parser = argparse.ArgumentParser(prog="python -m vssflow_core.synthetic", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--sound", type=int, default=100, help="training sound clips (v2s)")
    parser.add_argument("--talk", type=int, default=100, help="training talking clips (vtts)")
    parser.add_argument("--tts", type=int, default=0, help="training speech files without video (tts)")
    parser.add_argument("--dialogue", type=int, default=0,
                        help="training dialogue clips (vtts with 2-4 lines, two faces taking turns)")
    parser.add_argument("--heldout-sound", type=int, default=20)
    parser.add_argument("--heldout-talk", type=int, default=20)
    parser.add_argument("--heldout-tts", type=int, default=0)
    parser.add_argument("--heldout-dialogue", type=int, default=0)
    parser.add_argument("--size", type=int, default=96, help="picture size in pixels (square, even)")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per clip")
    parser.add_argument("--events", type=int, nargs=2, default=list(SceneSpec.events), metavar=("MIN", "MAX"),
                        help="events per sound clip, inclusive range")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    speech = args.talk + args.tts + args.dialogue + args.heldout_talk + args.heldout_tts + args.heldout_dialogue
    if speech and not espeak_available():
        print("error: talking and TTS clips need espeak-ng; install it (apt-get install espeak-ng) or pass --talk 0 "
              "--tts 0 --heldout-talk 0 --heldout-tts 0", file=sys.stderr)
        return 2
    if args.size % 2:
        print("error: --size must be even", file=sys.stderr)
        return 2
    if not 1 <= args.events[0] <= args.events[1]:
        print("error: --events needs 1 <= MIN <= MAX", file=sys.stderr)
        return 2
    spec = SceneSpec(size=args.size, fps=args.fps, duration=args.duration, events=tuple(args.events))
    manifests = generate_dataset(args.out, DatasetCounts(args.sound, args.talk, args.tts, args.dialogue),
                                 DatasetCounts(args.heldout_sound, args.heldout_talk, args.heldout_tts,
                                               args.heldout_dialogue),
                                 seed=args.seed, spec=spec, workers=args.workers, progress=not args.no_progress)
    for split, path in manifests.items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
