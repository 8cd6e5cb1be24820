"""The official log-mel front-end: 16 kHz waveform -> natural-log Slaney mel spectrogram, 100 frames per second.

VSSFlow inherits this recipe from AudioLDM: every clip is mean-centred and peak-normalised (to 0.5), reflect-padded
by ``(n_fft - hop) / 2`` on each side so that an un-centred STFT yields exactly ``num_samples / hop`` frames, and the
STFT magnitude (power 1, not power 2) is projected onto a Slaney-normalised mel filterbank before a floored log.
The VAE was trained on exactly this representation, so every step matters for parity.

The filterbank is computed here, in float64 like librosa does, so librosa is not needed at run time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MEL, MelConfig

# The official code pads short spectrograms with this log-mel value (about the log floor, log(1e-5) = -11.51).
MEL_PAD_VALUE = -11.0
# Added to the peak before dividing, so that digital silence stays silence instead of becoming NaN.
PEAK_EPS = 1e-8

# Slaney's auditory mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic (27 mels per factor 6.4) above.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def hz_to_slaney_mel(hz: torch.Tensor) -> torch.Tensor:
    linear = hz / _SLANEY_HZ_PER_MEL
    # clamp keeps log() finite on the linear branch; torch.where evaluates both sides
    log_part = _SLANEY_BREAK_MEL + torch.log(hz.clamp(min=_SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return torch.where(hz >= _SLANEY_BREAK_HZ, log_part, linear)


def slaney_mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    linear = mel * _SLANEY_HZ_PER_MEL
    log_part = _SLANEY_BREAK_HZ * torch.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_BREAK_MEL))
    return torch.where(mel >= _SLANEY_BREAK_MEL, log_part, linear)


def slaney_mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` on the Slaney scale with Slaney area normalisation.

    Equals ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)`` with its defaults (``htk=False``,
    ``norm="slaney"``): computed in float64, then cast, as librosa does.
    """
    f_max = sample_rate / 2.0 if f_max is None else f_max
    fft_hz = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    mel_edges = torch.linspace(
        float(hz_to_slaney_mel(torch.tensor(f_min, dtype=torch.float64))),
        float(hz_to_slaney_mel(torch.tensor(f_max, dtype=torch.float64))),
        n_mels + 2,
        dtype=torch.float64,
    )
    edge_hz = slaney_mel_to_hz(mel_edges)  # filter i rises from edge i, peaks at i+1, falls to i+2
    width_hz = edge_hz.diff()
    offset = edge_hz[:, None] - fft_hz[None, :]  # [n_mels + 2, n_freqs]
    rising = -offset[:-2] / width_hz[:-1, None]
    falling = offset[2:] / width_hz[1:, None]
    triangles = torch.minimum(rising, falling).clamp(min=0.0)
    # Slaney normalisation: every filter has unit area in Hz, so wide high-frequency filters are not louder
    area_norm = 2.0 / (edge_hz[2:] - edge_hz[:-2])
    return (triangles * area_norm[:, None]).to(dtype)


def peak_normalize(waveform: torch.Tensor, peak: float = MEL.peak_amplitude) -> torch.Tensor:
    """Remove each clip's DC offset and scale its largest absolute sample to ``peak`` (clips along the last axis)."""
    centred = waveform - waveform.mean(dim=-1, keepdim=True)
    return peak * centred / (centred.abs().amax(dim=-1, keepdim=True) + PEAK_EPS)


def fit_frames(log_mel: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Crop or pad (with :data:`MEL_PAD_VALUE`) a log-mel ``[..., T, n_mels]`` to exactly ``num_frames`` frames."""
    missing = num_frames - log_mel.shape[-2]
    if missing > 0:
        return F.pad(log_mel, (0, 0, 0, missing), value=MEL_PAD_VALUE)
    return log_mel[..., :num_frames, :]


class LogMelFrontend(nn.Module):
    """Waveform ``[B, N]`` (or ``[N]``) at 16 kHz -> log-mel ``[B, N // hop_length, n_mels]``.

    For the official 10 s window (160 000 samples) this is ``[B, 1000, 64]``.  The window and the filterbank are
    non-persistent buffers: they follow ``.to(device)`` but never appear in a state dict.
    """

    window: torch.Tensor
    mel_filters: torch.Tensor

    def __init__(self, config: MelConfig = MEL) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)
        filters = slaney_mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
        self.register_buffer("mel_filters", filters, persistent=False)

    @property
    def reflect_padding(self) -> int:
        # with this padding an un-centred STFT gives one frame per hop: (N + n_fft - hop - n_fft) / hop + 1 = N / hop
        return (self.config.n_fft - self.config.hop_length) // 2

    def num_frames(self, num_samples: int) -> int:
        """Frames the official code keeps for a clip of ``num_samples`` (its ``duration * sr / hop``)."""
        return num_samples // self.config.hop_length

    def forward(self, waveform: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """``num_frames`` defaults to ``num_samples // hop_length``; other values crop or pad like the official code."""
        unbatched = waveform.dim() == 1
        if unbatched:
            waveform = waveform[None]
        if waveform.dim() != 2:
            raise ValueError(f"expected a waveform [B, N] or [N], got shape {tuple(waveform.shape)}")
        if num_frames is None:
            num_frames = self.num_frames(waveform.shape[-1])
        # the STFT needs float32 or float64; half-precision audio is upcast
        dtype = waveform.dtype if waveform.dtype == torch.float64 else torch.float32
        cfg = self.config

        audio = peak_normalize(waveform.to(dtype), cfg.peak_amplitude)
        audio = F.pad(audio[:, None], (self.reflect_padding, self.reflect_padding), mode="reflect")[:, 0]
        spectrum = torch.stft(
            audio,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window.to(dtype),
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs()  # [B, n_fft // 2 + 1, T]
        mel = self.mel_filters.to(dtype) @ spectrum  # [B, n_mels, T]
        log_mel = torch.log(mel.clamp(min=cfg.log_floor)).transpose(1, 2)
        log_mel = fit_frames(log_mel, num_frames)
        return log_mel[0] if unbatched else log_mel


def log_mel_spectrogram(
    waveform: torch.Tensor, config: MelConfig = MEL, num_frames: int | None = None
) -> torch.Tensor:
    """Functional form of :class:`LogMelFrontend` (builds the filterbank on each call; use the module in loops)."""
    return LogMelFrontend(config).to(waveform.device)(waveform, num_frames)
