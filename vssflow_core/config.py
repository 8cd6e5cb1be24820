"""The one place for VSSFlow's rates, lengths and dimensions.

Everything else in the library reads these objects instead of repeating literals:
``SequenceConfig`` says how time is sampled (audio, latent, CLIP and Synchformer rates), ``WindowConfig`` how a video
of any length is cut into generation windows and joined again, ``MelConfig`` says how audio becomes a log-mel
spectrogram, and ``VSSFlowConfig`` says how wide the network is.  A ``VSSFlowConfig`` can be read off
a checkpoint's tensor shapes (:func:`VSSFlowConfig.from_state_dict`), so the official model and its ablations load
without anyone typing numbers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class SequenceConfig:
    """Time axes of one generation window (the official model generates 10 s)."""

    duration_sec: float = 10.0
    sample_rate: int = 16_000  # waveform, Hz
    mel_hop_length: int = 160  # 100 mel frames per second
    latent_downsample: int = 4  # VAE time downsampling: 100 mel frames/s -> 25 latent frames/s
    clip_fps: int = 10  # CLIP frames per second (cross-attention)
    synch_fps: int = 25  # Synchformer input frames per second
    synch_segment_frames: int = 16  # frames per Synchformer segment
    synch_segment_stride: int = 8
    synch_tubelet_frames: int = 2  # Synchformer's temporal patch: one token per two frames of a segment

    @property
    def synch_tokens_per_segment(self) -> int:
        """Temporal tokens one Synchformer segment yields (16 frames / tubelet 2 = 8)."""
        return self.synch_segment_frames // self.synch_tubelet_frames

    @property
    def phoneme_fps(self) -> int | float:
        """Phoneme ids are stretched to the latent rate (25 per second)."""
        rate = self.latent_rate
        return int(rate) if rate.is_integer() else rate

    @property
    def num_samples(self) -> int:
        return round(self.duration_sec * self.sample_rate)

    @property
    def mel_frames(self) -> int:
        return self.num_samples // self.mel_hop_length

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / self.mel_hop_length / self.latent_downsample

    @property
    def latent_length(self) -> int:
        return self.mel_frames // self.latent_downsample

    @property
    def clip_frames(self) -> int:
        return round(self.duration_sec * self.clip_fps)

    @property
    def synch_frames(self) -> int:
        return round(self.duration_sec * self.synch_fps)

    @property
    def synch_segments(self) -> int:
        return (self.synch_frames - self.synch_segment_frames) // self.synch_segment_stride + 1

    @property
    def synch_tokens(self) -> int:
        return self.synch_segments * self.synch_tokens_per_segment


@dataclass(frozen=True)
class WindowConfig:
    """How a video of any length becomes generation windows, and how their audio is joined again.

    A clip no longer than one window (plus ``tolerance_sec``) is generated in one window, padded as the official code
    pads; a longer one in windows of ``SequenceConfig.duration_sec`` that overlap by at least ``overlap_sec``.
    ``bench/seams.py`` measures the two seam strategies; the default is the one it found better.
    """

    overlap_sec: float = 2.0  # each window repeats at least this much of the one before it
    # Window starts lie on this grid so every rate lands on a whole frame: CLIP (0.1 s), latent and Synchformer
    # (0.04 s) and the waveform (3200 samples).
    grid_sec: float = 0.2
    # "continue": a window's overlap is tied to the previous window's result while it is sampled (inpainting along
    # the flow path), then the audio is crossfaded linearly over ``continue_fade_sec`` in the middle of the overlap;
    # "crossfade": windows are sampled independently and crossfaded with equal power over ``overlap_sec`` there.
    seam: str = "continue"
    continue_fade_sec: float = 0.5
    # A "10 s" clip is often a frame longer (300 frames at 29.97 fps last 10.01 s): within this margin it is generated
    # in one window and the last few milliseconds are silence.
    tolerance_sec: float = 0.05
    max_duration_sec: float = 15 * 60.0  # longer videos are refused unless the caller raises the limit


@dataclass(frozen=True)
class MelConfig:
    """The official log-mel front-end (``util/mel_filter.py``); its sample rate and hop are the time axes'."""

    n_fft: int = 1024
    win_length: int = 1024
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0
    peak_amplitude: float = 0.5  # every clip is peak-normalised to this before the STFT
    log_floor: float = 1e-5
    sequence: SequenceConfig = field(default_factory=SequenceConfig)

    @property
    def sample_rate(self) -> int:
        return self.sequence.sample_rate

    @property
    def hop_length(self) -> int:
        return self.sequence.mel_hop_length


@dataclass(frozen=True)
class VSSFlowConfig:
    """Dimensions of the VSSFlow network (DiT plus condition projections).

    Defaults are the official final model (``vaflow_noise_lip_synch_text``, 10 layers, 453 M DiT parameters).
    """

    latent_channels: int = 128  # packed VAE latent: 8 VAE channels x 16 frequency groups
    # condition inputs (what the frozen extractors produce)
    clip_dim: int = 768  # CLIP ViT-B/16 CLS token
    speaker_dim: int = 256  # RawNet3 embedding
    lip_dim: int = 1024  # AV-HuBERT Large
    synch_dim: int = 768  # Synchformer
    # condition widths inside the model
    context_dim: int = 768  # cross-attention tokens (speaker + CLIP), = cross_attention_dim
    lip_channels: int = 1024  # lip channels concatenated to the latent
    phone_channels: int = 32  # phoneme-embedding channels concatenated to the latent
    synch_channels: int = 768  # Synchformer channels concatenated to the latent
    phone_vocab: int = 200
    # the DiT
    num_layers: int = 10
    num_heads: int = 24
    head_dim: int = 64
    num_kv_heads: int = 12  # grouped-query cross-attention
    time_proj_dim: int = 256  # Gaussian-Fourier time features (half cos, half sin)
    ff_mult: int = 4  # SwiGLU hidden width = ff_mult * width
    norm_eps: float = 1e-5
    rope_theta: float = 10_000.0

    @property
    def width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def cond_channels(self) -> int:
        """Channels of the condition block concatenated after the audio latent (lip, phoneme, Synchformer)."""
        return self.lip_channels + self.phone_channels + self.synch_channels

    @property
    def in_channels(self) -> int:
        """DiT input = output channels: the audio latent plus the condition channels riding along."""
        return self.latent_channels + self.cond_channels

    @property
    def rotary_dim(self) -> int:
        """Rotary embedding covers the first half of every head (partial RoPE)."""
        return self.head_dim // 2

    @property
    def ff_inner_dim(self) -> int:
        return self.ff_mult * self.width

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "VSSFlowConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown VSSFlow config fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Any], head_dim: int = 64) -> "VSSFlowConfig":
        """Read the configuration off a model state dict (model-relative keys, no ``vaflow.`` routing prefix).

        Everything except the attention head size is fixed by tensor shapes; the head size is a property of the
        model family (64 in Stable Audio Open, which VSSFlow inherits), so it is a parameter with that default.
        """
        shape = {k: tuple(v.shape) for k, v in state_dict.items()}

        def need(key: str) -> tuple[int, ...]:
            if key not in shape:
                raise KeyError(f"cannot infer the VSSFlow configuration: the checkpoint has no '{key}' tensor")
            return shape[key]

        blocks = {int(m.group(1)) for k in shape if (m := re.match(r"dit\.transformer_blocks\.(\d+)\.", k))}
        if not blocks:
            raise KeyError("cannot infer the VSSFlow configuration: the checkpoint has no DiT transformer blocks")
        width, in_channels = need("dit.proj_in.weight")
        context_dim, clip_dim = need("cond_proj.2.weight")[0], need("cond_proj.0.weight")[1]
        lip_channels, lip_dim = need("lip_proj.2.weight")[0], need("lip_proj.0.weight")[1]
        synch_channels, synch_dim = need("synch_proj.2.weight")[0], need("synch_proj.0.weight")[1]
        phone_vocab, phone_channels = need("phone_embedding.weight")
        ff_inner = need("dit.transformer_blocks.0.ff.net.2.weight")[1]
        kv_width = need("dit.transformer_blocks.0.attn2.to_k.weight")[0]
        if width % head_dim or kv_width % head_dim:
            raise ValueError(
                f"attention head size {head_dim} does not divide the model width {width} and the cross-attention "
                f"key width {kv_width}; pass the head size the checkpoint was trained with"
            )
        return cls(
            latent_channels=in_channels - lip_channels - phone_channels - synch_channels,
            clip_dim=clip_dim,
            speaker_dim=need("ref_proj.0.weight")[1],
            lip_dim=lip_dim,
            synch_dim=synch_dim,
            context_dim=context_dim,
            lip_channels=lip_channels,
            phone_channels=phone_channels,
            synch_channels=synch_channels,
            phone_vocab=phone_vocab,
            num_layers=max(blocks) + 1,
            num_heads=width // head_dim,
            head_dim=head_dim,
            num_kv_heads=kv_width // head_dim,
            time_proj_dim=need("dit.timestep_proj.0.weight")[1],
            ff_mult=ff_inner // width,
        )


SEQUENCE = SequenceConfig()
WINDOWS = WindowConfig()
MEL = MelConfig()
