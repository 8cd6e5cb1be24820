"""Where a module's tensors live, for modules that may have no parameters (the demo's parameter-free stand-ins)."""

from __future__ import annotations

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
