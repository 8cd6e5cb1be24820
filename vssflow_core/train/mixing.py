"""Synthetic sound + speech mixtures for joint generation (official ``dataset/video_mix.py``, spec 10.3).

A speech item ``s`` (duration ``d_s``) is placed at a random ``start`` inside a sound item ``a`` (duration ``d_a``):
``start ~ U(0, d_a - d_s)``, or 0 when the speech is the longer one.  The *target* is mixed at waveform level (and
encoded by the VAE while training); the *conditions* are combined at feature level:

=========  ==========================================================================================================
CLIP       ``clip_a``; from frame ``int(start * 10)`` on, the speech item's frames are added ('add') or replace the
           sound's ('insert'), as many as fit before the end of the window
Synchformer the same on the flattened token axis (24 tokens/s), from token ``int(start * 24)``
waveform   from sample ``int(start * 16000)``, ``min(int(d_s * 16000), samples left)`` samples: 'add' scales the sound
           there by ``gain ~ U(0.3, 0.7)`` and adds the speech; 'insert' replaces the sound by the speech
phonemes   the speech item's per-frame ids delayed by ``int(start * 25)`` frames (zeros before), cropped to the window
lip        likewise, delayed by ``int(start * 25)`` frames
speaker    the speech item's
=========  ==========================================================================================================

:func:`mix_sound_and_speech` is the pure operation; :class:`SoundSpeechMixDataset` wraps a cached dataset and
replaces each item by a mixture with probability ``ratio``, with randomness keyed by (seed, epoch, index) so the
data do not depend on worker processes, ranks or restarts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..config import SequenceConfig
from .config import MixConfig


@dataclass
class MixSource:
    """What mixing needs of one item, on the window's grids."""

    clip: torch.Tensor  # [clip_frames, clip_dim]
    synch: torch.Tensor  # [segments, tokens per segment, synch_dim]
    waveform: torch.Tensor  # [samples] float32
    duration: float  # seconds of real audio (at most the window)
    phone_ids: torch.Tensor  # [latent_length] int64, per-frame ids (zeros = no speech)
    lip: torch.Tensor  # [latent_length, lip_dim]
    speaker: torch.Tensor  # [speaker_dim]


@dataclass(frozen=True)
class MixPlan:
    start: float  # seconds where the speech begins in the sound item
    mode: str  # 'add' or 'insert'
    gain: float  # 'add': factor on the sound under the speech


def draw_plan(rng: random.Random, sound_duration: float, speech_duration: float, mix: MixConfig) -> MixPlan:
    """The random choices of one mixture, in the official order (start, then mode, then the gain for 'add')."""
    start = rng.uniform(0.0, sound_duration - speech_duration)
    if sound_duration < speech_duration:
        start = 0.0
    mode = rng.choice(list(mix.modes))
    gain = rng.uniform(*mix.gain) if mode == "add" else 1.0
    return MixPlan(start=start, mode=mode, gain=gain)


def _splice(target: torch.Tensor, source: torch.Tensor, offset: int, mode: str) -> torch.Tensor:
    """``target[offset:offset+n] (+)= source[:n]`` with n = what fits; returns a new tensor."""
    out = target.clone()
    n = max(0, min(source.shape[0], out.shape[0] - offset))
    if n:
        if mode == "add":
            out[offset:offset + n] += source[:n]
        else:
            out[offset:offset + n] = source[:n]
    return out


def _delay(x: torch.Tensor, frames: int, length: int) -> torch.Tensor:
    """``x`` delayed by ``frames`` (zeros before), cropped or zero-padded to ``length`` along the first axis."""
    lead = x.new_zeros((frames, *x.shape[1:]))
    out = torch.cat([lead, x])[:length]
    if out.shape[0] < length:
        out = torch.cat([out, x.new_zeros((length - out.shape[0], *x.shape[1:]))])
    return out


def mix_sound_and_speech(sound: MixSource, speech: MixSource, plan: MixPlan,
                         sequence: SequenceConfig) -> dict[str, Any]:
    """One mixture (see the module docstring).  Returns the training item's condition tensors plus ``waveform``
    (the mixed target, to be encoded by the VAE) and ``duration``."""
    if plan.mode not in ("add", "insert"):
        raise ValueError(f"unknown mix mode {plan.mode!r}")
    start = plan.start
    rate = sequence.sample_rate
    # tokens per second of the window: 24 for Synchformer's 30 x 8, 25 for the demo's one token per frame
    synch_rate = sound.synch.reshape(-1, sound.synch.shape[-1]).shape[0] / sequence.duration_sec
    clip = _splice(sound.clip, speech.clip, int(start * sequence.clip_fps), plan.mode)

    tokens_shape = sound.synch.shape
    synch = _splice(sound.synch.reshape(-1, tokens_shape[-1]), speech.synch.reshape(-1, speech.synch.shape[-1]),
                    int(start * synch_rate), plan.mode).reshape(tokens_shape)

    waveform = sound.waveform.clone()
    ws = int(start * rate)
    n = max(0, min(int(speech.duration * rate), waveform.shape[0] - ws, speech.waveform.shape[0]))
    if n:
        if plan.mode == "add":
            waveform[ws:ws + n] *= plan.gain
            waveform[ws:ws + n] += speech.waveform[:n]
        else:
            waveform[ws:ws + n] = speech.waveform[:n]

    lead = int(start * sequence.phoneme_fps)
    length = sequence.latent_length
    return {
        "clip": clip,
        "synch": synch,
        "waveform": waveform,
        "phone_ids": _delay(speech.phone_ids, lead, length),
        "lip": _delay(speech.lip, lead, length),
        "speaker": speech.speaker.clone(),
        "duration": max(sound.duration, speech.duration),
    }


class SoundSpeechMixDataset(torch.utils.data.Dataset):
    """Replaces each item of ``base`` by a synthetic sound + speech mixture with probability ``mix.ratio``.

    ``base`` is a :class:`~vssflow_core.train.dataset.CachedFeatureDataset` (with cached waveforms); the speech pool
    is its items whose task is in ``mix.speech_tasks`` and that have a transcript, the sound pool those whose task is
    in ``mix.sound_tasks``.  Keys are ``(index, epoch)`` pairs (a bare index means epoch 0).
    """

    def __init__(self, base, mix: MixConfig, seed: int = 42):
        self.base = base
        self.mix = mix
        self.seed = int(seed)
        self.speech_pool = [i for i, row in enumerate(base.rows) if row.task in mix.speech_tasks and row.has_speech]
        self.sound_pool = [i for i, row in enumerate(base.rows) if row.task in mix.sound_tasks]
        if mix.enabled and (not self.speech_pool or not self.sound_pool):
            raise ValueError(
                f"mixing needs speech items (tasks {list(mix.speech_tasks)}) and sound items (tasks "
                f"{list(mix.sound_tasks)}); the data have {len(self.speech_pool)} and {len(self.sound_pool)}")

    @property
    def rows(self) -> Sequence:
        return self.base.rows

    def __len__(self) -> int:
        return len(self.base)

    def rng_for(self, index: int, epoch: int) -> random.Random:
        return random.Random(f"vssflow-mix/{self.seed}/{epoch}/{index}")

    def __getitem__(self, key) -> dict[str, Any]:
        index, epoch = (key, 0) if isinstance(key, int) else (int(key[0]), int(key[1]))
        rng = self.rng_for(index, epoch)
        if rng.random() > self.mix.ratio:  # the official test: ratio 1 always mixes, ratio 0 never does
            return self.base[index]
        speech_index = self.speech_pool[rng.randrange(len(self.speech_pool))]
        sound_index = self.sound_pool[rng.randrange(len(self.sound_pool))]
        speech, sound = self.base.mix_source(speech_index), self.base.mix_source(sound_index)
        plan = draw_plan(rng, sound.duration, speech.duration, self.mix)
        mixed = mix_sound_and_speech(sound, speech, plan, self.base.sequence)
        return self.base.make_item(
            clip=mixed["clip"], synch=mixed["synch"], phone_ids=mixed["phone_ids"], lip=mixed["lip"],
            speaker=mixed["speaker"], waveform=mixed["waveform"],
            info={"index": index, "mix": {"speech": self.base.rows[speech_index].id,
                                          "sound": self.base.rows[sound_index].id,
                                          "start": plan.start, "mode": plan.mode, "gain": plan.gain}},
        )
