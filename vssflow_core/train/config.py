"""The training configuration: one JSON or TOML file, read into dataclasses whose defaults are the official recipe.

Sections (every key optional; an unknown key is an error that names the known ones)::

    [model]      VSSFlowConfig fields (default: the official 10-layer model)
    [sequence]   SequenceConfig fields (default: the official 10 s window, 250 latent frames)
    [data]       manifests, cache folder, batch size, gradient accumulation, loader workers
    [data.mix]   synthetic sound + speech mixing (spec 10.3): ratio, modes, gain range, which tasks are pools
    [optim]      AdamW and the learning-rate rule: lr = base_learning_rate x global batch, linear warm-up
    [train]      output folder, steps, seed, CFG dropout, frame dropout, logging, checkpoints, resume, device
    [encoders]   the frozen feature extractors used to build the cache (paths, or found in a models folder), or
                 ``frontend = "demo"`` for the parameter-free stand-ins of the demo model
    [demo]       DemoFrontendConfig fields (what the demo stand-ins compute; see vssflow_core.demo.frontends)

Relative paths are resolved against the configuration file's folder.  ``--set section.key=value`` on the command line
overrides single values (the value is read as JSON when it parses, else taken as a string); a relative path given
there is resolved against the working directory, where the user typed it.

Example (the official joint pre-training on 4 GPUs: 36 x 2 x 4 = 288 clips per step, lr 1.152e-4)::

    [data]
    manifests = ["data/vggsound.jsonl", "data/lrs2_chem_grid.jsonl", "data/libritts_ljspeech.jsonl"]
    cache_dir = "cache"
    num_workers = 8

    [train]
    out_dir = "runs/joint"
    checkpoint_every = 10000

    [encoders]
    models_dir = "models"     # clip, synchformer, vae and rawnet3 found here (python -m vssflow_core download ...)

and a fine-tune on synthetic sound + speech mixtures adds ``[data.mix] ratio = 1.0`` and
``[train] init_from = "runs/joint/checkpoints/step_00420000"``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import SequenceConfig, VSSFlowConfig
from ..demo.frontends import DemoFrontendConfig

FRONTENDS = ("pretrained", "demo")  # the frozen CLIP / Synchformer / VAE, or the demo's parameter-free stand-ins
TASKS = ("v2s", "vtts", "tts", "joint")  # video-to-sound, visual TTS, TTS without video, real sound + speech
SPEECH_TASKS = ("vtts", "tts")
MIX_MODES = ("add", "insert")


class ConfigError(ValueError):
    """A training configuration that cannot be used, with a message naming the offending key."""


@dataclass
class MixConfig:
    """Feature-level synthetic sound + speech mixing (official ``dataset/video_mix.py``; spec 10.3).

    With probability ``ratio`` a training item is replaced by a mixture of a random speech item (task in
    ``speech_tasks``) and a random sound item (task in ``sound_tasks``); 0 turns mixing off (the official
    pre-training), 1 is the official ``synthesized`` fine-tune, 0.5 the ``v2c_synthesized`` one.
    """

    ratio: float = 0.0
    modes: tuple[str, ...] = MIX_MODES
    gain: tuple[float, float] = (0.3, 0.7)  # 'add': the sound under the speech is scaled by U(gain)
    speech_tasks: tuple[str, ...] = SPEECH_TASKS
    sound_tasks: tuple[str, ...] = ("v2s",)

    def validate(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ConfigError(f"data.mix.ratio must lie in [0, 1], got {self.ratio}")
        if not self.modes or any(m not in MIX_MODES for m in self.modes):
            raise ConfigError(f"data.mix.modes must be a non-empty subset of {list(MIX_MODES)}, got {list(self.modes)}")
        lo, hi = self.gain
        if not 0.0 <= lo <= hi:
            raise ConfigError(f"data.mix.gain must be [low, high] with 0 <= low <= high, got {list(self.gain)}")
        for name in ("speech_tasks", "sound_tasks"):
            bad = [t for t in getattr(self, name) if t not in TASKS]
            if bad:
                raise ConfigError(f"data.mix.{name} has unknown tasks {bad}; tasks are {list(TASKS)}")

    @property
    def enabled(self) -> bool:
        return self.ratio > 0.0


@dataclass
class DataConfig:
    manifests: tuple[str, ...] = ()  # JSON-lines manifests (see vssflow_core.train.manifest); their union is trained on
    cache_dir: str = "cache"  # one safetensors file per item (see vssflow_core.train.features)
    batch_size: int = 36  # per process (official: 36 per GPU)
    accumulate_grad_batches: int = 2  # official pre-training: 2 (fine-tunes: 4)
    num_workers: int = 0  # DataLoader worker processes
    cache_waveform: bool | None = None  # keep the 16 kHz waveform in the cache; None = when mixing needs it
    mix: MixConfig = field(default_factory=MixConfig)

    def validate(self) -> None:
        if self.batch_size < 1 or self.accumulate_grad_batches < 1:
            raise ConfigError("data.batch_size and data.accumulate_grad_batches must be at least 1")
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")
        self.mix.validate()

    @property
    def keeps_waveform(self) -> bool:
        return self.mix.enabled if self.cache_waveform is None else bool(self.cache_waveform)


@dataclass
class OptimConfig:
    """AdamW with PyTorch's defaults (as the official worker), lr scaled by the global batch, linear warm-up."""

    base_learning_rate: float = 4.0e-7  # lr = base x batch_size x accumulate_grad_batches x world_size
    learning_rate: float | None = None  # an absolute learning rate instead of the scaled one
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: int = 2000  # lr factor step / warmup_steps during warm-up (0 at the first step), then 1
    grad_clip_norm: float | None = None  # the official recipe does not clip

    def validate(self) -> None:
        if self.warmup_steps < 0:
            raise ConfigError("optim.warmup_steps must be >= 0")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"optim.learning_rate must be positive, got {self.learning_rate}")
        if not self.base_learning_rate > 0:
            raise ConfigError(f"optim.base_learning_rate must be positive, got {self.base_learning_rate}")

    def learning_rate_for(self, global_batch: int) -> float:
        return float(self.learning_rate) if self.learning_rate is not None else self.base_learning_rate * global_batch


@dataclass
class RunConfig:
    out_dir: str = "runs/vssflow"
    max_steps: int = 420_000  # optimizer steps (the official masklip run: 240 epochs of 503 k clips at batch 288)
    max_epochs: int | None = None  # stop after this many passes over the data as well, if set
    seed: int = 42
    unconditional_prob: float = 0.1  # CFG dropout: the whole (global) micro-batch loses every condition
    mask_ratios: tuple[float, ...] = (0.0,)  # lip/Synchformer frame dropout ratio, one drawn per micro-batch
    log_every: int = 1  # loss-log lines every N optimizer steps
    checkpoint_every: int = 5000  # optimizer steps between checkpoints (and one at the end)
    keep_checkpoints: int | None = None  # keep only the newest N checkpoints; None keeps all
    resume: str | None = "auto"  # "auto": the newest checkpoint in out_dir, a checkpoint folder, or None
    init_from: str | None = None  # start from these VSSFlow weights (any file load_vssflow reads) instead of random
    device: str = "auto"  # "auto": cuda:<local rank> when CUDA is available, else cpu
    matmul_precision: str = "medium"  # torch.set_float32_matmul_precision (official: medium -> TF32 on GPUs)
    # "bfloat16"/"float16": mixed-precision forward (weights, optimizer and loss stay float32); "auto": bfloat16 where
    # the device multiplies it in hardware, else float32 (emulated bf16 on a CPU without AVX512-BF16 is ~15x slower)
    autocast: str | None = None
    progress: bool = True  # a tqdm progress bar on rank 0

    def validate(self) -> None:
        if self.max_steps < 0:
            raise ConfigError("train.max_steps must be >= 0")
        if not 0.0 <= self.unconditional_prob <= 1.0:
            raise ConfigError(f"train.unconditional_prob must lie in [0, 1], got {self.unconditional_prob}")
        if not self.mask_ratios or any(not 0.0 <= r <= 1.0 for r in self.mask_ratios):
            raise ConfigError(f"train.mask_ratios must be a non-empty list of values in [0, 1], got "
                              f"{list(self.mask_ratios)}")
        if self.log_every < 1 or self.checkpoint_every < 1:
            raise ConfigError("train.log_every and train.checkpoint_every must be at least 1")
        if self.keep_checkpoints is not None and self.keep_checkpoints < 1:
            raise ConfigError("train.keep_checkpoints must be at least 1 (or null to keep all)")
        if self.matmul_precision not in ("highest", "high", "medium"):
            raise ConfigError("train.matmul_precision must be 'highest', 'high' or 'medium'")
        if self.autocast not in (None, "auto", "bfloat16", "float16"):
            raise ConfigError(f"train.autocast must be null, 'auto', 'bfloat16' or 'float16', got {self.autocast!r}")


@dataclass
class EncoderConfig:
    """The frozen extractors that fill the feature cache (and the VAE that encodes mixed waveforms while training).

    Each is a path (file or folder, as the library loaders accept) or None to look it up in ``models_dir`` through the
    weights registry.  ``rawnet3`` may be ``"none"``: speaker embeddings are then zeros (the model's "no reference").
    """

    frontend: str = "pretrained"  # or "demo": the parameter-free stand-ins (no weights; see [demo])
    clip: str | None = None
    synchformer: str | None = None
    vae: str | None = None
    rawnet3: str | None = None
    models_dir: str | None = None
    device: str = "auto"
    clip_batch_size: int = 32
    synch_batch_size: int = 8


@dataclass
class TrainConfig:
    model: VSSFlowConfig = field(default_factory=VSSFlowConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)
    encoders: EncoderConfig = field(default_factory=EncoderConfig)
    demo: DemoFrontendConfig = field(default_factory=DemoFrontendConfig)
    base_dir: str = "."  # relative paths are resolved against this (the config file's folder)

    def validate(self) -> "TrainConfig":
        self.data.validate()
        self.optim.validate()
        self.train.validate()
        if self.encoders.frontend not in FRONTENDS:
            raise ConfigError(f"encoders.frontend must be one of {list(FRONTENDS)}, got {self.encoders.frontend!r}")
        if self.uses_demo_frontend:
            demo, model = self.demo, self.model
            wrong = [f"model.{name} = {getattr(model, name)} (the demo front-ends give {want})"
                     for name, want in (("clip_dim", demo.clip_dim), ("synch_dim", demo.synch_dim),
                                        ("latent_channels", demo.latent_channels))
                     if getattr(model, name) != want]
            if wrong:
                raise ConfigError("the model does not fit the demo front-ends: " + "; ".join(wrong))
        seq = self.sequence
        if seq.mel_frames % seq.latent_downsample:
            raise ConfigError(f"sequence: {seq.mel_frames} mel frames are not a multiple of the VAE's "
                              f"{seq.latent_downsample}x downsampling; choose another duration_sec")
        if seq.synch_frames < seq.synch_segment_frames:
            raise ConfigError(f"sequence: a {seq.duration_sec} s window has fewer frames than one Synchformer segment")
        return self

    @property
    def uses_demo_frontend(self) -> bool:
        return self.encoders.frontend == "demo"

    # ------------------------------------------------------------------------------------------------ paths

    def path(self, value: str | os.PathLike | None) -> Path | None:
        """``value`` resolved against :attr:`base_dir` (None stays None)."""
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def out_dir(self) -> Path:
        return self.path(self.train.out_dir)

    @property
    def cache_dir(self) -> Path:
        return self.path(self.data.cache_dir)

    @property
    def manifest_paths(self) -> list[Path]:
        return [self.path(m) for m in self.data.manifests]

    # ------------------------------------------------------------------------------------------------ (de)serialising

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base_dir: str | os.PathLike = ".") -> "TrainConfig":
        values = dict(values)
        values.setdefault("base_dir", str(base_dir))
        return _build(cls, values, "").validate()


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _build(cls: type, values: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, recursing into nested dataclasses, refusing unknown keys."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where or 'the configuration'} must be a table/object, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where or 'the configuration'}; known keys: {sorted(fields)}")
    kwargs = {}
    hints = _field_types(cls)
    for name, value in values.items():
        kind = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(kind):
            kwargs[name] = _build(kind, value, key)
        else:
            kwargs[name] = _coerce(value, fields[name], key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {where or 'configuration'}: {exc}") from None


def _field_types(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _coerce(value: Any, f: dataclasses.Field, key: str) -> Any:
    """Lists -> tuples for tuple fields; ints -> floats for float fields; type errors name the key."""
    default = f.default if f.default is not dataclasses.MISSING else None
    text = str(f.type)
    if isinstance(value, list):
        return tuple(value)
    if value is None:
        if "None" not in text and "Optional" not in text:
            raise ConfigError(f"{key} cannot be null")
        return None
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------------- files


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The raw mapping in a ``.json`` or ``.toml`` configuration file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        try:
            import tomllib  # Python 3.11+
        except ModuleNotFoundError:  # pragma: no cover - Python 3.10
            try:
                import tomli as tomllib
            except ModuleNotFoundError:
                raise ConfigError("reading TOML needs Python 3.11+ or the 'tomli' package; or write the configuration "
                                  "as JSON") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON ({exc})") from None


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (value parsed as JSON when possible) to a raw configuration mapping."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotted, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = values
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return values


# The keys whose values are paths (read through TrainConfig.path): an override of one is made absolute against the
# working directory, since that is where the command line was typed.
PATH_KEYS = frozenset({"data.manifests", "data.cache_dir", "train.out_dir", "train.init_from", "train.resume",
                       "encoders.clip", "encoders.synchformer", "encoders.vae", "encoders.rawnet3",
                       "encoders.models_dir"})


def _from_working_dir(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_working_dir(v) for v in value]
    if isinstance(value, str) and value not in ("", "none", "auto", "last") and not Path(value).expanduser().is_absolute():
        return str(Path.cwd() / Path(value).expanduser())
    return value


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read, override and validate a configuration file; relative paths in the file resolve against its folder,
    those given in ``overrides`` against the working directory."""
    path = Path(path)
    values = apply_overrides(read_config_file(path), overrides)
    for item in overrides:
        dotted = item.split("=", 1)[0].strip()
        if dotted in PATH_KEYS:
            section, key = dotted.split(".")
            values[section][key] = _from_working_dir(values[section][key])
    return TrainConfig.from_dict(values, base_dir=values.pop("base_dir", None) or path.resolve().parent)


def global_batch_size(cfg: TrainConfig, world_size: int) -> int:
    """Samples per optimizer step over all processes."""
    return cfg.data.batch_size * cfg.data.accumulate_grad_batches * world_size
