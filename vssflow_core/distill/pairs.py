"""Step one of distillation: (noise, conditions, teacher endpoint) pairs, made with the official sampler.

For every item of the training feature cache (:class:`~vssflow_core.train.dataset.CachedFeatureDataset`: the same
conditions training reads, zeros for missing modalities) the teacher integrates its guided flow from seeded noise to
t = 1 with the official sampler (dopri5 atol = rtol = 1e-5, guidance scale 3).  Each item is solved on its own: dopri5's
step control uses an error norm over the whole state, so a batch would make an item's endpoint depend on its
neighbours; alone, a pair depends only on (seed, item id, teacher, sampler).  The noise of an item is drawn from a
generator seeded by (seed, item id), so the same seed gives the same pairs whatever the sharding.

Items are cut into shards of ``shard_size`` in manifest order; shard k goes to rank ``k % world_size``.  Each shard
is one safetensors file written through a temporary name and a rename, its metadata naming the ids, seed, sampler
and teacher; a rerun skips every shard whose file matches, so an interrupted run resumes where it stopped.

Per shard (n items)::

    noise [n, C, L]   endpoint [n, C, L]   evaluations [n]
    clip, synch, phone_ids, lip, speaker   (the raw cached conditions, stacked; the student's projections train too)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..flow.guidance import OFFICIAL_GUIDANCE_SCALE, CachedGuidedVelocity
from ..flow.settings import SamplerSettings
from ..model.vssflow import VSSFlow
from ..weights.checkpoint import read_tagged, save_safetensors_atomic

log = logging.getLogger(__name__)

PAIRS_VERSION = 1
METADATA_KEY = "vssflow_pairs"
CONDITION_KEYS = ("clip", "synch", "phone_ids", "lip", "speaker")
# the official sampler, as the pairs are made (the pipeline's default settings are exactly these)
TEACHER_SAMPLER = SamplerSettings(solver="dopri5", guidance_scale=OFFICIAL_GUIDANCE_SCALE)


class PairsError(RuntimeError):
    """The pairs folder is missing shards, or holds shards of another teacher, seed or sampler."""


def shard_path(out_dir: str | os.PathLike, shard: int) -> Path:
    return Path(out_dir) / f"pairs-{shard:05d}.safetensors"


def item_noise_seed(seed: int, item_id: str) -> int:
    """The noise seed of one item: from (seed, the exact id), so it does not depend on order or sharding."""
    digest = hashlib.sha1(item_id.encode("utf-8")).digest()
    words = [int(seed)] + [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0]) & (2**63 - 1)


def item_noise(seed: int, item_id: str, channels: int, length: int) -> torch.Tensor:
    generator = torch.Generator("cpu").manual_seed(item_noise_seed(seed, item_id))
    return torch.randn(channels, length, generator=generator)


def teacher_identity(path: str | os.PathLike) -> str:
    """What names the teacher in the shards' metadata: its file's name, size and modification time (every file of a
    folder), so pairs of another teacher are made again but moving the file does not invalidate them."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files])


@dataclass(frozen=True)
class PairsPlan:
    """What the pairs are made from and how: one value, written into every shard's metadata."""

    seed: int = 0
    shard_size: int = 16
    teacher: str = "teacher"  # :func:`teacher_identity` of the checkpoint
    sampler: SamplerSettings = TEACHER_SAMPLER

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {self.shard_size}")

    def shard_meta(self, ids: Sequence[str], shards: int) -> dict[str, Any]:
        """A shard's metadata; ``shards``: how many the whole set has (so a missing one is noticed)."""
        return {"version": PAIRS_VERSION, "ids": list(ids), "seed": int(self.seed), "teacher": self.teacher,
                "sampler": self.sampler.describe(), "guidance_scale": float(self.sampler.guidance_scale),
                "shards": int(shards)}


def read_shard_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """A shard's metadata, or None when the file is missing, truncated or foreign."""
    try:
        return read_tagged(path, METADATA_KEY, tensors=False)[1]
    except Exception:
        return None


def read_shard(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        return read_tagged(path, METADATA_KEY)
    except Exception as exc:
        raise PairsError(f"cannot read the pairs shard {path} ({type(exc).__name__}: {exc}); delete it and run "
                         "the pairs step again") from None


def shards_of(ids: Sequence[str], shard_size: int) -> list[list[str]]:
    return [list(ids[i:i + shard_size]) for i in range(0, len(ids), shard_size)]


@torch.inference_mode()
def teacher_endpoint(teacher: VSSFlow, conditions: Mapping[str, torch.Tensor], noise: torch.Tensor,
                     sampler: SamplerSettings, latent_length: int) -> tuple[torch.Tensor, int]:
    """The teacher's official-sampler endpoint ``[C, L]`` from ``noise`` ``[C, L]`` on one item's raw conditions,
    and the guided evaluations it took; the same field the pipeline samples (:class:`CachedGuidedVelocity`)."""
    device = next(teacher.parameters()).device
    raw = {k: conditions[k][None].to(device) for k in CONDITION_KEYS}
    cond = teacher.prepare_conditions(raw["clip"], raw["synch"], raw["phone_ids"], raw["lip"], raw["speaker"],
                                      latent_length=latent_length)
    velocity = CachedGuidedVelocity(teacher, cond, sampler.guidance_scale, batched=sampler.batched_guidance)
    x = torch.cat([noise[None].to(device), cond.latent_cond.float()], dim=1)
    solution = sampler.make_solver().solve(velocity, x, 0.0, 1.0)
    return solution.x[0, : teacher.latent_channels].float().cpu(), solution.evaluations


@dataclass
class PairsReport:
    written: int  # shards written by this rank
    skipped: int  # shards of this rank already there
    shards: int  # shards of this rank
    evaluations: int  # teacher evaluations spent


def write_pairs(teacher: VSSFlow, dataset, out_dir: str | os.PathLike, plan: PairsPlan = PairsPlan(), *,
                rank: int = 0, world_size: int = 1, progress: bool = True) -> PairsReport:
    """Write this rank's shards of ``dataset``'s pairs into ``out_dir`` (see the module docstring)."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    teacher = teacher.eval()
    ids = [row.id for row in dataset.rows]
    index_of = {item_id: i for i, item_id in enumerate(ids)}
    every = shards_of(ids, plan.shard_size)
    shards = list(enumerate(every))[rank::world_size]
    latent_length = dataset.sequence.latent_length
    written = skipped = evaluations = 0
    bar = tqdm(shards, desc="teacher pairs", unit="shard", disable=not progress, dynamic_ncols=True)
    for shard, shard_ids in bar:
        path, meta = shard_path(out, shard), plan.shard_meta(shard_ids, len(every))
        if read_shard_meta(path) == meta:
            skipped += 1
            continue
        tensors: dict[str, list[torch.Tensor]] = {k: [] for k in ("noise", "endpoint", "evaluations",
                                                                  *CONDITION_KEYS)}
        for item_id in shard_ids:
            cond, _, _ = dataset.conditions(index_of[item_id])
            noise = item_noise(plan.seed, item_id, teacher.latent_channels, latent_length)
            endpoint, used = teacher_endpoint(teacher, cond, noise, plan.sampler, latent_length)
            evaluations += used
            for key in CONDITION_KEYS:
                tensors[key].append(cond[key])
            tensors["noise"].append(noise)
            tensors["endpoint"].append(endpoint)
            tensors["evaluations"].append(torch.tensor(used))
        save_safetensors_atomic({k: torch.stack(v) for k, v in tensors.items()}, path,
                                metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)}, overwrite=True)
        written += 1
        bar.set_postfix(written=written, skipped=skipped, refresh=False)
    bar.close()
    return PairsReport(written=written, skipped=skipped, shards=len(shards), evaluations=evaluations)


_SAME_PAIRS = ("seed", "teacher", "sampler", "guidance_scale")  # what pairs trained on together must share


class PairsDataset(torch.utils.data.Dataset):
    """Every pair of one or more finished pairs folders, item by item (what the student trains on).  Refuses a folder
    with missing or mixed shards, and folders of different teachers, seeds or samplers, by name; an item in two
    folders (the same id, so the same pair) is taken once.  More pairs are added as a second folder, made from
    other manifest rows, without redoing the first."""

    def __init__(self, *folders: str | os.PathLike):
        if not folders:
            raise PairsError("no pairs folder given")
        self.paths: list[Path] = []
        self.items: list[dict[str, torch.Tensor]] = []
        self.ids: list[str] = []
        self.meta: dict[str, Any] = {}
        seen: set[str] = set()
        for folder in folders:
            paths, meta, items = self._read_folder(folder)
            if self.meta and any(meta.get(k) != self.meta.get(k) for k in _SAME_PAIRS):
                raise PairsError(f"the pairs in {folder} were made by another teacher, seed or sampler than those in "
                                 f"{folders[0]}; train on pairs of one teacher and sampler")
            self.meta = self.meta or meta
            self.paths += paths
            for item_id, item in items:
                if item_id not in seen:
                    seen.add(item_id)
                    self.ids.append(item_id)
                    self.items.append(item)

    @staticmethod
    def _read_folder(out_dir: str | os.PathLike):
        paths = sorted(Path(out_dir).glob("pairs-*.safetensors"))
        if not paths:
            raise PairsError(f"no pairs in {out_dir}; make them first (python -m vssflow_core distill pairs ...)")
        items: list[tuple[str, dict[str, torch.Tensor]]] = []
        first: dict[str, Any] | None = None
        for path in paths:
            tensors, meta = read_shard(path)
            if first is None:
                first = meta
            elif any(meta.get(k) != first.get(k) for k in (*_SAME_PAIRS, "shards")):
                raise PairsError(f"{path} was made by another teacher, seed or sampler than {paths[0]}; "
                                 "delete the folder's shards and make the pairs again")
            items += [(item_id, {k: v[i] for k, v in tensors.items()}) for i, item_id in enumerate(meta["ids"])]
        meta = first or {}
        expected = [shard_path(out_dir, k) for k in range(int(meta.get("shards", 0)))]
        if paths != expected:
            missing = sorted(set(expected) - set(paths))
            raise PairsError(f"{out_dir} has {len(paths)} of {len(expected)} shards (missing: "
                             f"{[p.name for p in missing[:3]]}); run the pairs step again to finish them")
        return paths, meta, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]
