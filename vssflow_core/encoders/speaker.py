"""Speaker reference: a reference utterance -> the 256-d RawNet3 embedding VSSFlow cross-attends to (spec 7.4).

Follows the official ``feature/extract_rawnet.py``: mono 16 kHz audio; clips shorter than RawNet3's 3 s training crop
are wrap-padded (repeated); ten 3 s windows are taken at evenly spaced starts ``np.linspace(0, len - 48000, 10)``
(truncated to integers) and the ten embeddings are averaged. The result is not L2-normalised. Without a reference
the model gets a zero vector (its ``ref_proj`` maps zero to zero).

The official pipeline brought other rates to 16 kHz with ``torchaudio``'s sinc resampler and multi-channel files to
mono by averaging channels; :func:`prepare_reference` does the same with :mod:`vssflow_core.codec.resample`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..codec.resample import resample
from ..config import SEQUENCE, VSSFlowConfig
from ..progress import check_interrupted
from .rawnet3 import RawNet3, load_rawnet3

__all__ = [
    "WINDOW_SEC",
    "NUM_WINDOWS",
    "prepare_reference",
    "wrap_pad",
    "window_starts",
    "reference_windows",
    "speaker_embedding",
    "no_speaker_embedding",
    "SpeakerReference",
]

WINDOW_SEC = 3.0  # RawNet3 was trained on 3 s crops
NUM_WINDOWS = 10  # windows averaged per reference (official n_segments)


def _window_samples(sample_rate: int = SEQUENCE.sample_rate) -> int:
    return round(WINDOW_SEC * sample_rate)


def _as_float_tensor(waveform: Tensor | np.ndarray) -> Tensor:
    x = torch.from_numpy(np.ascontiguousarray(waveform)) if isinstance(waveform, np.ndarray) else waveform
    if not isinstance(x, Tensor):
        raise TypeError(f"reference audio must be a torch.Tensor or numpy array, got {type(waveform).__name__}")
    if x.dtype in (torch.int16, torch.int32, torch.int8):
        # integer PCM: full scale -> [-1, 1), like soundfile's float reading
        return x.double() / float(2 ** (torch.iinfo(x.dtype).bits - 1))
    if not x.is_floating_point():
        raise TypeError(f"reference audio must be floating point or signed integer PCM, got {x.dtype}")
    return x


def prepare_reference(
    waveform: Tensor | np.ndarray, sample_rate: int, target_rate: int = SEQUENCE.sample_rate
) -> Tensor:
    """Any-rate reference audio -> mono float32 ``[samples]`` at ``target_rate`` (16 kHz).

    ``waveform`` is ``[samples]`` or channels-first ``[channels, samples]`` (leading size-1 dims, e.g. a ComfyUI
    ``[1, C, T]`` batch of one, are dropped). Channels are averaged before resampling (the official order).
    """
    x = _as_float_tensor(waveform).detach().cpu()
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        if x.shape[0] > x.shape[1]:
            raise ValueError(
                f"reference audio of shape {tuple(x.shape)} has more channels than samples; "
                "pass channels-first [channels, samples] (transpose a soundfile [samples, channels] array)"
            )
        x = x.mean(dim=0)
    elif x.ndim != 1:
        raise ValueError(f"reference audio must be [samples] or [channels, samples], got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError("reference audio is empty")
    if not torch.isfinite(x).all():
        raise ValueError("the speaker reference audio contains NaN or infinite samples, so it has no voice to "
                         "imitate; the recording or the node that made it is broken: use another recording")
    if sample_rate != target_rate:
        x = resample(x.double(), sample_rate, target_rate)
    return x.float()


def wrap_pad(waveform: Tensor, window: int) -> Tensor:
    """Repeat a clip shorter than ``window`` samples cyclically (``np.pad(mode="wrap")``).

    Like the official code the padded clip has ``window + 1`` samples, so the last of the ten windows starts at
    sample 1 rather than 0; longer clips are returned unchanged.
    """
    length = waveform.shape[-1]
    if length == 0:
        raise ValueError("cannot wrap-pad an empty clip")
    if length >= window:
        return waveform
    index = torch.arange(window + 1, device=waveform.device) % length
    return waveform[..., index]


def window_starts(length: int, window: int, count: int = NUM_WINDOWS) -> list[int]:
    """Start samples of ``count`` windows spread evenly over a clip of ``length >= window`` samples: the official
    ``int(s) for s in np.linspace(0, length - window, count)`` (truncation, not rounding)."""
    if length < window:
        raise ValueError(f"clip of {length} samples is shorter than the {window}-sample window; wrap-pad it first")
    return [int(s) for s in np.linspace(0, length - window, num=count)]


def reference_windows(
    waveform_16k: Tensor, window: int | None = None, count: int = NUM_WINDOWS
) -> Tensor:
    """Mono 16 kHz clip ``[samples]`` -> ``[count, window]`` RawNet3 inputs (wrap-padded if short)."""
    window = window or _window_samples()
    x = wrap_pad(waveform_16k, window)
    return torch.stack([x[s : s + window] for s in window_starts(x.shape[-1], window, count)])


def no_speaker_embedding(dim: int = VSSFlowConfig.speaker_dim, device: torch.device | str | None = None) -> Tensor:
    """The embedding used when no reference is given: zeros (``ref_proj(0) = 0``, as in training without one)."""
    return torch.zeros(dim, device=device)


@torch.inference_mode()
def speaker_embedding(
    model: RawNet3,
    waveform: Tensor | np.ndarray | None,
    sample_rate: int = SEQUENCE.sample_rate,
    batch_size: int = NUM_WINDOWS,
    target_rate: int = SEQUENCE.sample_rate,
) -> Tensor:
    """Reference audio (any rate, mono or channels-first) -> ``[n_out]`` float32 embedding on the model's device:
    the mean of RawNet3 over the ten 3 s windows of the audio at ``target_rate`` (the model's). ``None`` -> zeros.
    ``batch_size`` bounds how many windows run at once, trading speed for peak activation memory."""
    param = next(model.parameters())
    if waveform is None:
        return no_speaker_embedding(model.config.n_out, device=param.device)
    if model.training:
        raise RuntimeError("speaker_embedding needs RawNet3 in eval mode (BatchNorm running statistics); call .eval()")
    clip = prepare_reference(waveform, sample_rate, target_rate)
    windows = reference_windows(clip, _window_samples(target_rate))
    outputs = []
    for chunk in windows.split(max(1, batch_size)):
        check_interrupted()  # once per batch of windows
        outputs.append(model(chunk.to(device=param.device, dtype=param.dtype)).float())
    return torch.cat(outputs).mean(dim=0)


class SpeakerReference:
    """A loaded RawNet3 with the reference recipe attached: ``ref(waveform, sample_rate)`` -> ``[256]``."""

    def __init__(self, model: RawNet3, batch_size: int = NUM_WINDOWS) -> None:
        self.model = model.eval()
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return self.model.config.n_out

    def __call__(self, waveform: Tensor | np.ndarray | None, sample_rate: int = SEQUENCE.sample_rate) -> Tensor:
        return speaker_embedding(self.model, waveform, sample_rate, self.batch_size)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: torch.device | str = "cpu", batch_size: int = NUM_WINDOWS
    ) -> "SpeakerReference":
        """From the released ``model.pt`` (or a safetensors conversion of it)."""
        return cls(load_rawnet3(path, device=device), batch_size=batch_size)
