"""Write a synthetic data set: mp4 clips (H.264 picture + AAC sound) or wav files, and JSON-lines manifests in the
training format (:mod:`vssflow_core.train.manifest`) with the ground truth of every clip.

Layout under ``out_dir``::

    train/sound_00000.mp4 ...   train/talk_00000.mp4 ...   train/tts_00000.wav ...   train/dialogue_00000.mp4 ...
    heldout/...                 (the same rules, other random draws)
    train.jsonl  heldout.jsonl  (one row per clip; "task" v2s / vtts / tts)

Clip ``i`` of kind ``k`` in split ``s`` is generated from ``numpy.random.default_rng([seed, s, k, i])``: the data set
is a pure function of the seed and the counts, and adding clips never changes the existing ones.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .dialogue import make_dialogue_clip
from .scenes import Clip, SceneSpec, make_sound_clip, make_talking_clip, make_tts_audio

SPLITS = {"train": 0, "heldout": 1}
KINDS = {"sound": 0, "talk": 1, "tts": 2, "dialogue": 3}
TASK_OF = {"sound": "v2s", "talk": "vtts", "tts": "tts", "dialogue": "vtts"}


def clip_rng(seed: int, split: str, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLITS[split], KINDS[kind], int(index)])


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int, audio: np.ndarray, sample_rate: int) -> Path:
    """H.264 picture (frame ``k`` shown at ``k / fps``) plus the waveform as AAC, written atomically."""
    import av

    from ..media.mux import mux_audio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = path.with_name(f".{path.stem}.{os.getpid()}.video.mp4")
    try:
        with av.open(str(picture), "w") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps, 1))
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
            stream.options = {"crf": "12", "preset": "veryfast"}
            stream.codec_context.time_base = Fraction(1, fps)
            for k, picture_k in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture_k), format="rgb24")
                frame.pts = k
                frame.time_base = Fraction(1, fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        mux_audio(picture, audio, sample_rate, path, overwrite=True)
    finally:
        picture.unlink(missing_ok=True)
    return path


def _make(kind: str, rng: np.random.Generator, spec: SceneSpec) -> Clip:
    if kind == "sound":
        return make_sound_clip(rng, spec)
    if kind == "talk":
        return make_talking_clip(rng, spec)
    if kind == "dialogue":
        return make_dialogue_clip(rng, spec)
    return make_tts_audio(rng, spec)


def generate_item(out_dir: str | os.PathLike, split: str, kind: str, index: int, seed: int,
                  spec: SceneSpec = SceneSpec()) -> dict[str, Any]:
    """Generate and write one clip; returns its manifest row (paths relative to ``out_dir``)."""
    from ..media.audio_io import write_audio

    out_dir = Path(out_dir)
    clip = _make(kind, clip_rng(seed, split, kind, index), spec)
    name = f"{split}/{kind}_{index:05d}"
    row: dict[str, Any] = {"id": name, "task": TASK_OF[kind]}
    if kind == "tts":
        write_audio(out_dir / f"{name}.wav", clip.audio, spec.sample_rate, overwrite=True)
        row["audio"] = f"{name}.wav"
    else:
        write_video(out_dir / f"{name}.mp4", clip.frames, spec.fps, clip.audio, spec.sample_rate)
        row["video"] = f"{name}.mp4"
    truth = dict(clip.truth)
    for key in ("transcript", "speech_start", "speech_end", "lines"):
        if key in truth:
            row[key] = truth.pop(key)
    row["duration"] = spec.duration
    row["fps"] = spec.fps
    row.update(truth)
    return row


@dataclass(frozen=True)
class DatasetCounts:
    sound: int = 0
    talk: int = 0
    tts: int = 0
    dialogue: int = 0


def generate_dataset(
    out_dir: str | os.PathLike,
    train: DatasetCounts,
    heldout: DatasetCounts = DatasetCounts(),
    *,
    seed: int = 0,
    spec: SceneSpec = SceneSpec(),
    workers: int = 1,
    progress: bool = True,
) -> dict[str, Path]:
    """Generate every clip of both splits and write ``train.jsonl`` / ``heldout.jsonl``; returns the manifests."""
    from tqdm.auto import tqdm

    from ..train.manifest import write_manifest

    out_dir = Path(out_dir)
    jobs: list[tuple[str, str, int]] = []
    for split, counts in (("train", train), ("heldout", heldout)):
        for kind in KINDS:
            jobs.extend((split, kind, i) for i in range(getattr(counts, kind)))
    rows: dict[tuple[str, str, int], dict] = {}
    bar = tqdm(total=len(jobs), desc="synthetic clips", unit="clip", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            futures = {job: pool.submit(generate_item, out_dir, *job, seed, spec) for job in jobs}
            for job, future in futures.items():
                rows[job] = future.result()
                bar.update(1)
    else:
        for job in jobs:
            rows[job] = generate_item(out_dir, *job, seed, spec)
            bar.update(1)
    bar.close()
    manifests = {}
    for split in SPLITS:
        split_rows = [rows[job] for job in jobs if job[0] == split]
        if split_rows:
            manifests[split] = write_manifest(out_dir / f"{split}.jsonl", split_rows)
    (out_dir / "generator.json").write_text(
        __import__("json").dumps({"seed": seed, "spec": asdict(spec), "train": asdict(train),
                                  "heldout": asdict(heldout)}, indent=2) + "\n", encoding="utf-8")
    return manifests


def rows_of(manifest: str | os.PathLike) -> Iterable[dict[str, Any]]:
    import json

    with open(manifest, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
