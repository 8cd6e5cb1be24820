"""Optional ``torch.compile`` of the sampling network, falling back to plain PyTorch where it cannot run.

TorchInductor needs a working C++ compiler on the CPU (and Triton on a GPU), which many ComfyUI installations lack,
and compiling takes a while (a minute or more for the full-size DiT), so it is off unless asked for.  When the
compiler fails, :class:`CompiledOrEager` warns once and runs the function uncompiled: the numbers are the same up to
float rounding either way, only the speed differs.  Compiled code is cached by PyTorch per function, so wrapping the
same method again for the next generation does not compile it again.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable


class CompiledOrEager:
    """``fn`` through ``torch.compile(fn, backend=backend)``; ``fn`` itself, after one warning, if that fails."""

    def __init__(self, fn: Callable[..., Any], backend: Any = "inductor"):
        import torch

        self.eager = fn
        self.error: Exception | None = None
        try:
            self.compiled = torch.compile(fn, backend=backend)
        except RuntimeError as exc:  # e.g. a Python version Dynamo does not support yet
            self.compiled = None
            self._give_up(exc)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None and self.error is None:
            from torch._dynamo.exc import TorchDynamoException

            try:
                return self.compiled(*args, **kwargs)
            except TorchDynamoException as exc:  # the backend failed (no C++ compiler, no Triton, ...)
                self._give_up(exc)
        return self.eager(*args, **kwargs)

    def _give_up(self, exc: Exception) -> None:
        self.error = exc
        cause = getattr(exc, "inner_exception", None) or exc  # what the backend itself raised
        reason = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"
        warnings.warn(f"torch.compile cannot compile the VSSFlow network here ({reason}); running it without "
                      "compilation (same results, no speed-up)", RuntimeWarning, stacklevel=3)
