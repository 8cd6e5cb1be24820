"""Training VSSFlow with the official recipe: manifests, the feature cache, sound + speech mixing, the loop.

Entry point: ``python -m vssflow_core.train --config run.toml`` (see :mod:`vssflow_core.train.__main__`).
Modules: :mod:`.config` (the configuration file), :mod:`.manifest` (JSON-lines data lists), :mod:`.features` (the
per-item feature cache), :mod:`.dataset` (items, batches, the resumable sampler), :mod:`.mixing` (synthetic
sound + speech mixtures), :mod:`.trainer` (objective, optimisation, DDP), :mod:`.checkpoint` (safetensors
checkpoints with exact resume).
"""

from .checkpoint import find_checkpoint, load_training_checkpoint, save_training_checkpoint
from .config import DataConfig, MixConfig, OptimConfig, RunConfig, TrainConfig, load_config
from .dataset import CachedFeatureDataset, ResumableBatchSampler, collate
from .features import FeatureExtractor, build_cache, item_path, read_item, write_item
from .manifest import ManifestRow, read_manifest, read_manifests, write_manifest
from .mixing import MixPlan, MixSource, SoundSpeechMixDataset, mix_sound_and_speech
from .trainer import FlowMatchingObjective, Trainer, TrainResult, draw_step

__all__ = [
    "CachedFeatureDataset",
    "DataConfig",
    "FeatureExtractor",
    "FlowMatchingObjective",
    "ManifestRow",
    "MixConfig",
    "MixPlan",
    "MixSource",
    "OptimConfig",
    "ResumableBatchSampler",
    "RunConfig",
    "SoundSpeechMixDataset",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_cache",
    "collate",
    "draw_step",
    "find_checkpoint",
    "item_path",
    "load_config",
    "load_training_checkpoint",
    "mix_sound_and_speech",
    "read_item",
    "read_manifest",
    "read_manifests",
    "save_training_checkpoint",
    "write_item",
    "write_manifest",
]
