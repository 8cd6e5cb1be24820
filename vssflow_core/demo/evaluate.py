"""Held-out evaluation of a VSSFlow checkpoint on synthetic clips: does the sound happen when the picture says so?

    python -m vssflow_core.demo.evaluate --manifest data/synth/heldout.jsonl [--checkpoint demo] [--limit 40]

For every held-out clip the model generates audio from the video (and, for talking clips, the transcript and its
speech window), twice: from the true frames, and from the same frames in a shuffled order (the baseline: the same
model, the same pictures, the timing destroyed).  Reported:

* sound clips: onset F1 (onsets within 100 ms of the visual events, matched one-to-one; see
  :func:`~vssflow_core.synthetic.analysis.onset_f1`);
* talking clips: Pearson correlation between the generated loudness envelope and the drawn mouth opening, per
  25 fps frame over the whole clip, and inside the speech window only (where only the mouth can tell a model when a
  word starts and stops);
* per line (talking clips: their one line; dialogue clips, which have ``lines``: each of them), see
  :mod:`~vssflow_core.demo.line_scores`: the speech onset and offset error against the cue (median of the absolute
  errors over all lines, ms), the loudness vs mouth correlation inside the lines, the level of the pauses between
  lines and of everything outside the lines against the lines (dB).

Figures are means over clips (medians for the per-line errors); ``--json`` writes every clip's numbers too.
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

from ..loading import recommended_sampler
from ..pipeline import VSSFlowPipeline
from ..synthetic.analysis import audio_onsets, decode_clip, loudness_envelope, onset_f1, pearson
from ..synthetic.generator import rows_of
from .line_scores import line_scores, summarize

ONSET_TOLERANCE_SEC = 0.1
SHUFFLE_SEED = 1234


@dataclass
class ClipScore:
    id: str
    task: str
    true: dict[str, Any]
    shuffled: dict[str, Any]
    kind: str = ""  # "sound", "talk" (one line) or "dialogue" (several lines); default: from the task

    def __post_init__(self) -> None:
        self.kind = self.kind or ("sound" if self.task == "v2s" else "talk")


@dataclass
class Report:
    clips: list[ClipScore] = field(default_factory=list)

    def mean(self, kind: str, condition: str, key: str) -> float:
        values = [getattr(c, condition)[key] for c in self.clips if c.kind == kind]
        return float(np.mean(values)) if values else float("nan")

    def count(self, kind: str) -> int:
        return sum(c.kind == kind for c in self.clips)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.count("sound"):
            out["sound_clips"] = self.count("sound")
            for condition in ("true", "shuffled"):
                out[f"onset_f1_{condition}"] = self.mean("sound", condition, "f1")
        if self.count("talk"):
            out["talking_clips"] = self.count("talk")
            for condition in ("true", "shuffled"):
                out[f"mouth_corr_{condition}"] = self.mean("talk", condition, "corr")
                out[f"mouth_corr_in_window_{condition}"] = self.mean("talk", condition, "corr_in_window")
        for kind in ("talk", "dialogue"):
            clips = [c for c in self.clips if c.kind == kind and "lines" in c.true]
            if not clips:
                continue
            out[f"{kind}_line_clips"] = len(clips)
            for condition in ("true", "shuffled"):
                for key, value in summarize([getattr(c, condition)["lines"] for c in clips]).items():
                    out[f"{kind}_{key}_{condition}"] = value
        return out


def shuffled_frames(frames: np.ndarray, seed: int = SHUFFLE_SEED) -> np.ndarray:
    """The same pictures in a random order: what a model that ignores timing would not notice."""
    return frames[np.random.default_rng(seed).permutation(frames.shape[0])]


def score_sound(audio: np.ndarray, rate: int, row: dict[str, Any]) -> dict[str, float]:
    reference = [event["time"] for event in row.get("events", [])]
    return onset_f1(audio_onsets(audio, rate), reference, tolerance=ONSET_TOLERANCE_SEC)


def cues_of(row: dict[str, Any]) -> list[tuple[float, float]]:
    """The row's lines ``(start, end)``: its ``lines``, or its one speech window."""
    if row.get("lines"):
        return [(float(line["start"]), float(line["end"])) for line in row["lines"]]
    return [(float(row["speech_start"]), float(row["speech_end"]))]


def score_talk(audio: np.ndarray, rate: int, row: dict[str, Any], fps: int) -> dict[str, Any]:
    mouth = np.asarray(row["mouth_open"], dtype=np.float64)
    envelope = loudness_envelope(audio, rate, fps, mouth.shape[0])
    first = int(np.floor(row["speech_start"] * fps))
    last = int(np.ceil(row["speech_end"] * fps)) + 1
    lines = line_scores(audio, rate, cues_of(row), float(row.get("duration", audio.shape[-1] / rate)), mouth, fps)
    return {"corr": pearson(envelope, mouth), "corr_in_window": pearson(envelope[first:last], mouth[first:last]),
            "lines": {k: (list(map(float, v)) if isinstance(v, list) else float(v)) for k, v in lines.items()}}


def speech_inputs(row: dict[str, Any]) -> dict[str, Any]:
    """What ``generate`` takes for the row's speech: its lines as a speech track, or its transcript and window."""
    if row.get("lines"):
        from ..text.speech import make_track

        lines = [{k: line[k] for k in ("text", "start", "end", "voice") if k in line} for line in row["lines"]]
        return {"speech": make_track(lines, duration=float(row["duration"]), source=row["id"])}
    return {key: row[key] for key in ("transcript", "speech_start", "speech_end")}


def evaluate(pipeline, manifest: str | Path, *, limit: int | None = None, seed: int = 0,
             generate_kwargs: dict[str, Any] | None = None, progress: bool = True) -> Report:
    """Score every v2s and vtts clip of ``manifest`` (at most ``limit`` of each kind: sound, talk, dialogue)."""
    from tqdm.auto import tqdm

    manifest = Path(manifest)
    rows = [r for r in rows_of(manifest) if r.get("task") in ("v2s", "vtts")]
    if limit is not None:
        rows = [r for kind in ("sound", "talk", "dialogue") for r in [x for x in rows if kind_of(x) == kind][:limit]]
    report = Report()
    for row in tqdm(rows, desc="held-out clips", unit="clip", disable=not progress):
        frames, _, _ = decode_clip(manifest.parent / row["video"])
        fps = int(row["fps"])
        speech = speech_inputs(row) if row["task"] == "vtts" else {}
        scores = {}
        for condition, pictures in (("true", frames), ("shuffled", shuffled_frames(frames))):
            result = pipeline.generate(torch.from_numpy(pictures), fps=fps, seed=seed, **speech,
                                       **(generate_kwargs or {}))
            audio = result.waveform[0].numpy()
            scores[condition] = (score_sound(audio, result.sample_rate, row) if row["task"] == "v2s"
                                 else score_talk(audio, result.sample_rate, row, fps))
        report.clips.append(ClipScore(row["id"], row["task"], scores["true"], scores["shuffled"], kind_of(row)))
    return report


def kind_of(row: dict[str, Any]) -> str:
    return "sound" if row.get("task") == "v2s" else "dialogue" if row.get("lines") else "talk"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vssflow_core.demo.evaluate", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--manifest", required=True, help="held-out manifest written by python -m vssflow_core "
                                                          "synthetic (heldout.jsonl)")
    parser.add_argument("--checkpoint", default="demo", help="checkpoint to evaluate (default: the shipped demo)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many clips of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solver", default=None,
                        help="sampler (default: the one the checkpoint recommends, else the pipeline's)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write every clip's scores to this file")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    pipeline = VSSFlowPipeline.load(args.checkpoint, device="cpu")
    # the checkpoint's recommended sampler (a distilled student's: its steps at guidance scale 1), else the defaults
    settings = recommended_sampler(args.checkpoint, solver=args.solver, steps=args.steps)
    report = evaluate(pipeline, args.manifest, limit=args.limit, seed=args.seed,
                      generate_kwargs={"settings": settings}, progress=not args.no_progress)
    summary = report.summary()
    for key, value in summary.items():
        print(f"{key:44s} {value:.3f}" if isinstance(value, float) else f"{key:44s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "clips": [c.__dict__ for c in report.clips]},
                                              indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
