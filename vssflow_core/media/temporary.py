"""Temporary files that disappear however the process ends: on an exception, Ctrl-C, SIGTERM, SIGHUP or exit.

An exception or Ctrl-C (KeyboardInterrupt) runs the ``finally`` that deletes a temporary file.  A termination signal
does not: Python's default for SIGTERM and SIGHUP is to die on the spot, and in ComfyUI the file is written by a
worker thread that no signal interrupts.  So every live temporary file is listed here, and a handler for those
signals deletes them, then lets the signal do what it did before (die with the same status, or run the handler that
was installed before ours).  Files still listed at interpreter exit (a daemon thread cut off mid-write) go too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

__all__ = ["install_signal_cleanup", "remove_all", "temporary_path"]

# The termination signals a user or a service manager sends (SIGINT is Ctrl-C; SIGKILL cannot be caught).
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT") if hasattr(signal, name))

_live: dict[Path, int] = {}  # path -> the process that made it (a forked child never deletes its parent's files)
_lock = threading.Lock()
_previous: dict[int, Any] = {}


def remove_all() -> None:
    """Delete every temporary file still listed (safe to call from a signal handler or at exit)."""
    me = os.getpid()
    with _lock:
        paths = [path for path, owner in _live.items() if owner == me]
        _live.clear()
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _on_signal(signum: int, frame: Any) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    if previous is signal.SIG_IGN:
        return  # the process ignores this signal: it goes on, and so do its writes
    if callable(previous):
        try:
            previous(signum, frame)  # e.g. Python's Ctrl-C handler, which raises KeyboardInterrupt
        except BaseException:
            remove_all()  # the process is being stopped: other threads' files will never be finished
            raise
        return
    remove_all()
    signal.signal(signum, signal.SIG_DFL)  # die of the same signal, with the status a caller expects
    os.kill(os.getpid(), signum)


def install_signal_cleanup() -> None:
    """Put the cleanup handler in front of the current handlers of :data:`SIGNALS` (main thread only; a no-op
    elsewhere, and when already installed)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        current = signal.getsignal(signum)
        if current is _on_signal:
            continue
        try:
            signal.signal(signum, _on_signal)
        except (ValueError, OSError):  # an embedding host that owns its signals
            continue
        _previous[signum] = current


@contextlib.contextmanager
def temporary_path(folder: str | os.PathLike, prefix: str, suffix: str) -> Iterator[Path]:
    """A new empty file in ``folder`` (``prefix`` + random + ``suffix``), deleted on leaving the block, whatever
    ends it, unless the caller has renamed it away."""
    install_signal_cleanup()
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    path = Path(name)
    with _lock:
        _live[path] = os.getpid()
    try:
        yield path
    finally:
        with _lock:
            _live.pop(path, None)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


atexit.register(remove_all)
install_signal_cleanup()  # on import, which happens in the main thread in ComfyUI and on the command line
