"""RawNet3 speaker encoder (Jung et al., "Pushing the limits of raw waveform speaker recognition", 2022).

VSSFlow conditions on a 256-d RawNet3 embedding of a reference utterance (spec section 7.4). This module is a
from-scratch PyTorch implementation whose module tree reproduces the parameter and buffer names of the public
``jungjee/RawNet3`` checkpoint (``models/weights/model.pt``, a pickled dict whose ``"model"`` entry is the state dict),
so that file loads with strict key matching.

Pipeline, one 3 s window at 16 kHz -> embedding:

* pre-emphasis (``x[t] - 0.97 x[t-1]``) and a single-channel instance norm;
* a learnable sinc band-pass filterbank (asteroid's ``ParamSincFB``: half the filters are cosine (even) band-passes,
  half their sine (odd) counterparts) applied with stride 10, then ``log|.|`` and per-filter mean removal;
* three Res2Net "Bottle2neck" blocks with alpha feature-map scaling (AFMS), the third fed with the sum of the first
  two (max-pooled to the same rate);
* a 1x1 conv to 1536 channels, channel-wise attentive statistics pooling whose attention sees global context
  (utterance mean and std), BatchNorm, and a linear layer to the embedding.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..weights.checkpoint import check_state_dict, load_strict, state_dict_from, weights_label

__all__ = [
    "RawNet3Config",
    "RawNet3",
    "SincFilterbank",
    "Bottle2neck",
    "AFMS",
    "PreEmphasis",
    "InstanceNorm1d",
    "load_rawnet3",
    "load_rawnet3_state_dict",
]


@dataclass(frozen=True)
class RawNet3Config:
    """Hyper-parameters of RawNet3. Defaults are the released model (``RawNet3(Bottle2neck, model_scale=8, ...)``)."""

    channels: int = 1024  # "C": width of the three Res2Net blocks
    model_scale: int = 8  # Res2Net scale: number of channel groups in each block
    context: bool = True  # attention also sees the utterance mean and std
    summed: bool = True  # layer3 input = maxpool(layer1) + layer2
    encoder_type: str = "ECA"  # "ECA": one attention map per channel; "ASP": one map shared by all channels
    n_out: int = 256  # embedding size ("nOut")
    out_bn: bool = False  # the released model skips bn6 (it is still in the checkpoint)
    sinc_kernel: int = 251
    sinc_stride: int = 10
    log_sinc: bool = True
    norm_sinc: str = "mean"  # "mean", "mean_std" or "none"
    sample_rate: int = 16_000  # the filterbank's frequency axis; the model only sees 16 kHz audio
    min_low_hz: float = 50.0
    min_band_hz: float = 50.0
    pre_emphasis: float = 0.97
    pooled_channels: int = 1536  # layer4 output, fixed in the reference code independent of C
    attention_channels: int = 128  # hidden width of the attention MLP

    def __post_init__(self) -> None:
        if self.encoder_type not in ("ECA", "ASP"):
            raise ValueError(f"encoder_type must be 'ECA' or 'ASP', got {self.encoder_type!r}")
        if self.norm_sinc not in ("mean", "mean_std", "none"):
            raise ValueError(f"norm_sinc must be 'mean', 'mean_std' or 'none', got {self.norm_sinc!r}")
        if self.sinc_kernel % 2 == 0:
            raise ValueError(f"sinc_kernel must be odd (symmetric band-pass filters), got {self.sinc_kernel}")
        if self.channels % 8 or self.model_scale < 2:
            raise ValueError(f"channels must be a multiple of 8 and model_scale >= 2, got {self}")

    @property
    def sinc_filters(self) -> int:
        """Filterbank outputs = input width of layer1 (C // 4 in the reference code)."""
        return self.channels // 4

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Any], **overrides: Any) -> "RawNet3Config":
        """Read the widths off a checkpoint; flags that leave no trace in tensor shapes (``summed``, ``log_sinc``,
        ``norm_sinc``, ``out_bn``, ``sinc_stride``) keep the released model's values unless overridden."""
        shape = {k: tuple(v.shape) for k, v in state_dict.items()}

        def need(key: str) -> tuple[int, ...]:
            if key not in shape:
                raise KeyError(f"cannot infer the RawNet3 configuration: the checkpoint has no '{key}' tensor")
            return shape[key]

        channels = need("layer1.conv3.weight")[0]
        branch_convs = {int(m.group(1)) for k in shape if (m := re.match(r"layer1\.convs\.(\d+)\.", k))}
        if not branch_convs:
            raise KeyError("cannot infer the RawNet3 configuration: the checkpoint has no 'layer1.convs.*' tensors")
        pooled, attn_in = need("layer4.weight")[0], need("attention.0.weight")[1]
        attn_out = need("attention.3.weight")[0]
        values: dict[str, Any] = dict(
            channels=channels,
            model_scale=max(branch_convs) + 2,  # scale - 1 branch convolutions
            context=attn_in == 3 * pooled,
            encoder_type="ECA" if attn_out == pooled else "ASP",
            n_out=need("fc6.weight")[0],
            sinc_kernel=2 * need("conv1.filterbank.n_")[1] + 1,
            pooled_channels=pooled,
            attention_channels=need("attention.0.weight")[0],
        )
        values.update(overrides)
        config = cls(**values)
        filters = 2 * need("conv1.filterbank.low_hz_")[0]
        if filters != config.sinc_filters or need("layer1.conv1.weight")[1] != config.sinc_filters:
            raise ValueError(
                f"inconsistent RawNet3 checkpoint: {filters} sinc filters and layer1 input width "
                f"{need('layer1.conv1.weight')[1]}, but C={channels} implies C//4={config.sinc_filters}"
            )
        return config

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RawNet3Config":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown RawNet3 config fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)


# ---------------------------------------------------------------------------------------------------------------------
# front-end


class PreEmphasis(nn.Module):
    """First-order high-pass ``y[t] = x[t] - coef * x[t-1]``; the first sample uses x[1] (reflect padding) so the
    length is kept. The kernel is a buffer named ``flipped_filter`` because the checkpoint stores it."""

    def __init__(self, coef: float = 0.97) -> None:
        super().__init__()
        # conv1d is a correlation, so the FIR [1, -coef] is stored reversed
        self.register_buffer("flipped_filter", torch.tensor([[[-coef, 1.0]]]))

    def forward(self, x: Tensor) -> Tensor:  # [B, T] -> [B, 1, T]
        x = F.pad(x.unsqueeze(1), (1, 0), mode="reflect")
        return F.conv1d(x, self.flipped_filter.to(x.dtype))


class InstanceNorm1d(nn.InstanceNorm1d):
    """``nn.InstanceNorm1d`` whose affine parameters follow the input dtype, so the float32 front-end still runs
    when the rest of the model is cast to half precision."""

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.instance_norm(x, weight=weight, bias=bias, eps=self.eps)


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


class SincFilterbank(nn.Module):
    """Parameterised sinc band-pass filterbank with analytic (cosine + sine) pairs.

    Each of the ``n_filters // 2`` bands has a learnable lower edge ``low_hz_`` and bandwidth ``band_hz_``. The
    cosine filter is the windowed ideal band-pass impulse response; the sine filter is its Hilbert-like odd partner,
    so |cos|, |sin| responses together approximate the band's envelope. Only half the (symmetric) time axis is
    stored (``n_``, ``window_``); the other half is mirrored. Filters are rebuilt on every call because they are
    cheap and depend on the (possibly trained) band edges.
    """

    def __init__(
        self,
        n_filters: int,
        kernel_size: int,
        stride: int,
        sample_rate: float = 16_000.0,
        min_low_hz: float = 50.0,
        min_band_hz: float = 50.0,
    ) -> None:
        super().__init__()
        if n_filters % 2 or kernel_size % 2 == 0:
            raise ValueError(f"need an even number of filters and an odd kernel, got {n_filters}, {kernel_size}")
        self.n_filters, self.kernel_size, self.stride = n_filters, kernel_size, stride
        self.sample_rate, self.min_low_hz, self.min_band_hz = float(sample_rate), min_low_hz, min_band_hz
        half = kernel_size // 2
        bands = n_filters // 2
        # mel-spaced initial bands between 30 Hz and Nyquist minus the minimum edge and width
        high = self.sample_rate / 2 - (min_low_hz + min_band_hz)
        mel = torch.linspace(_hz_to_mel(30.0), _hz_to_mel(high), bands + 1)
        hz = 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
        self.low_hz_ = nn.Parameter(hz[:-1].reshape(-1, 1).clone())
        self.band_hz_ = nn.Parameter(hz.diff().reshape(-1, 1).clone())
        # left half of a symmetric Hamming window and of the time axis (in radians per Hz)
        self.register_buffer("window_", torch.hamming_window(kernel_size, periodic=False)[:half].float())
        self.register_buffer("n_", (2 * math.pi * torch.arange(-half, 0.0) / self.sample_rate).reshape(1, -1))

    def filters(self) -> Tensor:
        """[n_filters, 1, kernel_size]: cosine filters first, then sine filters (the checkpoint's channel order)."""
        # float32 even in a half-precision model: phases reach ~800 rad, far beyond bf16's resolution
        n, window = self.n_.float(), self.window_.float()
        low = self.min_low_hz + self.low_hz_.float().abs()
        high = torch.clamp(low + self.min_band_hz + self.band_hz_.float().abs(), self.min_low_hz, self.sample_rate / 2)
        band = high - low  # [bands, 1]
        phase_low, phase_high = low * n, high * n  # [bands, half]
        half_t = n / 2
        cos_left = (torch.sin(phase_high) - torch.sin(phase_low)) / half_t * window
        sin_left = (torch.cos(phase_low) - torch.cos(phase_high)) / half_t * window
        cos_filters = torch.cat([cos_left, 2 * band, cos_left.flip(1)], dim=1)
        sin_filters = torch.cat([sin_left, torch.zeros_like(band), -sin_left.flip(1)], dim=1)
        # unit gain at the band centre
        bank = torch.cat([cos_filters, sin_filters], dim=0) / (2 * band.repeat(2, 1))
        return bank.unsqueeze(1)

    def forward(self, x: Tensor) -> Tensor:  # [B, 1, T] -> [B, n_filters, frames]
        return F.conv1d(x, self.filters().to(x.dtype), stride=self.stride)


class SincEncoder(nn.Module):
    """Holds the filterbank under the name ``filterbank`` (asteroid's ``Encoder`` wrapper), which sets the
    checkpoint keys ``conv1.filterbank.*``."""

    def __init__(self, filterbank: SincFilterbank) -> None:
        super().__init__()
        self.filterbank = filterbank

    def forward(self, x: Tensor) -> Tensor:
        return self.filterbank(x)


# ---------------------------------------------------------------------------------------------------------------------
# backbone


class AFMS(nn.Module):
    """Alpha feature-map scaling (RawNet2): add a learned per-channel offset, then gate every channel with a
    sigmoid of a linear map of the time-averaged features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels, 1))
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.fc(x.mean(dim=-1))).unsqueeze(-1)
        return (x + self.alpha) * gate


class Bottle2neck(nn.Module):
    """Res2Net block for 1-D features: 1x1 conv, ``scale - 1`` hierarchical dilated 3-tap convs over channel
    groups (each group also receives the previous group's output), the last group passed through untouched,
    1x1 conv, residual, optional max-pool, AFMS. RawNet3 applies ReLU *before* each BatchNorm."""

    def __init__(
        self, inplanes: int, planes: int, kernel_size: int, dilation: int, scale: int, pool: int | None = None
    ) -> None:
        super().__init__()
        width = planes // scale
        self.width, self.nums = width, scale - 1
        self.conv1 = nn.Conv1d(inplanes, width * scale, kernel_size=1)
        self.bn1 = nn.BatchNorm1d(width * scale)
        padding = (kernel_size // 2) * dilation
        self.convs = nn.ModuleList(
            nn.Conv1d(width, width, kernel_size=kernel_size, dilation=dilation, padding=padding)
            for _ in range(self.nums)
        )
        self.bns = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(self.nums))
        self.conv3 = nn.Conv1d(width * scale, planes, kernel_size=1)
        self.bn3 = nn.BatchNorm1d(planes)
        self.mp = nn.MaxPool1d(pool) if pool else nn.Identity()
        self.afms = AFMS(planes)
        # a 1x1 projection (no bias) only where the width changes; key "residual.0.weight" (an nn.Sequential)
        self.residual = (
            nn.Sequential(nn.Conv1d(inplanes, planes, kernel_size=1, bias=False))
            if inplanes != planes
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        residual = self.residual(x)
        out = self.bn1(F.relu(self.conv1(x)))
        groups = torch.split(out, self.width, dim=1)
        branch_outputs = []
        sp = groups[0]
        for i in range(self.nums):
            if i > 0:
                sp = sp + groups[i]
            sp = self.bns[i](F.relu(self.convs[i](sp)))
            branch_outputs.append(sp)
        out = torch.cat(branch_outputs + [groups[self.nums]], dim=1)
        out = self.bn3(F.relu(self.conv3(out))) + residual
        return self.afms(self.mp(out))


class RawNet3(nn.Module):
    """RawNet3: ``[B, samples]`` 16 kHz waveform -> ``[B, n_out]`` speaker embedding (not normalised)."""

    def __init__(self, config: RawNet3Config | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RawNet3Config()
        c = cfg.channels
        self.preprocess = nn.Sequential(PreEmphasis(cfg.pre_emphasis), InstanceNorm1d(1, eps=1e-4, affine=True))
        self.conv1 = SincEncoder(
            SincFilterbank(
                cfg.sinc_filters, cfg.sinc_kernel, cfg.sinc_stride, cfg.sample_rate, cfg.min_low_hz, cfg.min_band_hz
            )
        )
        # bn1 and bn6 exist in the released checkpoint but the released forward pass never uses them
        # (bn6 only with out_bn=True); they are kept so the state dict matches key for key.
        self.bn1 = nn.BatchNorm1d(cfg.sinc_filters)
        self.layer1 = Bottle2neck(cfg.sinc_filters, c, kernel_size=3, dilation=2, scale=cfg.model_scale, pool=5)
        self.layer2 = Bottle2neck(c, c, kernel_size=3, dilation=3, scale=cfg.model_scale, pool=3)
        self.layer3 = Bottle2neck(c, c, kernel_size=3, dilation=4, scale=cfg.model_scale)
        self.layer4 = nn.Conv1d(3 * c, cfg.pooled_channels, kernel_size=1)
        attn_in = 3 * cfg.pooled_channels if cfg.context else cfg.pooled_channels
        attn_out = cfg.pooled_channels if cfg.encoder_type == "ECA" else 1
        self.attention = nn.Sequential(
            nn.Conv1d(attn_in, cfg.attention_channels, kernel_size=1),
            nn.ReLU(),
            nn.BatchNorm1d(cfg.attention_channels),
            nn.Conv1d(cfg.attention_channels, attn_out, kernel_size=1),
            nn.Softmax(dim=2),
        )
        self.bn5 = nn.BatchNorm1d(2 * cfg.pooled_channels)
        self.fc6 = nn.Linear(2 * cfg.pooled_channels, cfg.n_out)
        self.bn6 = nn.BatchNorm1d(cfg.n_out)
        self.mp3 = nn.MaxPool1d(3)

    def frontend(self, waveform: Tensor) -> Tensor:
        """[B, T] -> [B, sinc_filters, frames] log filterbank energies. Always float32: the log of small band
        magnitudes and the instance norm are not safe in half precision (the reference disables autocast here)."""
        cfg = self.config
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            x = self.preprocess(waveform.float())
            x = self.conv1(x).abs()
            if cfg.log_sinc:
                x = torch.log(x + 1e-6)
            if cfg.norm_sinc == "mean":
                x = x - x.mean(dim=-1, keepdim=True)
            elif cfg.norm_sinc == "mean_std":
                x = (x - x.mean(dim=-1, keepdim=True)) / x.std(dim=-1, keepdim=True).clamp(min=1e-3)
        return x

    def forward(self, waveform: Tensor) -> Tensor:
        if waveform.ndim != 2:
            raise ValueError(f"RawNet3 expects a [batch, samples] waveform, got shape {tuple(waveform.shape)}")
        cfg = self.config
        x = self.frontend(waveform).to(self.layer1.conv1.weight.dtype)
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        x3 = self.layer3(self.mp3(x1) + x2 if cfg.summed else x2)
        x = F.relu(self.layer4(torch.cat([self.mp3(x1), x2, x3], dim=1)))

        frames = x.shape[-1]
        if cfg.context:
            # global context: every frame also sees the utterance mean and (unbiased) std
            mean = x.mean(dim=2, keepdim=True)
            std = torch.sqrt(x.var(dim=2, keepdim=True).clamp(min=1e-4, max=1e4))
            attn_in = torch.cat([x, mean.expand(-1, -1, frames), std.expand(-1, -1, frames)], dim=1)
        else:
            attn_in = x
        w = self.attention(attn_in)  # softmax over time
        mu = torch.sum(x * w, dim=2)
        sigma = torch.sqrt((torch.sum(x * x * w, dim=2) - mu * mu).clamp(min=1e-4, max=1e4))
        x = self.fc6(self.bn5(torch.cat([mu, sigma], dim=1)))
        return self.bn6(x) if cfg.out_bn else x


# ---------------------------------------------------------------------------------------------------------------------
# loading

# Wrappers some training scripts put around the bare model's keys (voxceleb_trainer's SpeakerNet, DataParallel).
_WRAPPER_PREFIXES = ("__S__.", "module.")


def _unwrap(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    for prefix in _WRAPPER_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _is_batchnorm_counter(key: str) -> bool:
    # BatchNorm's num_batches_tracked counters do not affect inference; a checkpoint may leave them out
    return key.endswith("num_batches_tracked")


def _what(config: RawNet3Config) -> str:
    return f"RawNet3 C={config.channels}"


def load_rawnet3_state_dict(model: RawNet3, state_dict: Mapping[str, Tensor]) -> None:
    """Strict load into a built model, with an error that names the first offending keys.

    BatchNorm's ``num_batches_tracked`` counters may be absent (they do not affect inference); everything else
    must match in name and shape.
    """
    state_dict = _unwrap(state_dict)
    check_state_dict(model.state_dict(), state_dict, _what(model.config), ignore_missing=_is_batchnorm_counter)
    model.load_state_dict(state_dict, strict=False)  # strictness checked above; only counters may be missing


def load_rawnet3(
    source: str | Path | Mapping[str, Tensor],
    config: RawNet3Config | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> RawNet3:
    """Build RawNet3 from ``model.pt`` (``{"model": state_dict}``), a ``.safetensors`` file, or a state dict (bare or
    under ``"model"``), in eval mode. The configuration is read off the tensor shapes unless given."""
    state_dict = _unwrap(state_dict_from(source))
    config = config or RawNet3Config.from_state_dict(state_dict)
    with torch.device("meta"):
        model = RawNet3(config)
    # counters the checkpoint lacks start at zero, as in a freshly built model
    counters = {k: torch.zeros((), dtype=torch.long) for k in model.state_dict()
                if _is_batchnorm_counter(k) and k not in state_dict}
    load_strict(model, {**state_dict, **counters}, weights_label(_what(config), source), dtype=dtype, device=device)
    return model.eval()
