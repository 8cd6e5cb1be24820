"""Training items from the feature cache, batches, and a batch sampler whose position can be saved and restored.

An item holds every condition on the window's grids, with zeros where a modality is missing (the official
placeholders), and the target as the VAE posterior (mean, std) — or, for a synthetic mixture, as a waveform that the
trainer encodes::

    clip [clip_frames, clip_dim]   synch [segments, 8, synch_dim] (demo: [synch_frames, synch_dim])
    phone_ids [L]   lip [L, lip_dim]
    speaker [speaker_dim]          latent_mean / latent_std [C, L]  (waveform [samples], for mixtures)

The :class:`ResumableBatchSampler` shuffles each epoch with a generator seeded by (seed, epoch), cuts the permutation
into global micro-batches of ``batch_size x world_size`` items (the last, incomplete one is dropped) and gives each
process its slice.  Its position (epoch, batch) is all a checkpoint needs to continue with exactly the batches an
uninterrupted run would have seen, and a single process with the same global batch sees the same items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from ..config import SequenceConfig, VSSFlowConfig
from .features import CacheError, item_path, read_item
from .manifest import ManifestRow
from .mixing import MixSource

ITEM_KEYS = ("clip", "synch", "phone_ids", "lip", "speaker", "latent_mean", "latent_std")


class CachedFeatureDataset(torch.utils.data.Dataset):
    """The cached features of ``rows``; keys are indices or ``(index, epoch)`` pairs."""

    def __init__(self, rows: Sequence[ManifestRow], cache_dir: str | Path, model: VSSFlowConfig,
                 sequence: SequenceConfig, check: bool = True, synch_per_frame: bool = False):
        self.rows = list(rows)
        self.synch_per_frame = synch_per_frame  # the demo's motion grid: one token per 25 fps frame
        self.cache_dir = Path(cache_dir)
        self.model = model
        self.sequence = sequence
        if check:
            missing = [row.id for row in self.rows if not item_path(self.cache_dir, row.id).is_file()]
            if missing:
                raise CacheError(f"{len(missing)} of {len(self.rows)} items are not in the cache {self.cache_dir} "
                                 f"(first: {missing[:3]}); build it first (python -m vssflow_core.train --config ... "
                                 "--cache-only)")

    def __len__(self) -> int:
        return len(self.rows)

    # ------------------------------------------------------------------------------------------------ shapes

    @property
    def clip_shape(self) -> tuple[int, int]:
        return (self.sequence.clip_frames, self.model.clip_dim)

    @property
    def synch_shape(self) -> tuple[int, ...]:
        if self.synch_per_frame:
            return (self.sequence.synch_frames, self.model.synch_dim)
        return (self.sequence.synch_segments, self.sequence.synch_tokens_per_segment, self.model.synch_dim)

    def _check(self, row: ManifestRow, name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        if tuple(tensor.shape) != tuple(shape):
            raise CacheError(f"cached {name} of item {row.id!r} has shape {tuple(tensor.shape)}, the model needs "
                             f"{tuple(shape)}; the cache was built with other extractors or another window; rebuild "
                             "it (delete the cache folder)")
        return tensor

    # ------------------------------------------------------------------------------------------------ loading

    def load(self, index: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return read_item(item_path(self.cache_dir, self.rows[index].id))

    def phone_ids(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> torch.Tensor:
        from ..text import silent_frame_ids, stretch_ids

        if "phone_frame_ids" in tensors:  # several lines, stretched each over its own interval when cached
            return tensors["phone_frame_ids"].long()
        tokens, window = tensors.get("phone_tokens"), meta.get("speech_window")
        if tokens is None or window is None or tokens.numel() == 0:
            return silent_frame_ids(self.sequence)
        return stretch_ids(tokens.tolist(), float(window[0]), float(window[1]), self.sequence)

    def conditions(self, index: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
        """The item's condition tensors (zeros for missing modalities), its raw cached tensors and metadata."""
        row = self.rows[index]
        tensors, meta = self.load(index)
        cfg, seq = self.model, self.sequence
        clip = tensors.get("clip")
        synch = tensors.get("synch")
        lip = tensors.get("lip")
        speaker = tensors.get("speaker")
        cond = {
            "clip": torch.zeros(self.clip_shape) if clip is None else self._check(row, "clip", clip.float(),
                                                                                   self.clip_shape),
            "synch": torch.zeros(self.synch_shape) if synch is None else self._check(row, "synch", synch.float(),
                                                                                     self.synch_shape),
            "phone_ids": self.phone_ids(tensors, meta),
            "lip": torch.zeros(seq.latent_length, cfg.lip_dim) if lip is None else self._check(
                row, "lip", lip.float(), (seq.latent_length, cfg.lip_dim)),
            "speaker": torch.zeros(cfg.speaker_dim) if speaker is None else self._check(
                row, "speaker", speaker.float(), (cfg.speaker_dim,)),
        }
        return cond, tensors, meta

    def make_item(self, *, clip, synch, phone_ids, lip, speaker, latent_mean=None, latent_std=None, waveform=None,
                  info=None) -> dict[str, Any]:
        """A training item; without a posterior, ``waveform`` is the target and the trainer encodes it."""
        shape = (self.model.latent_channels, self.sequence.latent_length)
        item = {"clip": clip, "synch": synch, "phone_ids": phone_ids, "lip": lip, "speaker": speaker,
                "latent_mean": torch.zeros(shape) if latent_mean is None else latent_mean,
                "latent_std": torch.zeros(shape) if latent_std is None else latent_std,
                "info": info or {}}
        if latent_mean is None:
            if waveform is None:
                raise ValueError("an item needs either the posterior (mean, std) or a waveform to encode")
            item["waveform"] = waveform.float()
        return item

    def __getitem__(self, key) -> dict[str, Any]:
        index = key if isinstance(key, int) else int(key[0])
        row = self.rows[index]
        cond, tensors, _ = self.conditions(index)
        shape = (self.model.latent_channels, self.sequence.latent_length)
        mean = self._check(row, "latent_mean", tensors["latent_mean"].float(), shape)
        std = self._check(row, "latent_std", tensors["latent_std"].float(), shape)
        return self.make_item(**cond, latent_mean=mean, latent_std=std, info={"index": index})

    def mix_source(self, index: int) -> MixSource:
        """What :func:`~vssflow_core.train.mixing.mix_sound_and_speech` needs of an item (its cached waveform)."""
        cond, tensors, meta = self.conditions(index)
        if "waveform" not in tensors:
            raise CacheError(f"item {self.rows[index].id!r} has no cached waveform, which mixing needs; rebuild the "
                             "cache with data.cache_waveform = true (or with mixing enabled)")
        return MixSource(clip=cond["clip"], synch=cond["synch"], waveform=tensors["waveform"].float(),
                         duration=float(meta["duration"]), phone_ids=cond["phone_ids"], lip=cond["lip"],
                         speaker=cond["speaker"])


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack items; the waveforms of items to be encoded are stacked apart, with their batch positions."""
    batch: dict[str, Any] = {key: torch.stack([item[key] for item in items]) for key in ITEM_KEYS}
    encode = [i for i, item in enumerate(items) if "waveform" in item]
    batch["encode_index"] = torch.tensor(encode, dtype=torch.long)
    batch["waveform"] = (torch.stack([items[i]["waveform"] for i in encode]) if encode
                         else torch.zeros(0, 0))
    batch["info"] = [item.get("info", {}) for item in items]
    return batch


class ResumableBatchSampler:
    """Per-process micro-batches; see the module docstring.

    Iterating yields, forever (epoch after epoch), this process's part of each global micro-batch as a list of
    ``(index, epoch, batch_in_epoch)`` keys; :class:`KeyedDataset` passes ``(index, epoch)`` on to the dataset and
    records the position, from which the trainer knows where to resume.
    """

    def __init__(self, num_items: int, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 42,
                 epoch: int = 0, batch_in_epoch: int = 0, shuffle: bool = True):
        self.num_items = int(num_items)
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.batch_in_epoch = int(batch_in_epoch)
        self.shuffle = shuffle
        if self.batches_per_epoch < 1:
            raise ValueError(f"{self.num_items} items do not fill one global micro-batch of "
                             f"{self.global_batch} ({self.batch_size} per process x {self.world_size} processes)")

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def batches_per_epoch(self) -> int:
        return self.num_items // self.global_batch

    def order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_items)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_items, generator=generator)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        epoch, start = self.epoch, self.batch_in_epoch
        while True:
            order = self.order(epoch)
            for b in range(start, self.batches_per_epoch):
                lo = b * self.global_batch + self.rank * self.batch_size
                yield [(int(i), epoch, b) for i in order[lo:lo + self.batch_size]]
            epoch, start = epoch + 1, 0


class KeyedDataset(torch.utils.data.Dataset):
    """Adapts a dataset taking ``(index, epoch)`` keys to the sampler's ``(index, epoch, batch)`` keys, and records
    the batch position in each item's info."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, Any]:
        index, epoch, batch = key
        item = self.dataset[(index, epoch)]
        item["info"] = {**item.get("info", {}), "epoch": epoch, "batch": batch}
        return item
