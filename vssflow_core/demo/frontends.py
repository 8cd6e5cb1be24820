"""Parameter-free stand-ins for the frozen pretrained parts, so the demo model trains and runs with no downloads.

The demo keeps the VSSFlow network, the condition routing, the phoneme pipeline and the sampler of the full model and
swaps only what sits around them (each stand-in has the interface of the part it replaces, so the pipeline and the
trainer use it unchanged):

=================  ==================================================  ============================================
replaces           stand-in                                            feature
=================  ==================================================  ============================================
CLIP (10 fps)      :class:`PixelGridEncoder`                           the frame averaged to a small RGB grid
Synchformer (25)   :class:`MotionGridEncoder`                          grey grid of every frame and its change since
                                                                       the previous frame: one token per latent frame
AudioLDM2 VAE      :class:`MelPatchCodec`                              the normalised log-mel cut into 4x4 patches
HiFi-GAN           :class:`GriffinLimVocoder`                          mel -> linear magnitude -> Griffin-Lim phase
=================  ==================================================  ============================================

The motion grid is the lever for timing: an impact, a flash or a mouth opening changes the grid at exactly the frame
where it happens, and that token is concatenated to the latent frame that must sound.  Griffin-Lim sounds phasey but
keeps loudness and onsets, which is what the demo is measured on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..codec.mel import slaney_mel_filterbank
from ..config import SEQUENCE, MelConfig, SequenceConfig
from ..encoders.image import frames_to_nchw
from ..progress import check_interrupted

FRONTEND_FILE = "frontend.json"  # beside a demo checkpoint's vssflow.safetensors: which stand-ins it was trained on

# ITU-R BT.601 luma weights: the grey value a viewer perceives as brightness.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class DemoFrontendConfig:
    """Everything the demo's front-ends do; saved as ``frontend.json`` beside the demo checkpoint."""

    clip_grid: int = 8  # CLIP stand-in: clip_grid x clip_grid RGB cells -> 3 * clip_grid**2 features
    synch_grid: int = 16  # Synchformer stand-in: synch_grid**2 grey cells and their frame-to-frame change
    decode_scale: int = 4  # frames are decoded at decode_scale x grid pixels, then averaged down
    n_mels: int = 32  # the codec's log-mel bins; 4x4 patches of 32 bins -> 16 x 8 = 128 latent channels
    patch: int = 4  # time and frequency size of one codec patch (the latent rate is 100 / patch frames/s)
    mel_mean: float = -6.0  # log-mel normalisation: latent = (log_mel - mel_mean) / mel_std (quiet synthetic
    # backgrounds sit near -6.4, events reach -1.5)
    mel_std: float = 1.5
    motion_gain: float = 4.0  # frame-to-frame changes are small; scale them to the pictures' range
    griffin_lim_iters: int = 48
    deblock: bool = True  # smooth the decoded log-mel in time over one patch: see MelPatchCodec.decode

    @property
    def clip_dim(self) -> int:
        return 3 * self.clip_grid**2

    @property
    def synch_dim(self) -> int:
        return 2 * self.synch_grid**2

    @property
    def latent_channels(self) -> int:
        return self.patch**2 * (self.n_mels // self.patch)

    def mel_config(self) -> MelConfig:
        return MelConfig(n_mels=self.n_mels)

    def to_json(self) -> str:
        return json.dumps({"kind": "vssflow-demo-frontends", **dataclasses.asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DemoFrontendConfig":
        """The config from saved values, each checked against :data:`FRONTEND_LIMITS` (a ValueError names the key
        and its allowed range): a file must not make the front-ends divide by zero or run for ever."""
        if not isinstance(values, Mapping):
            raise ValueError(f"the demo front-end config must be a JSON object, not {type(values).__name__}")
        values = {k: v for k, v in values.items() if k != "kind"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown demo front-end fields {unknown}; known fields are {sorted(known)}")
        cfg = cls(**{key: _check_frontend_value(key, value) for key, value in values.items()})
        if cfg.n_mels % cfg.patch:
            raise ValueError(f"'n_mels' ({cfg.n_mels}) must be a multiple of 'patch' ({cfg.patch})")
        return cfg

    @classmethod
    def read(cls, path: str | Path) -> "DemoFrontendConfig":
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"{path}: {exc}. Fix the value, or copy {FRONTEND_FILE} again from the checkpoint it "
                             "came with") from None


# Allowed values of every field a frontend.json may set: (low, high) inclusive, or a type for free-valued fields.
# Griffin-Lim's iteration count bounds the decoding time (each iteration is one STFT and one inverse STFT).
FRONTEND_LIMITS: dict[str, tuple[float, float] | type] = {
    "clip_grid": (1, 64),
    "synch_grid": (1, 64),
    "decode_scale": (1, 16),
    "n_mels": (4, 256),
    "patch": (1, 16),
    "mel_mean": (-100.0, 100.0),
    "mel_std": (1e-3, 100.0),
    "motion_gain": (0.0, 1000.0),
    "griffin_lim_iters": (1, 1000),
    "deblock": bool,
}


def _check_frontend_value(key: str, value: Any) -> Any:
    """``value`` if it is allowed for ``key`` (whole-number fields as an int), else a ValueError naming the range."""
    limit = FRONTEND_LIMITS[key]
    if limit is bool:
        if not isinstance(value, bool):
            raise ValueError(f"'{key}' is {value!r}; it must be true or false")
        return value
    low, high = limit
    whole = isinstance(low, int)
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and low <= value <= high and (not whole or float(value).is_integer()))
    if not ok:
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"'{key}' is {value!r}; it must be {kind} from {low} to {high}")
    return int(value) if whole else float(value)


def _grey(pixels: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` -> ``[N, 1, H, W]`` luma."""
    weights = torch.tensor(LUMA, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels * weights).sum(dim=1, keepdim=True)


class _Placed(nn.Module):
    """A parameter-free module that still knows its device: the pipeline moves components with ``.to()``."""

    anchor: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("anchor", torch.zeros(()), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.anchor.device


# ---------------------------------------------------------------------------------------------------- pictures


@dataclass(frozen=True)
class PixelGridConfig:
    width: int  # feature size (the ``clip_dim`` the network reads)
    input_resolution: int  # frames are decoded at this square size


class PixelGridEncoder(_Placed):
    """CLIP stand-in: each 10 fps frame averaged to a ``grid x grid`` RGB image, centred, flattened."""

    def __init__(self, cfg: DemoFrontendConfig = DemoFrontendConfig()) -> None:
        super().__init__()
        self.frontend = cfg
        self.config = PixelGridConfig(width=cfg.clip_dim, input_resolution=cfg.clip_grid * cfg.decode_scale)

    @torch.inference_mode()
    def encode_frames(self, frames: torch.Tensor, batch_size: int = 32,
                      channels_last: bool | None = None) -> torch.Tensor:
        """Frames ``[N, H, W, 3]`` / ``[N, 3, H, W]`` in [0, 1] (or uint8) -> float32 ``[N, 3 * grid**2]``."""
        if frames.shape[0] == 0:
            return torch.zeros(0, self.config.width, device=self.device)
        out = []
        for start in range(0, frames.shape[0], max(1, batch_size)):
            check_interrupted()
            pixels = frames_to_nchw(frames[start:start + batch_size].to(self.device), channels_last).float()
            cells = F.adaptive_avg_pool2d(pixels, self.frontend.clip_grid)
            out.append(((cells - 0.5) * 2.0).flatten(1))
        return torch.cat(out)


@dataclass(frozen=True)
class MotionGridConfig:
    embed_dim: int  # feature size (the ``synch_dim`` the network reads)
    img_size: int  # frames are decoded at this square size (short side, centre crop)
    num_frames: int = SEQUENCE.synch_segment_frames  # kept so the pipeline's segment check holds


class MotionGridEncoder(_Placed):
    """Synchformer stand-in: per 25 fps frame, the grey ``grid x grid`` picture and its change since the previous
    frame.  One token per frame, ``[T, 2 * grid**2]``, which the network's nearest-exact resampling maps one-to-one
    onto the 25 fps latent frames (Synchformer's 240 tokens land on them only approximately)."""

    def __init__(self, cfg: DemoFrontendConfig = DemoFrontendConfig()) -> None:
        super().__init__()
        self.frontend = cfg
        self.config = MotionGridConfig(embed_dim=cfg.synch_dim, img_size=cfg.synch_grid * cfg.decode_scale)

    @torch.inference_mode()
    def encode_video(self, frames: torch.Tensor, batch_size: int = 8, num_frames: int | None = SEQUENCE.synch_frames,
                     channels_last: bool | None = None, sequence: SequenceConfig = SEQUENCE) -> torch.Tensor:
        """Frames at 25 fps: one clip ``[T, H, W, 3]`` -> ``[num_frames, D]``, a batch ``[B, T, ...]`` -> ``[B, ...]``.

        The clip is fitted to ``num_frames`` (black frames appended, as the official extractor pads) unless None.
        """
        if frames.ndim == 5:
            return torch.stack([self.encode_video(clip, batch_size, num_frames, channels_last, sequence)
                                for clip in frames])
        cells = []
        for start in range(0, frames.shape[0], 64):
            check_interrupted()
            pixels = frames_to_nchw(frames[start:start + 64].to(self.device), channels_last).float()
            cells.append(F.adaptive_avg_pool2d(_grey(pixels), self.frontend.synch_grid).flatten(1))
        grey = torch.cat(cells) if cells else torch.zeros(0, self.frontend.synch_grid**2, device=self.device)
        if num_frames is not None:
            grey = grey[:num_frames]
            grey = torch.cat([grey, grey.new_zeros(num_frames - grey.shape[0], grey.shape[1])])
        change = torch.diff(grey, dim=0, prepend=grey[:1])  # the first frame has no previous one: no change
        return torch.cat([(grey - 0.5) * 2.0, change * self.frontend.motion_gain], dim=1)


# ---------------------------------------------------------------------------------------------------- audio


@dataclass(frozen=True)
class MelPatchCodecConfig:
    latent_channels: int  # channels per patch position (the VAE's 8)
    downsample_factor: int  # time and frequency patch size (the VAE's 4)


class PatchPosterior:
    """A point posterior (std 0): the codec is deterministic, so training targets are the patches themselves."""

    def __init__(self, mean: torch.Tensor) -> None:
        self.mean = mean
        self.std = torch.zeros_like(mean)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean

    def mode(self) -> torch.Tensor:
        return self.mean


class MelPatchCodec(_Placed):
    """VAE stand-in: ``[B, T, F]`` log-mel -> normalised -> 4x4 space-to-depth ``[B, 16, T/4, F/4]``.

    With 32 mel bins that is 16 x 8 = 128 packed channels at 25 frames/s, the geometry of the AudioLDM2 latent, so
    :func:`~vssflow_core.codec.vae.pack_latent` and the network's 128 latent channels apply unchanged.
    """

    def __init__(self, cfg: DemoFrontendConfig = DemoFrontendConfig()) -> None:
        super().__init__()
        if cfg.n_mels % cfg.patch:
            raise ValueError(f"{cfg.n_mels} mel bins are not a multiple of the {cfg.patch}-bin patch")
        self.frontend = cfg
        self.config = MelPatchCodecConfig(latent_channels=cfg.patch**2, downsample_factor=cfg.patch)
        self.mel_config = cfg.mel_config()

    def encode(self, mel: torch.Tensor) -> PatchPosterior:
        if mel.dim() == 3:
            mel = mel[:, None]
        p = self.frontend.patch
        if mel.shape[-2] % p or mel.shape[-1] % p:
            raise ValueError(f"mel frames and bins must be multiples of {p}, got {tuple(mel.shape[-2:])}")
        normalised = (mel.float() - self.frontend.mel_mean) / self.frontend.mel_std
        return PatchPosterior(F.pixel_unshuffle(normalised, p))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """``[B, 16, t, f]`` -> log-mel ``[B, 1, 4t, 4f]``, deblocked unless the config says not to."""
        mel = F.pixel_shuffle(latent.float(), self.frontend.patch) * self.frontend.mel_std + self.frontend.mel_mean
        return self.deblock(mel) if self.frontend.deblock else mel

    def deblock(self, mel: torch.Tensor) -> torch.Tensor:
        """Smooth ``[B, 1, T, F]`` log-mel along time with a box of one patch convolved with a box of two frames.

        A generated latent predicts the 4 frames of a patch as separate channels, and their small disagreements
        repeat at every patch boundary: a ripple at the patch rate (25 Hz) that Griffin-Lim turns into dips deep
        enough to sound like a flutter and to read as new onsets.  This kernel has zeros at exactly that rate and
        its harmonic, so the ripple vanishes while an attack is spread over only +-2 frames (20 ms).  (A learned
        VAE decoder smooths across its patches by itself; this is the parameter-free equivalent, like a video
        codec's deblocking filter.)
        """
        p = self.frontend.patch
        kernel = F.conv1d(F.pad(torch.ones(1, 1, p), (1, 1)), torch.ones(1, 1, 2))  # box(p) * box(2): [1, 2, .., 2, 1]
        kernel = (kernel / kernel.sum()).to(mel).view(1, 1, p + 1, 1)
        left = p // 2
        padded = F.pad(mel, (0, 0, left, p - left), mode="replicate")
        return F.conv2d(padded, kernel)


@dataclass(frozen=True)
class GriffinLimConfig:
    model_in_dim: int  # mel bins
    sampling_rate: int
    hop_length: int


class GriffinLimVocoder(_Placed):
    """HiFi-GAN stand-in: log-mel ``[B, T, n_mels]`` -> waveform ``[B, T * hop]``.

    The mel magnitudes go back to linear frequency through the filterbank's pseudo-inverse (clamped at zero), and
    Griffin-Lim finds a phase, starting from a fixed seed so decoding is deterministic.
    """

    window: torch.Tensor
    inverse_filters: torch.Tensor

    def __init__(self, cfg: DemoFrontendConfig = DemoFrontendConfig(), sequence: SequenceConfig = SEQUENCE) -> None:
        super().__init__()
        mel = cfg.mel_config()
        self.frontend, self.mel = cfg, mel
        self.config = GriffinLimConfig(model_in_dim=mel.n_mels, sampling_rate=mel.sample_rate,
                                       hop_length=mel.hop_length)
        filters = slaney_mel_filterbank(mel.sample_rate, mel.n_fft, mel.n_mels, mel.f_min, mel.f_max,
                                        dtype=torch.float64)
        self.register_buffer("inverse_filters", torch.linalg.pinv(filters).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(mel.win_length), persistent=False)

    def num_samples(self, num_frames: int) -> int:
        return num_frames * self.config.hop_length

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        unbatched = mel.dim() == 2
        if unbatched:
            mel = mel[None]
        cfg = self.mel
        magnitude = (self.inverse_filters @ mel.float().exp().transpose(1, 2)).clamp(min=0.0)  # [B, bins, T]
        length = mel.shape[1] * cfg.hop_length
        stft = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=self.window,
                    center=True)
        phase_seed = torch.Generator().manual_seed(0)
        angles = torch.rand(magnitude.shape, generator=phase_seed).to(magnitude.device) * (2 * math.pi)
        spectrum = torch.polar(magnitude, angles)
        # Fast Griffin-Lim (Perraudin et al. 2013): momentum 0.99 on the consistent-spectrum projection.
        previous = torch.zeros_like(spectrum)
        for _ in range(self.frontend.griffin_lim_iters):
            check_interrupted()  # per iteration: a long clip's Griffin-Lim runs for minutes on a CPU
            waveform = torch.istft(spectrum, length=length, **stft)
            rebuilt = torch.stft(waveform, return_complex=True, **stft)[..., : magnitude.shape[-1]]
            accelerated = rebuilt + 0.99 * (rebuilt - previous)
            previous = rebuilt
            spectrum = magnitude * torch.exp(1j * torch.angle(accelerated))
        waveform = torch.istft(spectrum, length=length, **stft).clamp(-1.0, 1.0)
        return waveform[0] if unbatched else waveform
