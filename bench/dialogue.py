"""Dialogue on a long clip: a 40 s procedural clip of two drawn faces taking turns (5 lines, voices "alice" and
"bob", written as an .srt), generated from its subtitles and scored per line against the cues.

    .venv/bin/python bench/dialogue.py --out runs/dialogue40 [--checkpoint demo] [--solver midpoint --steps 8]
                                       [--speech-only]

Prints the window plan (no seam may cut a line: checked), each line's onset and offset error (ms), the level of the
pauses between lines and of everything outside the lines against the lines (dB), and loudness vs mouth opening
inside the lines (see vssflow_core/demo/line_scores.py).  The clip is a pure function of --seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vssflow_core.demo.line_scores import line_scores  # noqa: E402
from vssflow_core.flow.settings import SamplerSettings  # noqa: E402
from vssflow_core.line_windows import check_line_plan, speech_lines, speech_plan  # noqa: E402
from vssflow_core.media.audio_io import write_audio  # noqa: E402
from vssflow_core.pipeline import VSSFlowPipeline  # noqa: E402
from vssflow_core.synthetic.dialogue import make_dialogue_clip  # noqa: E402
from vssflow_core.synthetic.generator import write_video  # noqa: E402
from vssflow_core.synthetic.scenes import SceneSpec  # noqa: E402
from vssflow_core.text.speech import make_track  # noqa: E402
from vssflow_core.text.subtitles import read_subtitles, track_to_srt  # noqa: E402

NAMES = {"left": "alice", "right": "bob"}


def make_clip(out: Path, seed: int, duration: float = 40.0) -> dict:
    spec = SceneSpec(duration=duration)
    clip = make_dialogue_clip(np.random.default_rng([7, seed]), spec, count=(5, 5), pause=(3.0, 6.0))
    lines = [{"text": l["text"], "start": l["start"], "end": l["end"], "voice": NAMES[l["voice"]]}
             for l in clip.truth["lines"]]
    write_video(out / "dialogue40.mp4", clip.frames, spec.fps, clip.audio, spec.sample_rate)
    (out / "dialogue40.srt").write_text(track_to_srt(make_track(lines, duration=duration)), encoding="utf-8")
    return {"lines": lines, "mouth_open": clip.truth["mouth_open"], "duration": duration, "fps": spec.fps}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/dialogue40")
    p.add_argument("--checkpoint", default="demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--solver", default="midpoint")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--speech-only", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = make_clip(out, args.seed)
    track = read_subtitles(out / "dialogue40.srt", duration=truth["duration"])
    plan = speech_plan(truth["duration"], track)
    check_line_plan(plan, [(s, e, None) for s, e, _ in speech_lines(track)])
    pipe = VSSFlowPipeline.load(args.checkpoint, device="cpu")
    started = time.perf_counter()
    result = pipe.generate(out / "dialogue40.mp4", speech=track, speech_only=args.speech_only,
                           settings=SamplerSettings(solver=args.solver, steps=args.steps))
    name = f"generated_{args.solver}{args.steps}{'_speech_only' if args.speech_only else ''}.wav"
    write_audio(out / name, result.waveform[0], result.sample_rate, overwrite=True)
    scores = line_scores(result.waveform[0].numpy(), result.sample_rate,
                         [(l["start"], l["end"]) for l in truth["lines"]], truth["duration"], truth["mouth_open"],
                         truth["fps"])
    onsets = np.abs(scores["onset_error_ms"])
    print(json.dumps({"plan": plan.starts, "lines": [(l["start"], l["end"], l["voice"]) for l in truth["lines"]],
                      "median_onset_error_ms": float(np.nanmedian(onsets)),
                      **{k: (list(map(float, v)) if isinstance(v, list) else float(v)) for k, v in scores.items()},
                      "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
