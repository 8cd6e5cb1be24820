"""Band-limited sample-rate conversion in plain PyTorch (torchaudio is not a dependency).

Windowed-sinc interpolation in polyphase form. With ``g = gcd(orig, new)`` the conversion repeats every
``L = orig / g`` input samples, producing ``M = new / g`` outputs; output ``n = q*M + p`` sits at input time
``q*L + p*L/M``. Each phase ``p`` therefore needs one short FIR (``taps`` coefficients), evaluated once. For the
usual rates (small ``M``) all phases run as the output channels of one strided convolution; for awkward ratios
(44 101 Hz -> 16 kHz, ``M = 16000``) that dense kernel would be huge, so each output is instead a dot product of its
phase's taps with a gathered stretch of the input. Both paths compute the same sums.

The defaults (Hann-squared window over 6 zero crossings, cut-off at 99 % of the lower Nyquist rate, zero padding
outside the signal, ``ceil(len * new / orig)`` outputs) are those of ``torchaudio.functional.resample``, which the
official VSSFlow preprocessing used to bring reference speech to 16 kHz.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["resample", "resample_length", "sinc_resample_kernel"]

# Outputs per gather chunk: bounds the temporary [channels, chunk, taps] tensor.
_CHUNK = 1 << 16
# Largest dense polyphase kernel (phases x input span) worth building; beyond it, gather per output instead.
_DENSE_LIMIT = 1 << 21


def resample_length(length: int, orig_freq: int, new_freq: int) -> int:
    """Number of samples ``resample`` returns for ``length`` input samples."""
    return -(-length * new_freq // orig_freq)  # ceil without floats


def _check_rate(name: str, value: int | float) -> int:
    if int(value) != value or value <= 0:
        raise ValueError(f"{name} must be a positive integer number of Hz, got {value!r}")
    return int(value)


@lru_cache(maxsize=16)
def _kernel_cpu(
    orig: int, new: int, lowpass_filter_width: int, rolloff: float, window: str, beta: float
) -> tuple[Tensor, Tensor, int]:
    """Float64 per-phase taps ``[new, taps]``, each phase's first input offset ``[new]`` and the left padding."""
    # cut-off in cycles per input sample, below the lower of the two Nyquist frequencies
    cutoff = 0.5 * rolloff * min(1.0, new / orig)
    half_width = lowpass_filter_width / (2 * cutoff)  # lowpass_filter_width zero crossings each side, in samples
    reach = math.ceil(half_width)
    phases = torch.arange(new, dtype=torch.float64)
    centre = phases * orig / new  # output position inside its block, in input samples
    first = torch.floor(centre).long() - reach  # first input sample any phase can touch
    offsets = torch.arange(2 * reach + 2, dtype=torch.float64)
    tau = (first.double()[:, None] + offsets[None, :]) - centre[:, None]  # input minus output time
    x = (tau / half_width).clamp(-1.0, 1.0)
    if window == "hann":
        # the squared-cosine taper of torchaudio's "sinc_interp_hann"
        taper = torch.cos(x * math.pi / 2) ** 2
    elif window == "kaiser":
        taper = torch.special.i0(beta * torch.sqrt(1 - x * x)) / torch.special.i0(torch.tensor(beta, dtype=x.dtype))
        taper = torch.where(tau.abs() > half_width, torch.zeros_like(taper), taper)
    else:
        raise ValueError(f"window must be 'hann' or 'kaiser', got {window!r}")
    # ideal low-pass impulse response 2*fc*sinc(2*fc*t) (unit DC gain) tapered by the window
    taps = 2 * cutoff * torch.sinc(2 * cutoff * tau) * taper
    return taps, first, reach


def sinc_resample_kernel(
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    window: str = "hann",
    beta: float = 14.769656459379492,
) -> tuple[Tensor, Tensor]:
    """Per-phase interpolation taps ``[M, taps]`` (float64) and each phase's first input offset ``[M]`` for the
    reduced ratio ``orig/g -> new/g``. Exposed for inspection and tests."""
    orig, new = _check_rate("orig_freq", orig_freq), _check_rate("new_freq", new_freq)
    g = math.gcd(orig, new)
    taps, first, _ = _kernel_cpu(orig // g, new // g, lowpass_filter_width, float(rolloff), window, float(beta))
    return taps.clone(), first.clone()


def resample(
    waveform: Tensor,
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    window: str = "hann",
    beta: float = 14.769656459379492,
) -> Tensor:
    """Resample the last axis of ``waveform`` (any leading shape) from ``orig_freq`` to ``new_freq`` Hz.

    Args:
        lowpass_filter_width: zero crossings of the sinc on each side; more is sharper and slower.
        rolloff: cut-off as a fraction of the lower Nyquist frequency; below 1 leaves room for the transition band.
        window: ``"hann"`` (torchaudio's default taper) or ``"kaiser"`` with shape ``beta``.

    Returns a tensor with the same leading shape, dtype and device and ``ceil(T * new / orig)`` samples.
    """
    orig, new = _check_rate("orig_freq", orig_freq), _check_rate("new_freq", new_freq)
    if not waveform.is_floating_point():
        raise TypeError(f"resample needs a floating-point waveform, got {waveform.dtype}")
    if orig == new:
        return waveform.clone()
    if waveform.shape[-1] == 0:
        return waveform.new_zeros(waveform.shape)
    g = math.gcd(orig, new)
    block_in, block_out = orig // g, new // g
    taps, first, reach = _kernel_cpu(block_in, block_out, lowpass_filter_width, float(rolloff), window, float(beta))

    lead, length = waveform.shape[:-1], waveform.shape[-1]
    n_out = resample_length(length, block_in, block_out)
    # accumulate in float32 at least: half-precision sums over dozens of taps lose too much
    compute = torch.promote_types(waveform.dtype, torch.float32)
    x = waveform.reshape(-1, length).to(compute)
    span = int(first.max() - first.min()) + taps.shape[1]  # input samples one block of outputs reads
    if block_out * span <= _DENSE_LIMIT:
        y = _polyphase_conv(x, taps, first, reach, block_in, n_out)
    else:
        y = _polyphase_gather(x, taps, first, reach, block_in, n_out)
    return y.to(waveform.dtype).reshape(*lead, n_out)


def _polyphase_conv(x: Tensor, taps: Tensor, first: Tensor, reach: int, block_in: int, n_out: int) -> Tensor:
    """All phases as the output channels of one strided convolution (fast when the reduced ratio is small).

    Row ``p`` of the dense kernel holds phase ``p``'s taps at its offset inside the block's input span."""
    block_out, n_taps = taps.shape
    start = first - first.min()
    span = int(start.max()) + n_taps
    dense = torch.zeros(block_out, span, dtype=torch.float64)
    cols = start[:, None] + torch.arange(n_taps)[None, :]
    dense.scatter_(1, cols, taps)
    blocks = -(-n_out // block_out)
    # the first phase's window starts `reach` samples before the signal (first.min() == -reach)
    pad_right = max(0, (blocks - 1) * block_in + span - reach - x.shape[-1])
    xp = torch.nn.functional.pad(x, (reach, pad_right)).unsqueeze(1)
    y = torch.nn.functional.conv1d(xp, dense.to(device=x.device, dtype=x.dtype).unsqueeze(1), stride=block_in)
    return y[..., :blocks].transpose(1, 2).reshape(x.shape[0], -1)[:, :n_out]


def _polyphase_gather(x: Tensor, taps: Tensor, first: Tensor, reach: int, block_in: int, n_out: int) -> Tensor:
    """Per-output dot products with gathered input (for ratios whose dense kernel would be huge, e.g. 44 101 Hz)."""
    block_out, n_taps = taps.shape
    taps = taps.to(device=x.device, dtype=x.dtype)
    first = first.to(x.device)
    # zero padding: `reach` before, enough after for the last output's full support
    pad_right = max(0, (n_out - 1) // block_out * block_in + int(first.max()) + n_taps - x.shape[-1])
    xp = torch.nn.functional.pad(x, (reach, pad_right))
    out = torch.empty(x.shape[0], n_out, dtype=x.dtype, device=x.device)
    tap_index = torch.arange(n_taps, device=x.device)
    for chunk_start in range(0, n_out, _CHUNK):
        n = torch.arange(chunk_start, min(chunk_start + _CHUNK, n_out), device=x.device)
        phase = n % block_out
        begin = (n // block_out) * block_in + first[phase] + reach  # index into the padded signal
        gathered = xp[:, begin[:, None] + tap_index[None, :]]  # [rows, chunk, taps]
        out[:, chunk_start : chunk_start + n.numel()] = (gathered * taps[phase]).sum(-1)
    return out
