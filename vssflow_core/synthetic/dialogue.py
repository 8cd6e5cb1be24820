"""Dialogue clips (task ``vtts`` with ``lines``): two drawn faces side by side taking turns, 2-4 lines of speech
separated by pauses.

Each face has its own espeak-ng voice; lines alternate between them (the first speaker is drawn at random), and each
face's mouth follows the loudness of its own lines only, so the picture says both when a line starts and who speaks
it.  The ground truth is the lines (text, start, end, voice ``"left"``/``"right"``), as a subtitle file would give
them, plus the mouth opening of every frame (the active face's; one speaks at a time) for the evaluation.
"""

from __future__ import annotations

import numpy as np

from .scenes import (VARIANTS, VOICES, Clip, SceneSpec, _add, _grid, _paint, loudness_envelope, mouth_from_envelope,
                     random_sentence, synthesize_speech)

FACES = ("left", "right")
PAUSE_SEC = (0.4, 1.2)  # silence between two lines
LEAD_SEC = 0.2  # silence at least before the first line and after the last


def _voice(rng: np.random.Generator) -> tuple[str, int, int]:
    name = f"{VOICES[int(rng.integers(len(VOICES)))]}+{VARIANTS[int(rng.integers(len(VARIANTS)))]}"
    return name, int(rng.integers(150, 191)), int(rng.integers(30, 71))


def place_lines(rng: np.random.Generator, spec: SceneSpec, count: tuple[int, int] = (2, 4),
                pause: tuple[float, float] = PAUSE_SEC) -> tuple[list[np.ndarray], list[dict]]:
    """``count`` (inclusive range) lines alternating between the two faces, with pauses, fitting inside the clip."""
    voices = {face: _voice(rng) for face in FACES}
    first = int(rng.integers(2))
    count = int(rng.integers(count[0], count[1] + 1))
    pauses = rng.uniform(*pause, size=count - 1)
    budget = spec.duration - 2 * LEAD_SEC - float(pauses.sum())
    words = [int(rng.integers(2, 5)) for _ in range(count)]
    texts = [random_sentence(rng, n) for n in words]
    speech = [synthesize_speech(t, *voices[FACES[(first + i) % 2]], spec.sample_rate) for i, t in enumerate(texts)]
    while sum(s.shape[0] for s in speech) / spec.sample_rate > budget:
        longest = int(np.argmax([s.shape[0] for s in speech]))
        if len(texts[longest].split()) > 1:
            texts[longest] = " ".join(texts[longest].rstrip(".").split()[:-1]) + "."
            speech[longest] = synthesize_speech(texts[longest], *voices[FACES[(first + longest) % 2]],
                                                spec.sample_rate)
        elif len(texts) > 2:
            del texts[-1], speech[-1]
            pauses = pauses[: len(texts) - 1]
            budget = spec.duration - 2 * LEAD_SEC - float(pauses.sum())
        else:
            pauses = pauses * 0.5
            budget = spec.duration - 2 * LEAD_SEC - float(pauses.sum())
    spoken = sum(s.shape[0] for s in speech) / spec.sample_rate + float(pauses.sum())
    # anywhere in the clip: the model has to find the lines from the mouths and the cues, not from a habit
    t = float(rng.uniform(LEAD_SEC, max(LEAD_SEC, spec.duration - LEAD_SEC - spoken)))
    lines = []
    for i, (text, wave) in enumerate(zip(texts, speech)):
        length = wave.shape[0] / spec.sample_rate
        face = FACES[(first + i) % 2]
        lines.append({"text": text, "start": round(t, 4), "end": round(t + length, 4), "voice": face,
                      "espeak": voices[face][0]})
        t += length + (float(pauses[i]) if i < len(pauses) else 0.0)
    return speech, lines


def make_dialogue_clip(rng: np.random.Generator, spec: SceneSpec = SceneSpec(), count: tuple[int, int] = (2, 4),
                       pause: tuple[float, float] = PAUSE_SEC) -> Clip:
    S = spec.size
    speech, lines = place_lines(rng, spec, count, pause)
    audio = rng.standard_normal(spec.num_samples) * spec.noise
    own = {face: np.zeros(spec.num_samples) for face in FACES}
    for wave, line in zip(speech, lines):
        at = int(round(line["start"] * spec.sample_rate))
        _add(audio, at, wave.astype(np.float64))
        _add(own[line["voice"]], at, wave.astype(np.float64))
    loud = {face: loudness_envelope(own[face], spec.sample_rate, spec.fps, spec.num_frames) for face in FACES}
    peak = max(float(v.max()) for v in loud.values()) or 1.0
    opening = {face: mouth_from_envelope(np.append(loud[face], peak))[:-1] for face in FACES}  # one scale for both

    background = rng.uniform(20, 90, size=3).astype(np.uint8)
    skins = [(224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172), (241, 194, 125)]
    x, y = _grid(S)
    base = np.empty((S, S, 3), dtype=np.uint8)
    base[:] = background
    mouths = {}
    for face, side in zip(FACES, (-1, 1)):
        skin = np.array(skins[int(rng.integers(len(skins)))], dtype=np.uint8)
        cx = S / 2 + side * 0.25 * S + rng.uniform(-0.02, 0.02) * S
        cy = S / 2 + rng.uniform(-0.04, 0.04) * S
        _paint(base, ((x - cx) / (0.2 * S)) ** 2 + ((y - cy) / (0.3 * S)) ** 2 <= 1.0, skin)
        for ex in (cx - 0.08 * S, cx + 0.08 * S):
            _paint(base, (x - ex) ** 2 + (y - (cy - 0.08 * S)) ** 2 <= (0.025 * S) ** 2,
                   np.array([30, 30, 40], np.uint8))
        mouths[face] = (cx, cy + 0.14 * S)
    mouth_w, mouth_h = 0.08 * S, (0.01 * S, 0.07 * S)
    mouth_color = np.array([90, 20, 35], dtype=np.uint8)
    frames = np.empty((spec.num_frames, S, S, 3), dtype=np.uint8)
    for k in range(spec.num_frames):
        f = frames[k]
        f[:] = base
        for face, (mx, my) in mouths.items():
            half_h = mouth_h[0] + opening[face][k] * (mouth_h[1] - mouth_h[0])
            _paint(f, ((x - mx) / mouth_w) ** 2 + ((y - my) / half_h) ** 2 <= 1.0, mouth_color)
    active = np.maximum(opening["left"], opening["right"])
    truth = {"transcript": " ".join(line["text"] for line in lines), "lines": lines,
             "speech_start": lines[0]["start"], "speech_end": lines[-1]["end"],
             "mouth_open": [float(v) for v in active],
             "mouth_open_by_face": {face: [float(v) for v in opening[face]] for face in FACES},
             "geometry": {"size": S, "mouths": {face: [round(float(v), 3) for v in mouths[face]] for face in FACES},
                          "mouth_color": [int(v) for v in mouth_color]}}
    return Clip(frames=frames, audio=audio.astype(np.float32), truth=truth)
