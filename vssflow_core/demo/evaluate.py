"""Held-out evaluation of a VSSFlow checkpoint on synthetic clips: does the sound happen when the picture says so?

    python -m vssflow_core.demo.evaluate --manifest data/synth/heldout.jsonl [--checkpoint demo] [--limit 40]

For every held-out clip the model generates audio from the video (and, for talking clips, the transcript and its
speech window), twice: from the true frames, and from the same frames in a shuffled order (the baseline: the same
model, the same pictures, the timing destroyed).  Reported:

* sound clips: onset F1 (onsets within 100 ms of the visual events, matched one-to-one; see
  :func:`~vssflow_core.synthetic.analysis.onset_f1`);
* talking clips: Pearson correlation between the generated loudness envelope and the drawn mouth opening, per
  25 fps frame over the whole clip, and inside the speech window only (where only the mouth can tell a model when a
  word starts and stops).

Figures are means over clips; ``--json`` writes every clip's numbers too.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..synthetic.analysis import audio_onsets, decode_clip, loudness_envelope, onset_f1, pearson
from ..synthetic.generator import rows_of

ONSET_TOLERANCE_SEC = 0.1
SHUFFLE_SEED = 1234


@dataclass
class ClipScore:
    id: str
    task: str
    true: dict[str, float]
    shuffled: dict[str, float]


@dataclass
class Report:
    clips: list[ClipScore] = field(default_factory=list)

    def mean(self, task: str, condition: str, key: str) -> float:
        values = [getattr(c, condition)[key] for c in self.clips if c.task == task]
        return float(np.mean(values)) if values else float("nan")

    def count(self, task: str) -> int:
        return sum(c.task == task for c in self.clips)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.count("v2s"):
            out["sound_clips"] = self.count("v2s")
            for condition in ("true", "shuffled"):
                out[f"onset_f1_{condition}"] = self.mean("v2s", condition, "f1")
        if self.count("vtts"):
            out["talking_clips"] = self.count("vtts")
            for condition in ("true", "shuffled"):
                out[f"mouth_corr_{condition}"] = self.mean("vtts", condition, "corr")
                out[f"mouth_corr_in_window_{condition}"] = self.mean("vtts", condition, "corr_in_window")
        return out


def shuffled_frames(frames: np.ndarray, seed: int = SHUFFLE_SEED) -> np.ndarray:
    """The same pictures in a random order: what a model that ignores timing would not notice."""
    return frames[np.random.default_rng(seed).permutation(frames.shape[0])]


def score_sound(audio: np.ndarray, rate: int, row: dict[str, Any]) -> dict[str, float]:
    reference = [event["time"] for event in row.get("events", [])]
    return onset_f1(audio_onsets(audio, rate), reference, tolerance=ONSET_TOLERANCE_SEC)


def score_talk(audio: np.ndarray, rate: int, row: dict[str, Any], fps: int) -> dict[str, float]:
    mouth = np.asarray(row["mouth_open"], dtype=np.float64)
    envelope = loudness_envelope(audio, rate, fps, mouth.shape[0])
    first = int(np.floor(row["speech_start"] * fps))
    last = int(np.ceil(row["speech_end"] * fps)) + 1
    return {"corr": pearson(envelope, mouth), "corr_in_window": pearson(envelope[first:last], mouth[first:last])}


def evaluate(pipeline, manifest: str | Path, *, limit: int | None = None, seed: int = 0,
             generate_kwargs: dict[str, Any] | None = None, progress: bool = True) -> Report:
    """Score every v2s and vtts clip of ``manifest`` (at most ``limit`` of each)."""
    from tqdm.auto import tqdm

    manifest = Path(manifest)
    rows = [r for r in rows_of(manifest) if r.get("task") in ("v2s", "vtts")]
    if limit is not None:
        rows = [r for r in rows if r["task"] == "v2s"][:limit] + [r for r in rows if r["task"] == "vtts"][:limit]
    report = Report()
    for row in tqdm(rows, desc="held-out clips", unit="clip", disable=not progress):
        frames, _, _ = decode_clip(manifest.parent / row["video"])
        fps = int(row["fps"])
        speech = {}
        if row["task"] == "vtts":
            speech = {key: row[key] for key in ("transcript", "speech_start", "speech_end")}
        scores = {}
        for condition, pictures in (("true", frames), ("shuffled", shuffled_frames(frames))):
            result = pipeline.generate(torch.from_numpy(pictures), fps=fps, seed=seed, **speech,
                                       **(generate_kwargs or {}))
            audio = result.waveform[0].numpy()
            scores[condition] = (score_sound(audio, result.sample_rate, row) if row["task"] == "v2s"
                                 else score_talk(audio, result.sample_rate, row, fps))
        report.clips.append(ClipScore(row["id"], row["task"], scores["true"], scores["shuffled"]))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    from ..pipeline import VSSFlowPipeline

    parser = argparse.ArgumentParser(prog="python -m vssflow_core.demo.evaluate", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--manifest", required=True, help="held-out manifest written by python -m vssflow_core "
                                                          "synthetic (heldout.jsonl)")
    parser.add_argument("--checkpoint", default="demo", help="checkpoint to evaluate (default: the shipped demo)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solver", default=None, help="sampler (default: the pipeline's)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write every clip's scores to this file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    pipeline = VSSFlowPipeline.load(args.checkpoint, device="cpu")
    kwargs = {k: v for k, v in (("solver", args.solver), ("steps", args.steps)) if v is not None}
    report = evaluate(pipeline, args.manifest, limit=args.limit, seed=args.seed, generate_kwargs=kwargs,
                      progress=not args.no_progress)
    summary = report.summary()
    for key, value in summary.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "clips": [c.__dict__ for c in report.clips]},
                                              indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
