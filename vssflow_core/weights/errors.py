"""The errors of finding, fetching and checking weights files: each says what is wrong and how to get a good file."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


class MissingWeightsError(FileNotFoundError):
    """A component's file is nowhere to be found (or cannot be fetched).  The message says how to get it."""

    def __init__(
        self,
        message: str,
        *,
        component: str,
        filename: str,
        searched: Sequence[str] = (),
        commands: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.component = component
        self.filename = filename
        self.searched = tuple(searched)
        self.commands = tuple(commands)

    def __str__(self) -> str:  # FileNotFoundError would otherwise format (errno, strerror) pairs
        return str(self.args[0])


class WeightsVerificationError(ValueError):
    """A weights file exists but is not usable as the component it claims to be."""

    def __init__(self, message: str, *, component: str, path: Path) -> None:
        super().__init__(message)
        self.component = component
        self.path = path


class WrongModelError(WeightsVerificationError):
    """The file is intact but holds another model (other tensors, other sizes, other config)."""


class CorruptWeightsError(WeightsVerificationError):
    """The file is truncated, empty, a Git LFS pointer, or not in any weights format at all."""


class UnsupportedComponentError(ValueError):
    """The component is documented in the registry but this package does not run it (AV-HuBERT)."""