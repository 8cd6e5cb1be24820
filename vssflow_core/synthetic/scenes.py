"""Procedural clips whose sound a model must time from the picture.

Sound clips (task ``v2s``): up to three objects, each with its own kind of event and sound:

* a **ball** bounces on a floor line; every impact (the frame where it touches the floor) makes a percussive knock
  (a decaying noise burst over a damped low sine);
* a **lamp** flashes for 3-4 frames; the flash is a tonal beep of the same length whose pitch follows the lamp's hue
  (300 Hz for red ... 1200 Hz);
* a **bar** slides across the picture; while it moves, a tone whose pitch follows its position sounds.

Talking clips (task ``vtts``): a drawn face whose mouth opening follows the loudness envelope of speech synthesised by
espeak-ng from a known transcript.

Every random choice comes from the ``numpy.random.Generator`` passed in, so a clip is a pure function of its seed.
Event times lie on the video's frame grid, and the ground truth (event times, kinds, pitches, the mouth opening of
every frame) is returned with the pictures and the waveform.
"""

from __future__ import annotations

import colorsys
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import SEQUENCE

EVENT_KINDS = ("impact", "flash", "motion")

WORDS = (
    "apple", "bird", "blue", "boat", "book", "bring", "brown", "call", "car", "cat", "chair", "city", "clean", "cloud",
    "cold", "come", "cup", "dance", "dark", "day", "deep", "dog", "door", "dream", "drink", "early", "earth", "east",
    "eight", "every", "face", "fall", "far", "fast", "field", "fire", "fish", "five", "floor", "flower", "fly", "food",
    "forest", "four", "friend", "game", "garden", "give", "glass", "go", "gold", "good", "green", "hand", "happy",
    "hat", "hear", "heavy", "hello", "help", "high", "hill", "home", "horse", "house", "ice", "island", "jump", "key",
    "kind", "king", "lake", "lamp", "late", "laugh", "leaf", "light", "little", "long", "look", "loud", "love", "low",
    "make", "many", "map", "moon", "morning", "mountain", "music", "name", "near", "new", "night", "nine", "north",
    "ocean", "old", "open", "orange", "paper", "park", "peace", "pen", "people", "play", "quick", "quiet", "rain",
    "red", "river", "road", "rock", "room", "run", "sand", "say", "sea", "seven", "ship", "shoe", "sing", "six", "sky",
    "sleep", "slow", "small", "snow", "soft", "song", "south", "star", "stone", "street", "summer", "sun", "table",
    "take", "tall", "ten", "three", "time", "today", "train", "tree", "two", "voice", "walk", "warm", "water", "west",
    "white", "wind", "window", "winter", "world", "yellow", "young",
)
VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "f4", "f5")


@dataclass(frozen=True)
class SceneSpec:
    """Geometry and timing shared by every clip of a data set."""

    size: int = 96  # pictures are size x size
    fps: int = 25
    duration: float = 4.0  # seconds
    sample_rate: int = SEQUENCE.sample_rate
    min_gap: float = 0.4  # seconds between events (every event's sound ends before the next starts)
    events: tuple[int, int] = (2, 5)  # events per sound clip, inclusive range
    noise: float = 0.003  # background noise amplitude

    @property
    def num_frames(self) -> int:
        return round(self.duration * self.fps)

    @property
    def num_samples(self) -> int:
        return round(self.duration * self.sample_rate)


@dataclass
class Clip:
    frames: np.ndarray  # uint8 [F, S, S, 3]
    audio: np.ndarray  # float32 [N], in [-1, 1]
    truth: dict[str, Any] = field(default_factory=dict)  # ground truth for the manifest


# ---------------------------------------------------------------------------------------------------- drawing


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return x, y


def _paint(frame: np.ndarray, mask: np.ndarray, color: np.ndarray) -> None:
    frame[mask] = color


def _hue_color(hue: float, value: float = 1.0) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, 0.85, value)
    return np.array([r * 255, g * 255, b * 255], dtype=np.uint8)


def _envelope(n: int, rate: int, attack: float = 0.005, release: float = 0.02) -> np.ndarray:
    env = np.ones(n, dtype=np.float64)
    a, r = max(1, int(attack * rate)), max(1, int(release * rate))
    env[:a] *= np.linspace(0.0, 1.0, a, endpoint=False)
    env[-r:] *= np.linspace(1.0, 0.0, r)
    return env


def _add(audio: np.ndarray, start: int, sound: np.ndarray) -> None:
    end = min(audio.shape[0], start + sound.shape[0])
    if end > start:
        audio[start:end] += sound[: end - start]


# ---------------------------------------------------------------------------------------------------- sound clips


def event_times(rng: np.random.Generator, spec: SceneSpec, count: int) -> list[float]:
    """``count`` event times on the frame grid, at least ``min_gap`` apart, inside [0.25 s, duration - 0.45 s]."""
    lo, hi = 0.25, spec.duration - 0.45
    for _ in range(200):
        times = np.sort(rng.uniform(lo, hi, size=count))
        times = np.round(times * spec.fps) / spec.fps
        if count < 2 or np.min(np.diff(times)) >= spec.min_gap - 1e-9:
            return [float(t) for t in times]
    return event_times(rng, spec, count - 1) if count > 1 else [float(np.round(lo * spec.fps) / spec.fps)]


def knock(rng: np.random.Generator, rate: int, pitch: float) -> np.ndarray:
    n = int(0.16 * rate)
    t = np.arange(n) / rate
    noise = rng.standard_normal(n) * np.exp(-t / 0.012)
    body = np.sin(2 * np.pi * pitch * t) * np.exp(-t / 0.045)
    sound = 0.45 * noise + 0.8 * body
    return sound * _envelope(n, rate, attack=0.001, release=0.01)


def beep(rate: int, pitch: float, seconds: float) -> np.ndarray:
    n = int(seconds * rate)
    t = np.arange(n) / rate
    tone = np.sin(2 * np.pi * pitch * t) + 0.3 * np.sin(4 * np.pi * pitch * t)
    return 0.55 * tone * _envelope(n, rate)


def glide(rate: int, pitches: np.ndarray) -> np.ndarray:
    """A tone following ``pitches`` (one per sample)."""
    phase = 2 * np.pi * np.cumsum(pitches) / rate
    tone = np.sin(phase) + 0.4 * np.sin(2 * phase)
    return 0.45 * tone * _envelope(len(pitches), rate)


def ball_heights(times: list[float], t: np.ndarray, top: float) -> np.ndarray:
    """Height above the floor at times ``t``: a fall onto the first impact, parabolic bounces between impacts, then
    rest.  Zero exactly at the impact times."""
    h = np.zeros_like(t)
    if not times:
        return h
    first = times[0]
    before = t < first
    h[before] = top * (1.0 - (t[before] / first) ** 2)
    for a, b in zip(times[:-1], times[1:]):
        inside = (t > a) & (t < b)
        tau = (t[inside] - a) / (b - a)
        apex = top * min(1.0, ((b - a) / 0.9) ** 2)
        h[inside] = 4.0 * apex * tau * (1.0 - tau)
    return h


def make_sound_clip(rng: np.random.Generator, spec: SceneSpec = SceneSpec()) -> Clip:
    S, fps, rate = spec.size, spec.fps, spec.sample_rate
    count = int(rng.integers(spec.events[0], spec.events[1] + 1))
    times = event_times(rng, spec, count)
    present = [k for k in EVENT_KINDS if rng.random() < 0.6] or [EVENT_KINDS[int(rng.integers(3))]]
    kinds = [present[int(rng.integers(len(present)))] for _ in times]

    background = rng.uniform(10, 60, size=3).astype(np.uint8)
    floor_y = 0.86 * S
    ball_r = 0.06 * S
    ball_x = rng.uniform(0.12, 0.4) * S
    ball_color = _hue_color(rng.uniform(), 1.0)
    ball_pitch = float(rng.uniform(110, 380))
    lamp_box = (0.62 * S, 0.08 * S, 0.84 * S, 0.30 * S)
    bar_y = (0.38 * S, 0.62 * S)
    bar_w = 0.1 * S
    bar_color = np.array([200, 200, 210], dtype=np.uint8)

    audio = rng.standard_normal(spec.num_samples) * spec.noise
    events = []
    flash_frames: dict[int, np.ndarray] = {}
    bar_track = np.full(spec.num_frames, np.nan)
    bar_x = rng.uniform(0.5, 0.9) * S
    bar_track[:] = bar_x
    impacts = []
    for t, kind in zip(times, kinds):
        frame = int(round(t * fps))
        start = int(round(t * rate))
        if kind == "impact":
            impacts.append(t)
            _add(audio, start, knock(rng, rate, ball_pitch))
            events.append({"time": t, "frame": frame, "kind": kind, "duration": 0.16, "pitch": round(ball_pitch, 2)})
        elif kind == "flash":
            hue = float(rng.uniform(0.0, 1.0))
            pitch = 300.0 * 2.0 ** (2.0 * hue)
            n = int(rng.integers(3, 5))
            for k in range(frame, min(spec.num_frames, frame + n)):
                flash_frames[k] = _hue_color(hue)
            _add(audio, start, beep(rate, pitch, n / fps))
            events.append({"time": t, "frame": frame, "kind": kind, "duration": n / fps, "pitch": round(pitch, 2),
                           "hue": round(hue, 4)})
        else:  # motion
            n = int(rng.integers(5, 9))
            target = rng.uniform(0.5, 0.9) * S
            if abs(target - bar_x) < 0.15 * S:
                target = 0.5 * S if bar_x > 0.7 * S else 0.9 * S
            for k in range(frame, spec.num_frames):
                tau = min(1.0, (k - frame) / n)
                bar_track[k] = bar_x + (target - bar_x) * (3 * tau**2 - 2 * tau**3)
            samples = np.arange(int(n / fps * rate)) / rate
            tau = np.clip(samples / (n / fps), 0.0, 1.0)
            xs = bar_x + (target - bar_x) * (3 * tau**2 - 2 * tau**3)
            _add(audio, start, glide(rate, 250.0 + 700.0 * xs / S))
            events.append({"time": t, "frame": frame, "kind": kind, "duration": n / fps,
                           "from_x": round(float(bar_x), 2), "to_x": round(float(target), 2)})
            bar_x = target

    heights = ball_heights(impacts, np.arange(spec.num_frames) / fps, 0.6 * S)
    x, y = _grid(S)
    frames = np.empty((spec.num_frames, S, S, 3), dtype=np.uint8)
    lamp_mask = (x >= lamp_box[0]) & (x < lamp_box[2]) & (y >= lamp_box[1]) & (y < lamp_box[3])
    floor_mask = (y >= floor_y) & (y < floor_y + 0.03 * S)
    for k in range(spec.num_frames):
        f = frames[k]
        f[:] = background
        _paint(f, floor_mask, np.array([120, 110, 100], dtype=np.uint8))
        if "impact" in present:
            cy = floor_y - ball_r - heights[k]
            _paint(f, (x - ball_x) ** 2 + (y - cy) ** 2 <= ball_r**2, ball_color)
        if "flash" in present:
            _paint(f, lamp_mask, flash_frames.get(k, np.array([70, 70, 70], dtype=np.uint8)))
        if "motion" in present:
            bx = bar_track[k]
            _paint(f, (x >= bx - bar_w / 2) & (x < bx + bar_w / 2) & (y >= bar_y[0]) & (y < bar_y[1]), bar_color)

    peak = float(np.max(np.abs(audio))) or 1.0
    audio = (audio * (0.8 / peak)).astype(np.float32) if peak > 0.8 else audio.astype(np.float32)
    truth = {
        "events": events,
        "objects": present,
        "geometry": {"size": S, "floor_y": round(floor_y, 3), "ball_x": round(float(ball_x), 3),
                     "ball_radius": round(ball_r, 3), "lamp_box": [round(v, 3) for v in lamp_box],
                     "bar_y": [round(v, 3) for v in bar_y]},
    }
    return Clip(frames=frames, audio=audio, truth=truth)


# ---------------------------------------------------------------------------------------------------- speech


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize_speech(text: str, voice: str, speed: int, pitch: int, rate: int) -> np.ndarray:
    """espeak-ng speech for ``text`` as float32 at ``rate``, leading and trailing silence removed."""
    import soundfile as sf
    import torch

    from ..codec.resample import resample

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("the talking clips need espeak-ng: install it (Debian/Ubuntu: sudo apt-get install "
                           "espeak-ng; macOS: brew install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", "120", "-z", "-w", str(wav), text],
                       check=True, capture_output=True)
        data, source_rate = sf.read(str(wav), dtype="float32", always_2d=True)
    x = data.mean(axis=1).astype(np.float64)
    if source_rate != rate:
        x = resample(torch.from_numpy(x), int(source_rate), rate).numpy()
    loud = np.flatnonzero(np.abs(x) > 0.02 * (np.abs(x).max() or 1.0))
    if loud.size:
        x = x[max(0, loud[0] - int(0.01 * rate)): loud[-1] + int(0.02 * rate)]
    peak = np.abs(x).max() or 1.0
    return (0.7 * x / peak).astype(np.float32)


def loudness_envelope(audio: np.ndarray, rate: int, fps: int, num_frames: int, window: float = 0.04) -> np.ndarray:
    """RMS of ``audio`` in a ``window``-second window centred on every frame time ``k / fps``."""
    half = int(window * rate / 2)
    out = np.zeros(num_frames)
    for k in range(num_frames):
        c = int(round(k * rate / fps))
        seg = audio[max(0, c - half): c + half]
        out[k] = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if seg.size else 0.0
    return out


def mouth_from_envelope(envelope: np.ndarray, floor: float = 0.08) -> np.ndarray:
    """Mouth opening in [0, 1] per frame from a loudness envelope (closed below ``floor`` of the peak)."""
    peak = envelope.max() or 1.0
    opening = np.clip((envelope / peak - floor) / (1.0 - floor), 0.0, 1.0) ** 0.6
    return np.round(opening, 3)


def random_sentence(rng: np.random.Generator, words: int) -> str:
    chosen = [WORDS[int(i)] for i in rng.integers(0, len(WORDS), size=words)]
    return " ".join(chosen).capitalize() + "."


def place_speech(rng: np.random.Generator, spec: SceneSpec, margin: float = 0.15) -> tuple[np.ndarray, dict]:
    """Speech (a random sentence, voice, speed and pitch) and where it starts, fitting inside the clip."""
    voice = f"{VOICES[int(rng.integers(len(VOICES)))]}+{VARIANTS[int(rng.integers(len(VARIANTS)))]}"
    pitch = int(rng.integers(30, 71))
    speed = int(rng.integers(150, 191))
    words = int(rng.integers(3, 7))
    lead = 0.2  # seconds of silence at least before the speech
    budget = spec.duration - lead - margin
    text = random_sentence(rng, words)
    speech = synthesize_speech(text, voice, speed, pitch, spec.sample_rate)
    while speech.shape[0] / spec.sample_rate > budget:
        if words > 1:
            words -= 1
            text = " ".join(text.rstrip(".").split()[:words]) + "."
        else:
            speed += 40
        speech = synthesize_speech(text, voice, speed, pitch, spec.sample_rate)
    length = speech.shape[0] / spec.sample_rate
    # anywhere in the clip, so a model has to find the speech from the mouth and the speech window, not its habit
    start = float(rng.uniform(lead, max(lead, spec.duration - margin - length)))
    end = start + length
    return speech, {"transcript": text, "voice": voice, "speed": speed, "pitch": pitch,
                    "speech_start": round(start, 4), "speech_end": round(end, 4)}


def speech_track(rng: np.random.Generator, spec: SceneSpec) -> tuple[np.ndarray, dict]:
    """The clip's whole audio track: background noise plus the placed speech."""
    speech, info = place_speech(rng, spec)
    audio = rng.standard_normal(spec.num_samples) * spec.noise
    _add(audio, int(round(info["speech_start"] * spec.sample_rate)), speech.astype(np.float64))
    return audio.astype(np.float32), info


def make_talking_clip(rng: np.random.Generator, spec: SceneSpec = SceneSpec()) -> Clip:
    S = spec.size
    audio, info = speech_track(rng, spec)
    envelope = loudness_envelope(audio, spec.sample_rate, spec.fps, spec.num_frames)
    opening = mouth_from_envelope(envelope)

    background = rng.uniform(20, 90, size=3).astype(np.uint8)
    skin = np.array([(224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172), (241, 194, 125)][
        int(rng.integers(5))], dtype=np.uint8)
    cx = S / 2 + rng.uniform(-0.06, 0.06) * S
    cy = S / 2 + rng.uniform(-0.04, 0.04) * S
    face = (0.30 * S, 0.38 * S)
    mouth_c = (cx, cy + 0.17 * S)
    mouth_w = 0.12 * S
    mouth_h = (0.012 * S, 0.09 * S)  # half-height closed .. fully open
    mouth_color = np.array([90, 20, 35], dtype=np.uint8)
    x, y = _grid(S)
    base = np.empty((S, S, 3), dtype=np.uint8)
    base[:] = background
    _paint(base, ((x - cx) / face[0]) ** 2 + ((y - cy) / face[1]) ** 2 <= 1.0, skin)
    for ex in (cx - 0.12 * S, cx + 0.12 * S):
        _paint(base, (x - ex) ** 2 + (y - (cy - 0.1 * S)) ** 2 <= (0.035 * S) ** 2, np.array([30, 30, 40], np.uint8))
    frames = np.empty((spec.num_frames, S, S, 3), dtype=np.uint8)
    for k in range(spec.num_frames):
        f = frames[k]
        f[:] = base
        half_h = mouth_h[0] + opening[k] * (mouth_h[1] - mouth_h[0])
        _paint(f, ((x - mouth_c[0]) / mouth_w) ** 2 + ((y - mouth_c[1]) / half_h) ** 2 <= 1.0, mouth_color)
    box = [mouth_c[0] - mouth_w - 1, mouth_c[1] - mouth_h[1] - 1, mouth_c[0] + mouth_w + 1, mouth_c[1] + mouth_h[1] + 1]
    truth = {**info, "mouth_open": [float(v) for v in opening],
             "geometry": {"size": S, "mouth_box": [round(float(v), 3) for v in box],
                          "mouth_color": [int(v) for v in mouth_color]}}
    return Clip(frames=frames, audio=audio, truth=truth)


def make_tts_audio(rng: np.random.Generator, spec: SceneSpec = SceneSpec()) -> Clip:
    """Speech without video (task ``tts``)."""
    audio, info = speech_track(rng, spec)
    return Clip(frames=np.zeros((0, spec.size, spec.size, 3), np.uint8), audio=audio, truth=info)

