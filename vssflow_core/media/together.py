"""Files that appear together or not at all: the mp4 and the wav of one take (the command line, the Audio Mux node)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from .audio_io import atomic_output

__all__ = ["written_together"]


@contextlib.contextmanager
def written_together(*paths: str | os.PathLike | None) -> Iterator[tuple[Path | None, ...]]:
    """A temporary name for each of ``paths`` (None for one that is not written), each checked up front as
    :func:`~vssflow_core.media.audio_io.atomic_output` checks it.

    When the block ends cleanly every file is renamed into place; if one of them cannot be (its name was taken
    meanwhile), the ones already placed are removed again, so the files appear together or none does.  On an
    exception in the block none appears, and no temporary file is left.
    """
    placed: list[Path] = []

    def take_back(exc_type, exc, tb) -> bool:
        if exc_type is not None:
            for path in placed:
                path.unlink(missing_ok=True)
        return False

    def placed_if_clean(path: Path):
        def record(exc_type, exc, tb) -> bool:
            if exc_type is None:
                placed.append(path)
            return False
        return record

    with contextlib.ExitStack() as stack:
        stack.push(take_back)  # unwound last: sees a failure of any rename after the others
        temporaries: list[Path | None] = []
        for path in paths:
            if path is None:
                temporaries.append(None)
                continue
            stack.push(placed_if_clean(Path(path).expanduser()))  # unwound right after this file's rename
            temporaries.append(stack.enter_context(atomic_output(path)))
        yield tuple(temporaries)
