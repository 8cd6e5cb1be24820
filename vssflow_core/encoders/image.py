"""Frame tensors on their way into the image encoders (CLIP, Synchformer): layout, resizing, normalisation.

Frames arrive as ComfyUI images (``[N,H,W,3]`` float in [0,1]) or channels-first tensors, sometimes as ``uint8``; these
helpers bring them to float ``[N,3,H,W]`` in [0,1], resize them the way the official extractors do, and apply the
encoders' mean/std.  Decoding, timing and ``uint8`` resizing of video files live in :mod:`vssflow_core.video`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["frames_to_nchw", "normalize_channels", "resize_bicubic"]


def frames_to_nchw(frames: torch.Tensor, channels_last: bool | None = None) -> torch.Tensor:
    """``[N,H,W,3]`` / ``[N,3,H,W]`` (or one frame without N) in [0,1] or uint8 -> float ``[N,3,H,W]`` in [0,1].

    The layout is guessed from where the 3 colour channels are; a frame that is 3 pixels high or wide on the other
    axis is ambiguous and needs ``channels_last``.
    """
    if frames.ndim == 3:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4:
        raise ValueError(f"expected frames [N,H,W,3] or [N,3,H,W], got shape {tuple(frames.shape)}")
    if channels_last is None:
        last, first = frames.shape[-1] == 3, frames.shape[1] == 3
        if last == first:
            raise ValueError(
                f"cannot tell the channel axis of frames with shape {tuple(frames.shape)}; pass channels_last"
            )
        channels_last = last
    if channels_last:
        frames = frames.permute(0, 3, 1, 2)
    if frames.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels, got frames of shape {tuple(frames.shape)}")
    if frames.dtype == torch.uint8:
        return frames.float() / 255.0
    return frames if frames.is_floating_point() else frames.float()


def resize_bicubic(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of ``[N,C,H,W]`` in [0,1], clamped back to [0,1].

    ``antialias=True`` selects the PIL-style filter (cubic a=-0.5, support widened when shrinking), which is what
    PIL's ``Image.resize(BICUBIC)`` (CLIP extractor) and torchvision's tensor ``Resize`` (Synchformer extractor) do.
    The official pipelines resize uint8 images, which clamps the cubic overshoot; the clamp reproduces that.
    """
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    dtype = frames.dtype
    work = frames if dtype in (torch.float32, torch.float64) else frames.float()
    out = F.interpolate(work, size=size, mode="bicubic", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0).to(dtype)


def normalize_channels(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """torchvision ``Normalize`` on ``[N,C,H,W]``."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s
