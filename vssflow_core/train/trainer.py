"""The training loop: the official objective (spec 9.1-9.4b) with the official optimisation (spec 10.1).

One optimizer step = ``accumulate_grad_batches`` micro-batches of ``batch_size`` items on each of ``world_size``
processes.  For every micro-batch:

1. the conditions are projected (``prepare_conditions``) and, with the masklip worker's frame dropout, each latent
   frame of the lip and Synchformer channels is kept with probability ``1 - ratio`` (ratio drawn from
   ``train.mask_ratios``, one per micro-batch; two independent masks);
2. classifier-free-guidance dropout: with probability ``unconditional_prob`` the **whole** micro-batch (over all
   processes) loses every condition: the concatenated channels and the cross-attention context become zeros;
3. the target latent is a fresh sample ``mean + std * eps`` of the cached VAE posterior (items built by mixing are
   encoded by the VAE first); ``x0 ~ N(0, I)``, ``t ~ U(0, 1)`` per item;
4. loss = MSE over the audio channels of the predicted velocity (``flow_matching_loss``).

Determinism.  Every random draw of a step (noise, times, posterior samples, dropout decisions, frame masks) comes from
a generator seeded by (seed, step, micro-batch) and is drawn for the *global* micro-batch; each process takes its
rows.  Data order comes from the resumable sampler, mixtures from (seed, epoch, index).  So a run resumed from a
checkpoint repeats the uninterrupted run's losses exactly, and N processes reproduce a single process with the same
global batch up to floating-point summation order.

AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0.01) over the trainable parameters (the Fourier time weights stay
frozen), ``lr = base_learning_rate x global batch``, factor ``step / warmup`` for the first ``warmup_steps`` steps
(0 at the very first, as Lightning steps LambdaLR) then 1; no clipping, no EMA.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..codec.mel import LogMelFrontend
from ..codec.vae import MelVAE, pack_latent
from ..flow.path import flow_matching_loss
from ..model.vssflow import Conditions, VSSFlow
from ..demo.frontends import FRONTEND_FILE
from ..devices import has_native_bfloat16
from .checkpoint import (TrainingState, find_checkpoint, load_training_checkpoint, save_training_checkpoint)
from .config import TrainConfig, global_batch_size
from .dataset import CachedFeatureDataset, KeyedDataset, ResumableBatchSampler, collate

log = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"
CONFIG_FILE = "config.json"


# ---------------------------------------------------------------------------------------------------- processes


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto", timeout_minutes: float = 120.0) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*);
    a plain ``python`` launch is a single process.  NCCL on CUDA, gloo on the CPU."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        dev = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def teardown_distributed() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------- the objective


class FlowMatchingObjective(nn.Module):
    """Conditions -> dropouts -> flow-matching loss, as one module (what DDP wraps, so every trainable parameter is
    used inside its forward)."""

    def __init__(self, model: VSSFlow, latent_length: int):
        super().__init__()
        self.model = model
        self.latent_length = latent_length

    def forward(self, clip, synch, phone_ids, lip, speaker, x0, x1, t, cond_keep, lip_keep, synch_keep):
        cfg = self.model.cfg
        cond = self.model.prepare_conditions(clip, synch, phone_ids, lip, speaker, latent_length=self.latent_length)
        lc = cond.latent_cond  # [B, lip | phone | synch, L]
        lip_end = cfg.lip_channels
        phone_end = lip_end + cfg.phone_channels
        # dropouts are multiplications (0 or 1), so every parameter stays in the graph (DDP needs no unused-parameter
        # search) and the dropped values are exactly zero
        latent_cond = torch.cat([lc[:, :lip_end] * lip_keep, lc[:, lip_end:phone_end], lc[:, phone_end:] * synch_keep],
                                dim=1) * cond_keep
        context = cond.context * cond_keep
        return flow_matching_loss(self.model, x0, x1, t, Conditions(context=context, latent_cond=latent_cond))


@dataclass
class StepDraws:
    """Every random quantity of one micro-batch (rows of this process only)."""

    x0: torch.Tensor  # [B, C, L] noise
    eps: torch.Tensor  # [B, C, L] posterior sample noise
    t: torch.Tensor  # [B] flow times
    dropped: bool  # CFG dropout of the whole micro-batch
    mask_ratio: float
    lip_keep: torch.Tensor  # [B, 1, L]
    synch_keep: torch.Tensor  # [B, 1, L]


def step_seed(seed: int, step: int, micro: int) -> int:
    state = np.random.SeedSequence([int(seed), int(step), int(micro), 0x565346]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def draw_step(seed: int, step: int, micro: int, global_rows: int, rows: slice, channels: int, length: int,
              unconditional_prob: float, mask_ratios: tuple[float, ...],
              device: torch.device | str = "cpu") -> StepDraws:
    """The random draws of micro-batch ``micro`` of optimizer step ``step`` for the global micro-batch of
    ``global_rows`` items; ``rows`` picks this process's part.  Drawn on ``device`` by that device's generator (the
    same numbers on every process of a run; a CUDA run draws other numbers than a CPU run)."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(step_seed(seed, step, micro))
    x0 = torch.randn(global_rows, channels, length, generator=g, device=device)
    eps = torch.randn(global_rows, channels, length, generator=g, device=device)
    t = torch.rand(global_rows, generator=g, device=device)
    dropped = bool(torch.rand((), generator=g, device=device).item() < unconditional_prob)
    ratio = float(mask_ratios[int(torch.randint(len(mask_ratios), (), generator=g, device=device))])
    lip_u = torch.rand(global_rows, 1, length, generator=g, device=device)
    synch_u = torch.rand(global_rows, 1, length, generator=g, device=device)
    return StepDraws(x0=x0[rows], eps=eps[rows], t=t[rows], dropped=dropped, mask_ratio=ratio,
                     lip_keep=(lip_u[rows] > ratio).float(), synch_keep=(synch_u[rows] > ratio).float())


def warmup_factor(warmup_steps: int) -> Callable[[int], float]:
    """The official LambdaLR factor: ``step / warmup_steps`` during warm-up, then 1."""

    def factor(step: int) -> float:
        return float(step) / float(max(1, warmup_steps)) if step < warmup_steps else 1.0

    return factor


# ---------------------------------------------------------------------------------------------------- the trainer


@dataclass
class TrainResult:
    steps: list[int]  # optimizer steps run in this call
    losses: list[float]  # their losses (mean over the global batch)
    last_step: int
    checkpoint: Path | None  # the last checkpoint written


def build_dataset(cfg: TrainConfig, rows=None):
    """The training dataset of a configuration: the cached items of every manifest, wrapped by the mixer when mixing
    is on."""
    from .manifest import read_manifests
    from .mixing import SoundSpeechMixDataset

    rows = read_manifests(cfg.manifest_paths) if rows is None else rows
    dataset = CachedFeatureDataset(rows, cfg.cache_dir, cfg.model, cfg.sequence,
                                   synch_per_frame=cfg.uses_demo_frontend)
    if cfg.data.mix.enabled:
        return SoundSpeechMixDataset(dataset, cfg.data.mix, seed=cfg.train.seed)
    return dataset


def autocast_dtype(setting: str | None, device: torch.device) -> torch.dtype | None:
    """The forward pass's autocast dtype for ``train.autocast`` on ``device`` (None: float32, no autocast)."""
    if setting == "auto":
        return torch.bfloat16 if has_native_bfloat16(device) else None
    return getattr(torch, setting) if setting else None


class Trainer:
    """Trains a :class:`VSSFlow` network on cached features; see the module docstring.

    ``dataset``: a dataset taking ``(index, epoch)`` keys (default: :func:`build_dataset`); ``vae``: the frozen VAE
    that encodes mixed waveforms (default: loaded from ``cfg.encoders`` when mixing is on); ``model``: a network to
    train instead of a fresh one built from ``cfg.model`` with the seed.
    """

    def __init__(self, cfg: TrainConfig, *, dataset=None, vae: MelVAE | None = None, model: VSSFlow | None = None,
                 dist: DistInfo | None = None):
        self.cfg = cfg
        self.dist = dist or setup_distributed(cfg.train.device)
        self.device = self.dist.device
        self.out_dir = cfg.out_dir
        run = cfg.train
        self.autocast_dtype = autocast_dtype(run.autocast, self.device)
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision(run.matmul_precision)

        random.seed(run.seed + self.dist.rank)
        np.random.seed((run.seed + self.dist.rank) % 2**32)
        torch.manual_seed(run.seed)  # the same initial weights on every process
        if model is None:
            model = VSSFlow(cfg.model)
            if run.init_from:
                self._init_from(model, cfg.path(run.init_from))
        self.model = model.to(self.device).train()
        self.objective = FlowMatchingObjective(self.model, cfg.sequence.latent_length)
        self.module: nn.Module = self.objective
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.module = DistributedDataParallel(
                self.objective, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        self.global_batch = global_batch_size(cfg, self.dist.world_size)
        self.micro_rows = cfg.data.batch_size * self.dist.world_size
        self.lr = cfg.optim.learning_rate_for(self.global_batch)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=self.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                                           weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_factor(cfg.optim.warmup_steps))

        self.dataset = dataset if dataset is not None else build_dataset(cfg)
        self.vae = vae
        self.mel: LogMelFrontend | None = None
        self.state = TrainingState(step=0, epoch=0, batch_in_epoch=0, samples_seen=0, global_batch=self.global_batch,
                                   micro_batch=self.micro_rows, meta={})
        self.resumed_from: Path | None = None

    # ------------------------------------------------------------------------------------------------ set-up

    @staticmethod
    def _init_from(model: VSSFlow, path: Path) -> None:
        from ..weights.checkpoint import load_vssflow

        source = load_vssflow(path)
        if source.cfg != model.cfg:
            raise ValueError(f"init_from {path}: its configuration differs from the model's ({source.cfg} vs "
                             f"{model.cfg})")
        model.load_state_dict(source.state_dict(), strict=True)

    def _resume_path(self) -> Path | None:
        resume = self.cfg.train.resume
        if resume in (None, "", "none", "never"):
            return None
        if resume == "auto":
            return find_checkpoint(self.out_dir)
        path = self.cfg.path(resume)
        if path is not None and path.is_dir() and not (path / "training_state.safetensors").is_file():
            found = find_checkpoint(path)  # a run folder
            if found is None:
                raise FileNotFoundError(f"no training checkpoint in {path}")
            return found
        return path

    def resume(self) -> bool:
        """Restore the newest checkpoint (per ``train.resume``); True when one was loaded."""
        folder = self._resume_path()
        if folder is None:
            return False
        state = load_training_checkpoint(folder, self.model, self.optimizer, self.scheduler)
        if state.micro_batch != self.micro_rows or state.global_batch != self.global_batch:
            raise ValueError(
                f"{folder} was written with a global batch of {state.global_batch} ({state.micro_batch} per "
                f"micro-batch over all processes); this run has {self.global_batch} ({self.micro_rows}). Resume "
                "with the same batch size x accumulation x number of processes")
        self.state = TrainingState(step=state.step, epoch=state.epoch, batch_in_epoch=state.batch_in_epoch,
                                   samples_seen=state.samples_seen, global_batch=self.global_batch,
                                   micro_batch=self.micro_rows, meta={})
        self.resumed_from = folder
        return True

    def _vae(self) -> tuple[MelVAE, LogMelFrontend]:
        from ..components import codec_mel_config

        if self.vae is None and self.cfg.uses_demo_frontend:
            from ..demo.frontends import MelPatchCodec

            self.vae = MelPatchCodec(self.cfg.demo)
        elif self.vae is None:
            from .features import find_encoder, load_vae_file

            self.vae = load_vae_file(*find_encoder(self.cfg, "vae"), device=self.device)
        self.vae = self.vae.to(self.device).eval().requires_grad_(False)
        if self.mel is None:
            self.mel = LogMelFrontend(codec_mel_config(self.vae)).to(self.device)
        return self.vae, self.mel

    def _loader(self) -> torch.utils.data.DataLoader:
        sampler = ResumableBatchSampler(len(self.dataset), self.cfg.data.batch_size, self.dist.world_size,
                                        self.dist.rank, seed=self.cfg.train.seed, epoch=self.state.epoch,
                                        batch_in_epoch=self.state.batch_in_epoch)
        self.batches_per_epoch = sampler.batches_per_epoch
        workers = self.cfg.data.num_workers
        return torch.utils.data.DataLoader(KeyedDataset(self.dataset), batch_sampler=sampler, collate_fn=collate,
                                           num_workers=workers, pin_memory=self.device.type == "cuda",
                                           persistent_workers=False)

    # ------------------------------------------------------------------------------------------------ logging

    def _prepare_out_dir(self) -> None:
        if not self.dist.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / CONFIG_FILE).write_text(self.cfg.to_json() + "\n", encoding="utf-8")
        log_path = self.out_dir / LOG_FILE
        keep = []
        if self.resumed_from is not None and log_path.is_file():
            # lines after the checkpoint belong to a run that was cut off; they are about to be recomputed
            for line in log_path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", math.inf) <= self.state.step:
                        keep.append(line)
                except json.JSONDecodeError:
                    continue
        log_path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")

    def _log(self, record: dict[str, Any]) -> None:
        if self.dist.is_main:
            with (self.out_dir / LOG_FILE).open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------------------------------------ one step

    def _encode_mixtures(self, batch: dict[str, Any]) -> None:
        index = batch["encode_index"]
        if index.numel() == 0:
            return
        vae, mel = self._vae()
        with torch.no_grad():
            spectrogram = mel(batch["waveform"].to(self.device).float(), self.cfg.sequence.mel_frames)
            posterior = vae.encode(spectrogram)
            mean, std = pack_latent(posterior.mean).float(), pack_latent(posterior.std).float()
        index = index.to(self.device)
        batch["latent_mean"][index] = mean
        batch["latent_std"][index] = std

    def _micro_step(self, batch: dict[str, Any], step: int, micro: int) -> tuple[torch.Tensor, StepDraws]:
        dev = self.device
        for key in ("clip", "synch", "phone_ids", "lip", "speaker", "latent_mean", "latent_std"):
            batch[key] = batch[key].to(dev, non_blocking=True)
        self._encode_mixtures(batch)
        rows = slice(self.dist.rank * self.cfg.data.batch_size, (self.dist.rank + 1) * self.cfg.data.batch_size)
        mean = batch["latent_mean"]
        draws = draw_step(self.cfg.train.seed, step, micro, self.micro_rows, rows, mean.shape[1], mean.shape[2],
                          self.cfg.train.unconditional_prob, tuple(self.cfg.train.mask_ratios), device=dev)
        x1 = mean + batch["latent_std"] * draws.eps
        keep = torch.tensor(0.0 if draws.dropped else 1.0, device=dev)
        dtype = self.autocast_dtype
        with torch.autocast(dev.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = self.module(batch["clip"], batch["synch"], batch["phone_ids"], batch["lip"], batch["speaker"],
                               draws.x0, x1, draws.t, keep, draws.lip_keep, draws.synch_keep)
        return loss.float(), draws

    def _checkpoint(self) -> Path | None:
        path = None
        if self.dist.is_main:
            # a demo-front-end run's checkpoints say which stand-ins they were trained on, so the pipeline loads them
            extra = {FRONTEND_FILE: self.cfg.demo.to_json() + "\n"} if self.cfg.uses_demo_frontend else None
            path = save_training_checkpoint(self.out_dir, self.model, self.optimizer, self.scheduler, self.state,
                                            keep=self.cfg.train.keep_checkpoints, extra_files=extra)
        barrier(self.dist)
        return path

    # ------------------------------------------------------------------------------------------------ the loop

    def fit(self, max_steps: int | None = None) -> TrainResult:
        """Train until ``max_steps`` optimizer steps (default ``train.max_steps``) or ``train.max_epochs``."""
        import torch.distributed as dist
        from tqdm.auto import tqdm

        run = self.cfg.train
        max_steps = run.max_steps if max_steps is None else max_steps
        if self.resumed_from is None and self.state.step == 0:
            self.resume()
        self._prepare_out_dir()
        barrier(self.dist)
        accumulate = self.cfg.data.accumulate_grad_batches
        loader = iter(self._loader())
        if self.dist.is_main and run.progress:
            source = f"resumed from {self.resumed_from}" if self.resumed_from else "from scratch"
            print(f"training {source}: step {self.state.step} of {max_steps}; global batch {self.global_batch} "
                  f"({self.cfg.data.batch_size} x {accumulate} accumulation x {self.dist.world_size} processes), "
                  f"lr {self.lr:.4g}, {len(self.dataset)} items, {self.batches_per_epoch} micro-batches per epoch")
        bar = tqdm(total=max_steps, initial=min(self.state.step, max_steps), desc="training", unit="step",
                   disable=not (run.progress and self.dist.is_main), dynamic_ncols=True)
        steps, losses = [], []
        last_checkpoint = None
        started = time.time()
        while self.state.step < max_steps:
            if run.max_epochs is not None and self.state.epoch >= run.max_epochs:
                break
            step = self.state.step
            lr = self.optimizer.param_groups[0]["lr"]
            total = torch.zeros((), device=self.device)
            dropped = []
            for micro in range(accumulate):
                batch = next(loader)
                sync_now = micro == accumulate - 1 or not self.dist.distributed
                context = self.module.no_sync() if not sync_now else contextlib.nullcontext()
                with context:
                    loss, draws = self._micro_step(batch, step, micro)
                    (loss / accumulate).backward()
                total += loss.detach()
                dropped.append(draws.dropped)
                info = batch["info"][0]
                batch_epoch = int(info["epoch"])
                epoch, b = batch_epoch, int(info["batch"]) + 1
                if b >= self.batches_per_epoch:
                    epoch, b = epoch + 1, 0
                self.state.epoch, self.state.batch_in_epoch = epoch, b
            if self.cfg.optim.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            mean_loss = total / accumulate
            if self.dist.distributed:
                dist.all_reduce(mean_loss, op=dist.ReduceOp.SUM)
                mean_loss = mean_loss / self.dist.world_size
            value = float(mean_loss)
            if not math.isfinite(value):
                raise FloatingPointError(f"the loss is {value} at step {step + 1}; lower the learning rate or check "
                                         "the data")
            self.state.step = step + 1
            self.state.samples_seen += self.global_batch
            steps.append(self.state.step)
            losses.append(value)
            if self.state.step % run.log_every == 0:
                self._log({"step": self.state.step, "loss": value, "lr": lr, "epoch": batch_epoch,
                           "samples": self.state.samples_seen, "cfg_dropped": dropped,
                           "time_s": round(time.time() - started, 3)})
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.3g}", epoch=batch_epoch, refresh=False)
            if self.state.step % run.checkpoint_every == 0:
                last_checkpoint = self._checkpoint()
        bar.close()
        if not steps or self.state.step % run.checkpoint_every != 0:
            if steps:  # a final checkpoint, unless the last step just wrote one
                last_checkpoint = self._checkpoint()
        return TrainResult(steps=steps, losses=losses, last_step=self.state.step,
                           checkpoint=last_checkpoint or find_checkpoint(self.out_dir))
