"""Proof that a piece of code never touches the network: sockets raise and nltk.download is a recording spy."""

from __future__ import annotations

import contextlib
import socket
from typing import Iterator

import pytest


def _forbid(*args, **kwargs):
    raise AssertionError("network access attempted")


@contextlib.contextmanager
def network_forbidden() -> Iterator[list]:
    """Within the block no socket can open and every nltk.download call is recorded (and fails); the shared G2P is
    rebuilt inside, so its whole load path is proven offline. Yields the list of attempted downloads."""
    nltk = pytest.importorskip("nltk")
    import vssflow_core.text.g2p as g2p_module

    downloads: list = []

    def spy(*args, **kwargs):
        downloads.append(args)
        raise AssertionError(f"nltk.download called with {args}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "socket", _forbid)
        mp.setattr(socket, "create_connection", _forbid)
        mp.setattr(nltk, "download", spy)
        mp.setattr(nltk.downloader, "download", spy)
        mp.setattr(nltk.downloader.Downloader, "download", spy)
        g2p_module._instance = None
        yield downloads
