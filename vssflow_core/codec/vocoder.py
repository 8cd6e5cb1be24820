"""The AudioLDM2 HiFi-GAN vocoder, in the key layout of transformers' ``SpeechT5HifiGan`` (no transformers import).

Log-mel ``[B, T, 64]`` (the front-end's natural-log Slaney mel) -> 16 kHz waveform ``[B, T * 160 + 32]``.
Each stage upsamples the time axis with a transposed conv and then averages a bank of multi-receptive-field residual
blocks (one per kernel size, each a chain of dilated convs).  The transposed convs overshoot the hop by a few
samples (32 for the AudioLDM2 config), so callers trim to ``duration * sample_rate``.

Weight normalisation is folded in: checkpoints store plain ``weight`` tensors in this layout.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SEQUENCE
from ..progress import check_interrupted
from ..weights.checkpoint import component_files, load_strict, read_state_dict

# conv_pre and conv_post use this kernel width whatever the config says (they are fixed in SpeechT5HifiGan)
EDGE_KERNEL = 7
# The last activation before conv_post uses leaky_relu's default slope, not the config's (as in SpeechT5HifiGan)
FINAL_LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class VocoderConfig:
    """Shape of the vocoder.  Defaults are AudioLDM2's (``cvssp/audioldm2``, subfolder ``vocoder``, 55.3 M params)."""

    model_in_dim: int = 64
    sampling_rate: int = SEQUENCE.sample_rate
    upsample_initial_channel: int = 1024
    upsample_rates: tuple[int, ...] = (5, 4, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    leaky_relu_slope: float = 0.1
    normalize_before: bool = False  # True: standardise the mel with the stored ``mean``/``scale`` first

    def __post_init__(self) -> None:
        # config.json gives lists; freeze them so the config stays hashable and comparable
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        dilations = tuple(tuple(int(d) for d in ds) for ds in self.resblock_dilation_sizes)
        object.__setattr__(self, "resblock_dilation_sizes", dilations)
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")

    @property
    def hop_length(self) -> int:
        """Waveform samples per mel frame (160 = 10 ms at 16 kHz)."""
        return math.prod(self.upsample_rates)

    def stage_channels(self, stage: int) -> int:
        """Width after upsampling stage ``stage``: halved at every stage."""
        return self.upsample_initial_channel // 2 ** (stage + 1)

    @classmethod
    def from_transformers_config(cls, config: Mapping[str, Any]) -> "VocoderConfig":
        """Read a transformers ``SpeechT5HifiGanConfig`` ``config.json`` (metadata keys are ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in fields})

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        *,
        upsample_rates: tuple[int, ...] = (5, 4, 2, 2, 2),
        resblock_dilation_sizes: tuple[tuple[int, ...], ...] | None = None,
        leaky_relu_slope: float = 0.1,
        normalize_before: bool = False,
    ) -> "VocoderConfig":
        """Read the shape off a state dict.

        Strides, dilations, the activation slope and ``normalize_before`` leave no trace in tensor shapes, so they are
        parameters with AudioLDM2's values; ``resblock_dilation_sizes`` defaults to ``(1, 3, 5)`` per kernel when
        each residual block has three convs.
        """
        shape = {k: tuple(v.shape) for k, v in state_dict.items()}

        def need(key: str) -> tuple[int, ...]:
            if key not in shape:
                raise KeyError(f"cannot infer the vocoder configuration: the checkpoint has no '{key}' tensor")
            return shape[key]

        def indices(pattern: str) -> list[int]:
            return sorted({int(m.group(1)) for k in shape if (m := re.match(pattern, k))})

        initial_channel, in_dim, _ = need("conv_pre.weight")
        stages = indices(r"upsampler\.(\d+)\.")
        blocks = indices(r"resblocks\.(\d+)\.")
        if not stages or len(blocks) % len(stages):
            raise ValueError(f"{len(blocks)} residual blocks cannot be split evenly over {len(stages)} upsamplers")
        if len(upsample_rates) != len(stages):
            raise ValueError(f"the checkpoint has {len(stages)} upsamplers but {len(upsample_rates)} rates were given")
        kernels_per_stage = len(blocks) // len(stages)
        if resblock_dilation_sizes is None:
            convs = indices(r"resblocks\.0\.convs1\.(\d+)\.")
            if len(convs) != 3:
                raise ValueError(f"residual blocks have {len(convs)} dilated convs; pass resblock_dilation_sizes")
            resblock_dilation_sizes = ((1, 3, 5),) * kernels_per_stage
        return cls(
            model_in_dim=in_dim,
            upsample_initial_channel=initial_channel,
            upsample_rates=tuple(upsample_rates),
            upsample_kernel_sizes=tuple(need(f"upsampler.{i}.weight")[2] for i in stages),
            resblock_kernel_sizes=tuple(need(f"resblocks.{j}.convs1.0.weight")[2] for j in range(kernels_per_stage)),
            resblock_dilation_sizes=resblock_dilation_sizes,
            leaky_relu_slope=leaky_relu_slope,
            normalize_before=normalize_before,
        )


def _interruptible(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    check_interrupted()
    return block(x)


def _same_padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size - 1) * dilation // 2


class ResidualBlock(nn.Module):
    """Chain of (LeakyReLU, dilated conv, LeakyReLU, conv) units, each with its own skip connection."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], slope: float) -> None:
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size, 1)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2):
            h = dilated(F.leaky_relu(x, self.slope))
            x = x + plain(F.leaky_relu(h, self.slope))
        return x


class HifiGanVocoder(nn.Module):
    """HiFi-GAN generator; state-dict keys match transformers ``SpeechT5HifiGan``."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, config: VocoderConfig = VocoderConfig()) -> None:
        super().__init__()
        self.config = config
        self.conv_pre = nn.Conv1d(
            config.model_in_dim, config.upsample_initial_channel, EDGE_KERNEL, padding=EDGE_KERNEL // 2
        )
        self.upsampler = nn.ModuleList(
            nn.ConvTranspose1d(
                config.upsample_initial_channel // 2**i,
                config.stage_channels(i),
                kernel_size=k,
                stride=u,
                padding=(k - u) // 2,
            )
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes))
        )
        # flat list, stage-major: resblocks[stage * num_kernels + kernel]
        self.resblocks = nn.ModuleList(
            ResidualBlock(config.stage_channels(i), k, d, config.leaky_relu_slope)
            for i in range(len(config.upsample_rates))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        )
        last_channels = config.stage_channels(len(config.upsample_rates) - 1)
        self.conv_post = nn.Conv1d(last_channels, 1, EDGE_KERNEL, padding=EDGE_KERNEL // 2)
        # per-bin statistics for normalize_before; stored in every checkpoint even when unused
        self.register_buffer("mean", torch.zeros(config.model_in_dim))
        self.register_buffer("scale", torch.ones(config.model_in_dim))

    def num_samples(self, num_frames: int) -> int:
        """Length of the waveform produced from ``num_frames`` mel frames (transposed-conv arithmetic)."""
        n = num_frames
        for u, k in zip(self.config.upsample_rates, self.config.upsample_kernel_sizes):
            n = (n - 1) * u - 2 * ((k - u) // 2) + k
        return n

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``[B, T, n_mels]`` (or ``[T, n_mels]``) -> waveform in [-1, 1], ``[B, num_samples(T)]``."""
        unbatched = mel.dim() == 2
        if unbatched:
            mel = mel[None]
        if self.config.normalize_before:
            mel = (mel - self.mean) / self.scale
        x = self.conv_pre(mel.transpose(1, 2))
        num_kernels = len(self.config.resblock_kernel_sizes)
        for stage, upsample in enumerate(self.upsampler):
            check_interrupted()  # per stage and per block: one window's vocoding takes seconds on a CPU
            x = upsample(F.leaky_relu(x, self.config.leaky_relu_slope))
            bank = self.resblocks[stage * num_kernels : (stage + 1) * num_kernels]
            x = sum(_interruptible(block, x) for block in bank) / num_kernels  # multi-receptive-field fusion
        waveform = torch.tanh(self.conv_post(F.leaky_relu(x, FINAL_LEAKY_SLOPE)))[:, 0]
        return waveform[0] if unbatched else waveform


# ---------------------------------------------------------------------------------------------------- loading


def vocoder_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    config: VocoderConfig | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> HifiGanVocoder:
    """Build a :class:`HifiGanVocoder` and load ``state_dict`` (transformers keys, no ``vocoder.`` prefix) strictly,
    in eval mode.

    Without ``config`` the shape is read off the tensors, with AudioLDM2's strides and dilations.  The model is built
    on the meta device and adopts the given tensors, so the weights are never allocated twice.
    """
    if config is None:
        config = VocoderConfig.from_state_dict(state_dict)
    with torch.device("meta"):
        model = HifiGanVocoder(config)
    load_strict(model, state_dict, "AudioLDM2 HiFi-GAN vocoder", dtype=dtype, device=device)
    return model.eval()


_VOCODER_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def load_vocoder(
    path: str | Path,
    config: VocoderConfig | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> HifiGanVocoder:
    """Load the vocoder from a local path: a weights file, a transformers ``vocoder/`` folder (``config.json`` plus
    ``model.safetensors`` or ``pytorch_model.bin``), or a pipeline folder such as a ``cvssp/audioldm2`` snapshot
    that contains ``vocoder/``.  Without a config (argument or ``config.json``) the shape is inferred."""
    weights, config_file = component_files(path, "vocoder", _VOCODER_WEIGHT_FILES, "vocoder")
    if config is None and config_file is not None:
        config = VocoderConfig.from_transformers_config(json.loads(config_file.read_text()))
    state_dict, _ = read_state_dict(weights)
    return vocoder_from_state_dict(state_dict, config, dtype=dtype, device=device)
