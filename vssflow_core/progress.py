"""Where the core's long loops let a host stop them.

Every stage checks here at least once per batch, window, network block or solver evaluation, so a cancel lands within
one such unit of work.  The core never imports a host: a host installs its own check (ComfyUI's nodes install
``comfy.model_management.throw_exception_if_processing_interrupted``), which raises to stop the work.  Without one,
:func:`check_interrupted` does nothing.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

InterruptCheck = Callable[[], None]

_check: InterruptCheck | None = None


def set_interrupt_check(check: InterruptCheck | None) -> InterruptCheck | None:
    """Install ``check`` (called with no arguments; it raises to interrupt), or None for none; returns the previous
    one."""
    global _check
    previous, _check = _check, check
    return previous


def check_interrupted() -> None:
    """Raise whatever the installed check raises when the host asked to stop; otherwise return at once."""
    if _check is not None:
        _check()


@contextlib.contextmanager
def interrupt_check(check: InterruptCheck | None) -> Iterator[None]:
    """``check`` installed for the duration of a ``with`` block (the previous one restored after)."""
    previous = set_interrupt_check(check)
    try:
        yield
    finally:
        set_interrupt_check(previous)
