"""Where a module's tensors live (for modules that may have no parameters: the demo's parameter-free stand-ins), and
which dtypes the hardware runs fast."""

from __future__ import annotations

import functools

import torch


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter, else of its first buffer, else the CPU."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype of a module's first floating-point parameter, else float32 (what parameter-free modules compute in)."""
    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_native_bfloat16(device: torch.device | str) -> bool:
    """Whether bfloat16 matrix products run in hardware on ``device``: CUDA GPUs that support bf16, x86 CPUs with
    AVX512-BF16 or AMX.  Elsewhere bf16 is emulated and slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device | str) -> torch.dtype:
    """``"auto"`` / None -> bfloat16 where :func:`has_native_bfloat16`, else float32; a name or dtype as given."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if has_native_bfloat16(device) else torch.float32
    if isinstance(dtype, str):
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"unknown dtype '{dtype}'; choose auto, float32 or bfloat16")
        return getattr(torch, dtype)
    return dtype


def default_device() -> torch.device:
    """The device to compute on when none is chosen: CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
