"""The feature cache: every condition and the target latent of every manifest row, computed once by the frozen
extractors and stored as one safetensors file per item.

Per item (spec 7 and 6; the official training read the same things from ``.npy`` caches)::

    clip          [clip_frames, clip_dim]          CLIP CLS tokens at 10 fps over the window   (rows with video)
    synch         [segments, 8, synch_dim]         Synchformer tokens at 25 fps input          (rows with video)
    phone_tokens  [n]                              phoneme ids of the transcript (unstretched) (rows with speech)
    phone_frame_ids [L]                            per-frame ids of a row with several lines (dialogue)
    speaker       [speaker_dim]                    RawNet3 of the reference                    (when there is one)
    lip           [latent_length, lip_dim]         precomputed lip features                    (when given)
    latent_mean   [latent_channels, latent_length] VAE posterior mean of the target audio, packed
    latent_std    [latent_channels, latent_length] VAE posterior standard deviation, packed
    waveform      [window samples] float16         the 16 kHz target audio (only when mixing needs it)

The posterior's mean and standard deviation are stored, not a sample: a fresh latent ``mean + std * eps`` is drawn
at every training step, as the official worker encodes the mel anew each step.  Missing modalities are not stored;
the dataset fills in zeros (the official placeholder files).

The metadata records the row's fingerprint (paths, sizes, times, transcript), the window and the extractors, so a
second run skips every item whose file is still valid and recomputes only what changed.  Files are written through a
temporary name and a rename: an interrupted run leaves whole items or nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..codec.resample import resample
from ..codec.vae import MelVAE, VAEConfig, load_vae
from ..components import PipelineComponents
from ..config import SequenceConfig, VSSFlowConfig
from ..demo import load_frontends
from ..devices import default_device
from ..loading import component_finder, load_components, read_config
from ..media.audio_io import read_audio
from ..video import open_video
from ..weights.checkpoint import read_tagged, save_safetensors_atomic
from ..weights.hub import MissingWeightsError
from .manifest import ManifestRow

log = logging.getLogger(__name__)

CACHE_VERSION = 1
METADATA_KEY = "vssflow_cache"
ITEMS_DIR = "items"


class CacheError(RuntimeError):
    """The cache is missing items, or holds items that do not fit the model being trained."""


# ---------------------------------------------------------------------------------------------------- item files


def item_filename(item_id: str) -> str:
    """A file name for an item id: readable, filesystem-safe, and unique (a hash of the exact id)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id).strip("._")[:80] or "item"
    return f"{readable}-{hashlib.sha1(item_id.encode('utf-8')).hexdigest()[:12]}.safetensors"


def item_path(cache_dir: str | os.PathLike, item_id: str) -> Path:
    return Path(cache_dir) / ITEMS_DIR / item_filename(item_id)


def write_item(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write one cached item atomically (tensors plus the JSON metadata)."""
    return save_safetensors_atomic(tensors, path, metadata={METADATA_KEY: json.dumps(dict(meta), sort_keys=True)},
                                   overwrite=True)


def read_item_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The metadata of a cached item, or None when the file is missing or unreadable."""
    try:
        return read_tagged(path, METADATA_KEY, tensors=False)[1]
    except Exception:  # missing, truncated or foreign file: recompute
        return None


def read_item(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a cached item."""
    try:
        return read_tagged(path, METADATA_KEY)
    except Exception as exc:
        raise CacheError(f"cannot read the cached item {path} ({type(exc).__name__}: {exc}); delete it and rebuild "
                         "the cache") from None


def sequence_key(sequence: SequenceConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(sequence)


# ---------------------------------------------------------------------------------------------------- extraction


@dataclass
class ItemFeatures:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


class FeatureExtractor:
    """How one manifest row becomes cached features, through the frozen components' own encode methods
    (:class:`~vssflow_core.components.PipelineComponents`, loaded without a vocoder: training only encodes).

    Without RawNet3 there is no speaker embedding (zeros at training time).  ``fingerprint`` names the extractors in
    the cache metadata, so a cache made with other weights is recomputed.
    """

    def __init__(
        self,
        components: PipelineComponents,
        *,
        lip_dim: int = VSSFlowConfig.lip_dim,
        clip_batch_size: int = 32,
        synch_batch_size: int = 8,
        fingerprint: str = "custom",
    ):
        self.components = components
        self.lip_dim = lip_dim
        self.clip_batch_size = clip_batch_size
        self.synch_batch_size = synch_batch_size
        self.fingerprint = fingerprint

    @property
    def sequence(self) -> SequenceConfig:
        return self.components.sequence

    # ------------------------------------------------------------------------------------------------ pieces

    def load_audio(self, path: Path) -> torch.Tensor:
        """Mono float32 ``[samples]`` at the model's rate (the whole file)."""
        samples, rate = read_audio(path)
        mono = torch.from_numpy(samples).float().mean(dim=0)
        if rate != self.sequence.sample_rate:
            mono = resample(mono.double(), rate, self.sequence.sample_rate).float()
        return mono

    def fit_window(self, waveform: torch.Tensor) -> torch.Tensor:
        n = self.sequence.num_samples
        if waveform.shape[-1] >= n:
            return waveform[:n].clone()
        return torch.cat([waveform, waveform.new_zeros(n - waveform.shape[-1])])

    def posterior(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Window-length waveforms ``[B, N]`` -> packed posterior mean and std ``[B, C, L]`` (float32, on the CPU)."""
        return self.components.encode_audio(waveforms)

    def video(self, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP ``[clip_frames, D]`` and Synchformer ``[segments, 8, D]`` features of the window's frames."""
        with open_video(path) as source:
            clip, synch = self.components.encode_window(source, 0.0, clip_batch_size=self.clip_batch_size,
                                                        synch_batch_size=self.synch_batch_size)
        return clip[0].float().cpu(), synch[0].float().cpu()

    def speaker(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.components.speaker_embedding((waveform, self.sequence.sample_rate)).float().cpu()

    # ------------------------------------------------------------------------------------------------ one row

    def extract(self, row: ManifestRow, keep_waveform: bool = False) -> ItemFeatures:
        from ..encoders.lip import load_lip_features
        from ..text import tokens_to_ids, transcript_to_tokens
        from ..text.phonemes import check_speech_window

        seq = self.sequence
        tensors: dict[str, torch.Tensor] = {}
        audio = self.load_audio(row.audio)
        # the official audio_duration: the file's length rounded to 10 ms, here at most the window
        duration = min(round(audio.shape[-1] / seq.sample_rate, 2), seq.duration_sec)
        waveform = self.fit_window(audio)
        mean, std = self.posterior(waveform[None])
        tensors["latent_mean"], tensors["latent_std"] = mean[0], std[0]
        if keep_waveform:
            tensors["waveform"] = waveform.to(torch.float16)

        if row.has_video:
            tensors["clip"], tensors["synch"] = self.video(row.video)

        speech_window = None
        if row.lines:  # dialogue: every line stretched over its own interval, as generation does
            try:
                tensors["phone_frame_ids"] = row.speech_track(duration).frame_ids(duration, seq)
            except ValueError as exc:
                raise CacheError(f"item {row.id!r}: {exc}") from None
        elif row.has_speech:
            tokens = transcript_to_tokens(row.transcript)
            tensors["phone_tokens"] = torch.tensor(tokens_to_ids(tokens), dtype=torch.long)
            start = row.speech_start or 0.0
            end = min(row.speech_end if row.speech_end is not None else duration, seq.duration_sec)
            try:
                check_speech_window(start, end, seq)
            except ValueError as exc:
                raise CacheError(f"item {row.id!r}: {exc}") from None
            speech_window = [start, end]

        if self.components.has_speaker_encoder and row.speaker_ref is not None:
            reference = audio if row.speaker_ref == "self" else self.load_audio(Path(row.speaker_ref))
            tensors["speaker"] = self.speaker(reference)

        if row.lip is not None:
            tensors["lip"] = load_lip_features(row.lip, num_frames=seq.latent_length, dim=self.lip_dim).float()

        meta = {
            "version": CACHE_VERSION, "id": row.id, "task": row.task, "duration": duration,
            "speech_window": speech_window, "fingerprint": row.fingerprint(), "sequence": sequence_key(seq),
            "extractors": self.fingerprint, "has_waveform": keep_waveform,
        }
        return ItemFeatures(tensors, meta)


def _file_identity(path: Path | None) -> Any:
    """Name, size and modification time of a weights file (or of every file in a weights folder); not the folder it
    lies in, so moving the weights does not invalidate the cache."""
    if path is None:
        return None
    try:
        if path.is_dir():
            return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                    for p in sorted(path.rglob("*")) if p.is_file()]
        st = path.stat()
        return [path.name, st.st_size, st.st_mtime_ns]
    except OSError:
        return [path.name]


@dataclass
class EncoderPaths:
    """Where each frozen extractor's weights are (and, for VAE folders, their config)."""

    clip: Path
    synchformer: Path
    vae: Path
    vae_config: Path | None
    rawnet3: Path | None

    def fingerprint(self) -> str:
        return json.dumps({k: _file_identity(getattr(self, k))
                           for k in ("clip", "synchformer", "vae", "vae_config", "rawnet3")}, sort_keys=True)


def find_encoder(cfg, component: str, optional: bool = False) -> tuple[Path | None, Path | None]:
    """(weights, config.json or None) of one configured extractor: the given path, else found in
    ``encoders.models_dir`` (or the Hugging Face cache) through the weights registry; the error of a missing one says
    how to fetch it.  ``optional``: None instead of the error."""
    given = getattr(cfg.encoders, component)
    find = component_finder(None, [cfg.path(cfg.encoders.models_dir)], download=False, verify=False)
    try:
        return find(component, None if given is None else cfg.path(given))
    except MissingWeightsError:
        if optional:
            return None, None
        raise


def resolve_encoder_paths(cfg, need_rawnet3: bool = True) -> EncoderPaths:
    """The weights files of every configured extractor (see :func:`find_encoder`).  RawNet3 is optional: without it
    (or with ``encoders.rawnet3 = "none"``) speaker embeddings are zeros."""
    clip, _ = find_encoder(cfg, "clip")
    synch, _ = find_encoder(cfg, "synchformer")
    vae, vae_config = find_encoder(cfg, "vae")
    rawnet = None
    if need_rawnet3 and (cfg.encoders.rawnet3 or "").lower() != "none":
        rawnet, _ = find_encoder(cfg, "rawnet3", optional=cfg.encoders.rawnet3 is None)
        if rawnet is None:
            log.warning("no RawNet3 weights found: speaker embeddings will be zeros (set encoders.rawnet3 to a path, "
                        "or to \"none\" to silence this)")
    return EncoderPaths(clip, synch, vae, vae_config, rawnet)


def load_vae_file(weights: Path, config_file: Path | None = None, device: torch.device | str = "cpu") -> MelVAE:
    """The VAE alone (what the trainer decodes validation latents with), read as the pipeline's loader reads it."""
    return load_vae(weights, read_config(config_file, VAEConfig.from_diffusers_config), device=device)


def extractors_fingerprint(cfg) -> str:
    """What names the configured extractors in the cache metadata (a cache made with others is recomputed)."""
    if cfg.uses_demo_frontend:
        return json.dumps({"demo": cfg.demo.to_json()}, sort_keys=True)
    return resolve_encoder_paths(cfg).fingerprint()


def demo_extractor(cfg, device: torch.device | str = "cpu") -> FeatureExtractor:
    """The demo's parameter-free stand-ins (see :mod:`vssflow_core.demo.frontends`) as a feature extractor."""
    clip, synch, codec, _ = load_frontends(cfg.demo, device)
    return _extractor(cfg, PipelineComponents(clip, synch, codec, None, sequence=cfg.sequence),
                      extractors_fingerprint(cfg))


def extractor_from_config(cfg, device: torch.device | str | None = None) -> FeatureExtractor:
    """Load the configured extractors (see :func:`resolve_encoder_paths`), or the demo's stand-ins."""
    device = cfg.encoders.device if device is None else device
    device = default_device() if device == "auto" else torch.device(device)
    if cfg.uses_demo_frontend:
        return demo_extractor(cfg, device)
    paths = resolve_encoder_paths(cfg)
    vae = paths.vae if paths.vae_config is None else paths.vae_config.parent  # a diffusers folder: its config.json
    components = load_components(clip=paths.clip, synchformer=paths.synchformer, vae=vae, rawnet3=paths.rawnet3,
                                 speaker=paths.rawnet3 is not None, verify=False, device=device, decode=False,
                                 sequence=cfg.sequence)
    return _extractor(cfg, components, paths.fingerprint())


def _extractor(cfg, components: PipelineComponents, fingerprint: str) -> FeatureExtractor:
    return FeatureExtractor(components, lip_dim=cfg.model.lip_dim, clip_batch_size=cfg.encoders.clip_batch_size,
                            synch_batch_size=cfg.encoders.synch_batch_size, fingerprint=fingerprint)


# ---------------------------------------------------------------------------------------------------- the cache


@dataclass
class CacheReport:
    computed: int
    skipped: int
    total: int


def item_is_current(meta: Mapping[str, Any] | None, row: ManifestRow, sequence: SequenceConfig,
                    keep_waveform: bool, extractors: str | None = None) -> bool:
    """Whether a cached item's metadata still matches its row, the window and the extractors."""
    if not meta or meta.get("version") != CACHE_VERSION:
        return False
    if meta.get("fingerprint") != row.fingerprint() or meta.get("sequence") != sequence_key(sequence):
        return False
    if keep_waveform and not meta.get("has_waveform"):
        return False
    return extractors is None or meta.get("extractors") == extractors


def build_cache(
    rows: Sequence[ManifestRow],
    cache_dir: str | os.PathLike,
    extractor: FeatureExtractor | Callable[[], FeatureExtractor],
    *,
    sequence: SequenceConfig,
    keep_waveform: bool = False,
    extractors_fingerprint: str | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> CacheReport:
    """Compute the features of every row that has no current cache file.

    ``extractor`` may be a factory: it is called only when some item needs computing, so a complete cache never loads
    a model.  With several processes, process ``rank`` handles rows ``rank, rank + world_size, ...``.
    ``extractors_fingerprint`` (default: the extractor's own, when it is given as an object) marks items made with
    other weights as stale.
    """
    from tqdm.auto import tqdm

    if extractors_fingerprint is None and isinstance(extractor, FeatureExtractor):
        extractors_fingerprint = extractor.fingerprint
    mine = list(rows)[rank::world_size]
    computed = skipped = 0
    loaded: FeatureExtractor | None = extractor if isinstance(extractor, FeatureExtractor) else None
    bar = tqdm(mine, desc="caching features", unit="item", disable=not progress, dynamic_ncols=True)
    for row in bar:
        path = item_path(cache_dir, row.id)
        if item_is_current(read_item_meta(path), row, sequence, keep_waveform, extractors_fingerprint):
            skipped += 1
        else:
            if loaded is None:
                loaded = extractor()
            try:
                features = loaded.extract(row, keep_waveform=keep_waveform)
            except CacheError:
                raise
            except Exception as exc:
                raise CacheError(f"cannot extract the features of item {row.id!r} ({type(exc).__name__}: {exc})") \
                    from exc
            write_item(path, features.tensors, features.meta)
            computed += 1
        bar.set_postfix(computed=computed, skipped=skipped, refresh=False)
    bar.close()
    return CacheReport(computed=computed, skipped=skipped, total=len(mine))


def missing_items(rows: Sequence[ManifestRow], cache_dir: str | os.PathLike, sequence: SequenceConfig,
                  keep_waveform: bool = False) -> list[str]:
    """Ids of rows whose cache file is missing or stale (extractor identity not checked)."""
    return [row.id for row in rows
            if not item_is_current(read_item_meta(item_path(cache_dir, row.id)), row, sequence, keep_waveform)]
