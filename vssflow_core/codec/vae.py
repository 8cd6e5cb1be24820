"""The AudioLDM2 mel VAE, in the key layout of diffusers' ``AutoencoderKL`` (no diffusers import).

A log-mel image ``[B, 1, T, 64]`` is encoded to a diagonal-Gaussian posterior over latents ``[B, 8, T/4, 16]``
(time and frequency both downsampled 4x).  VSSFlow's flow runs on a posterior *sample*, packed into 128 channels at
25 frames per second, and uses it **unscaled** (``scaling_factor`` 1.0, not the config's 0.411): the flow maps
N(0, I) onto raw latents, whose standard deviation is about 2.4.

Architecture: conv_in -> down blocks (ResNet blocks, stride-2 conv between levels) -> mid block (ResNet, single-head
self-attention over all positions, ResNet) -> GroupNorm/SiLU/conv_out; the decoder mirrors it with one extra ResNet
per level and nearest-neighbour upsampling.  ``quant_conv``/``post_quant_conv`` are 1x1 convs around the latent.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..progress import check_interrupted
from ..weights.checkpoint import component_files, load_strict, read_state_dict

# diffusers' VAE blocks all use this GroupNorm epsilon
NORM_EPS = 1e-6
# diffusers clamps the log-variance so that exp() can neither overflow nor collapse to zero
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


@dataclass(frozen=True)
class VAEConfig:
    """Shape of the VAE.  Defaults are AudioLDM2's (``cvssp/audioldm2``, subfolder ``vae``, 55.4 M parameters)."""

    in_channels: int = 1
    out_channels: int = 1
    latent_channels: int = 8
    block_out_channels: tuple[int, ...] = (128, 256, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))

    @property
    def downsample_factor(self) -> int:
        """Time and frequency reduction from mel to latent: one 2x step between consecutive levels."""
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def from_diffusers_config(cls, config: Mapping[str, Any]) -> "VAEConfig":
        """Read a diffusers ``AutoencoderKL`` ``config.json``; refuses settings this implementation does not have."""
        supported = {
            "act_fn": "silu",
            "use_quant_conv": True,
            "use_post_quant_conv": True,
            "mid_block_add_attention": True,
        }
        for key, value in supported.items():
            if key in config and config[key] != value:
                raise ValueError(f"unsupported VAE config: {key}={config[key]!r} (only {value!r} is implemented)")
        for key, block in (("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")):
            if any(kind != block for kind in config.get(key, ())):
                raise ValueError(f"unsupported VAE config: {key}={config[key]!r} (only {block} is implemented)")
        # scaling_factor, sample_size, force_upcast, ... do not change the network; VSSFlow ignores the scale anyway
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in fields})

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], norm_num_groups: int = 32) -> "VAEConfig":
        """Read the shape off a state dict.  GroupNorm's group count leaves no trace in tensor shapes, so it is a
        parameter (AudioLDM2 uses 32)."""
        shape = {k: tuple(v.shape) for k, v in state_dict.items()}

        def need(key: str) -> tuple[int, ...]:
            if key not in shape:
                raise KeyError(f"cannot infer the VAE configuration: the checkpoint has no '{key}' tensor")
            return shape[key]

        levels = sorted({int(m.group(1)) for k in shape if (m := re.match(r"encoder\.down_blocks\.(\d+)\.", k))})
        if not levels:
            raise KeyError("cannot infer the VAE configuration: the checkpoint has no encoder down blocks")
        resnets = {int(m.group(1)) for k in shape if (m := re.match(r"encoder\.down_blocks\.0\.resnets\.(\d+)\.", k))}
        return cls(
            in_channels=need("encoder.conv_in.weight")[1],
            out_channels=need("decoder.conv_out.weight")[0],
            latent_channels=need("post_quant_conv.weight")[0],
            block_out_channels=tuple(need(f"encoder.down_blocks.{i}.resnets.0.conv2.weight")[0] for i in levels),
            layers_per_block=len(resnets),
            norm_num_groups=norm_num_groups,
        )


def _group_norm(config: VAEConfig, channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(config.norm_num_groups, channels, eps=NORM_EPS)


class ResnetBlock(nn.Module):
    """(GroupNorm, SiLU, 3x3 conv) twice plus a skip; a 1x1 ``conv_shortcut`` only when the width changes."""

    def __init__(self, config: VAEConfig, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _group_norm(config, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(config, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h


class SelfAttention(nn.Module):
    """One-head self-attention over every (time, frequency) position, with a pre-GroupNorm and a residual."""

    def __init__(self, config: VAEConfig, channels: int) -> None:
        super().__init__()
        self.group_norm = _group_norm(config, channels)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        # a list so that the projection's keys read ``to_out.0.*`` (diffusers keeps a dropout at index 1)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        tokens = self.group_norm(x).flatten(2).transpose(1, 2)  # [B, T*F, C]
        q, k, v = (proj(tokens)[:, None] for proj in (self.to_q, self.to_k, self.to_v))  # one head
        attended = F.scaled_dot_product_attention(q, k, v)[:, 0]
        out = self.to_out[0](attended).transpose(1, 2).reshape(b, c, t, f)
        return x + out


class MidBlock(nn.Module):
    def __init__(self, config: VAEConfig, channels: int) -> None:
        super().__init__()
        # registration order (attentions first) follows diffusers, so state_dict() lists keys in checkpoint order
        self.attentions = nn.ModuleList([SelfAttention(config, channels)])
        self.resnets = nn.ModuleList([ResnetBlock(config, channels, channels) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        return self.resnets[1](self.attentions[0](x))


class Downsample(nn.Module):
    """Stride-2 3x3 conv; the input is padded on the right/bottom only, so even sizes halve exactly."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour 2x, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class EncoderLevel(nn.Module):
    """``layers_per_block`` ResNet blocks, then (except at the last level) a downsampler."""

    def __init__(self, config: VAEConfig, in_channels: int, out_channels: int, downsample: bool) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * config.layers_per_block
        self.resnets = nn.ModuleList(ResnetBlock(config, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.downsamplers = nn.ModuleList([Downsample(out_channels)]) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsamplers is None else self.downsamplers[0](x)


class DecoderLevel(nn.Module):
    """``layers_per_block + 1`` ResNet blocks, then (except at the last level) an upsampler."""

    def __init__(self, config: VAEConfig, in_channels: int, out_channels: int, upsample: bool) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * (config.layers_per_block + 1)
        self.resnets = nn.ModuleList(ResnetBlock(config, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.upsamplers is None else self.upsamplers[0](x)


class Encoder(nn.Module):
    """Mel ``[B, in, T, F]`` -> posterior moments ``[B, 2 * latent, T / d, F / d]`` (mean and log-variance)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths = config.block_out_channels
        self.conv_in = nn.Conv2d(config.in_channels, widths[0], 3, padding=1)
        inputs = (widths[0],) + widths[:-1]
        last = len(widths) - 1
        self.down_blocks = nn.ModuleList(
            EncoderLevel(config, a, b, downsample=i < last) for i, (a, b) in enumerate(zip(inputs, widths))
        )
        self.mid_block = MidBlock(config, widths[-1])
        self.conv_norm_out = _group_norm(config, widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], 2 * config.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for level in self.down_blocks:
            x = level(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    """Latent ``[B, latent, t, f]`` -> mel ``[B, out, t * d, f * d]``."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths = tuple(reversed(config.block_out_channels))
        self.conv_in = nn.Conv2d(config.latent_channels, widths[0], 3, padding=1)
        inputs = (widths[0],) + widths[:-1]
        last = len(widths) - 1
        self.up_blocks = nn.ModuleList(
            DecoderLevel(config, a, b, upsample=i < last) for i, (a, b) in enumerate(zip(inputs, widths))
        )
        self.mid_block = MidBlock(config, widths[0])  # runs first, registered after up_blocks as in diffusers
        self.conv_norm_out = _group_norm(config, widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], config.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z))
        for level in self.up_blocks:
            check_interrupted()  # per level: one window's decoding takes seconds on a CPU
            x = level(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class DiagonalGaussian:
    """The encoder's posterior q(z | mel): independent Gaussians, one per latent element."""

    def __init__(self, moments: torch.Tensor) -> None:
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """``mean + std * eps``.  The noise is drawn on the generator's device, then moved, so a CPU generator
        gives the same latent whatever device the model runs on."""
        device = generator.device if generator is not None else self.mean.device
        eps = torch.randn(self.mean.shape, generator=generator, device=device, dtype=self.mean.dtype)
        return self.mean + self.std * eps.to(self.mean.device)

    def mode(self) -> torch.Tensor:
        return self.mean


class MelVAE(nn.Module):
    """AudioLDM2's KL autoencoder over log-mel spectrograms; state-dict keys match diffusers ``AutoencoderKL``."""

    def __init__(self, config: VAEConfig = VAEConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * config.latent_channels, 2 * config.latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, 1)

    def encode(self, mel: torch.Tensor) -> DiagonalGaussian:
        """Log-mel ``[B, 1, T, F]`` (or ``[B, T, F]`` straight from the front-end) -> posterior over ``[B, C, t, f]``.

        ``T`` and ``F`` must be multiples of :attr:`VAEConfig.downsample_factor` (1000 x 64 for a 10 s clip).
        """
        if mel.dim() == 3:
            mel = mel[:, None]
        d = self.config.downsample_factor
        if mel.shape[-2] % d or mel.shape[-1] % d:
            raise ValueError(f"mel frames and bins must be multiples of {d}, got {tuple(mel.shape[-2:])}")
        return DiagonalGaussian(self.quant_conv(self.encoder(mel)))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, C, t, f]`` (unscaled) -> log-mel ``[B, 1, t * d, f * d]``."""
        return self.decoder(self.post_quant_conv(latent))


def pack_latent(latent: torch.Tensor) -> torch.Tensor:
    """VAE latent ``[B, C, T, F]`` -> flow sequence ``[B, F * C, T]``; channel ``f * C + c`` holds (c, f)."""
    b, c, t, f = latent.shape
    return latent.permute(0, 3, 1, 2).reshape(b, f * c, t)


def unpack_latent(packed: torch.Tensor, latent_channels: int = VAEConfig.latent_channels) -> torch.Tensor:
    """Inverse of :func:`pack_latent`: ``[B, F * C, T]`` -> ``[B, C, T, F]``."""
    b, channels, t = packed.shape
    if channels % latent_channels:
        raise ValueError(f"{channels} packed channels are not a multiple of {latent_channels} latent channels")
    return packed.reshape(b, channels // latent_channels, latent_channels, t).permute(0, 2, 3, 1)


# ---------------------------------------------------------------------------------------------------- loading


def vae_from_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    config: VAEConfig | None = None,
    *,
    norm_num_groups: int = VAEConfig.norm_num_groups,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> MelVAE:
    """Build a :class:`MelVAE` and load ``state_dict`` (diffusers keys, no ``vae.`` prefix) strictly, in eval mode.

    Without ``config`` the shape is read off the tensors (``norm_num_groups`` cannot be, so it is passed).  The model
    is built on the meta device and adopts the given tensors, so the weights are never allocated twice.
    """
    if config is None:
        config = VAEConfig.from_state_dict(state_dict, norm_num_groups=norm_num_groups)
    with torch.device("meta"):
        model = MelVAE(config)
    load_strict(model, state_dict, "AudioLDM2 VAE", dtype=dtype, device=device)
    return model.eval()


_VAE_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def load_vae(
    path: str | Path,
    config: VAEConfig | None = None,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> MelVAE:
    """Load the VAE from a local path: a weights file, a diffusers ``vae/`` folder (``config.json`` plus
    ``diffusion_pytorch_model.safetensors`` or ``.bin``), or a pipeline folder such as a ``cvssp/audioldm2``
    snapshot that contains ``vae/``.  Without a config (argument or ``config.json``) the shape is inferred."""
    weights, config_file = component_files(path, "vae", _VAE_WEIGHT_FILES, "VAE")
    if config is None and config_file is not None:
        config = VAEConfig.from_diffusers_config(json.loads(config_file.read_text()))
    state_dict, _ = read_state_dict(weights)
    return vae_from_state_dict(state_dict, config, dtype=dtype, device=device)
