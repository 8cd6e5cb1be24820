"""A process stopped while it writes an output leaves nothing behind: no hidden ``.NAME.XXXX.partial.mp4``, no
re-encoded picture, whichever termination signal stops it and whichever thread was writing (the command line writes
in its main thread, ComfyUI in a worker thread)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_output_plan import encode_clip
from vssflow_core.video.synthetic import make_counter_video

REPO_ROOT = Path(__file__).resolve().parents[1]

# Runs mux_audio, holding it just after the picture and sound are written into the temporary file (the final mux),
# until the test sends its signal.
SCRIPT = textwrap.dedent("""
    import sys, threading, time
    sys.path.insert(0, {repo!r})
    import numpy as np
    from vssflow_core.media import mux

    real_write = mux._write

    def write_then_wait(*args, **kwargs):
        real_write(*args, **kwargs)
        print("writing", flush=True)
        time.sleep(120)

    mux._write = write_then_wait

    def job():
        mux.mux_audio({video!r}, np.zeros(16000, np.float32), 16000, {output!r})

    if {in_worker!r}:
        threading.Thread(target=job, daemon=True).start()  # as ComfyUI runs a node
        threading.Event().wait(120)
    else:
        job()
""")

SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]


def stop_while_muxing(video: Path, output: Path, signum: int, in_worker: bool) -> tuple[int, list[str]]:
    """Start the mux, check its temporary files exist, send ``signum``; the exit status and the files left over."""
    script = SCRIPT.format(repo=str(REPO_ROOT), video=str(video), output=str(output), in_worker=in_worker)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read() if proc.stderr else ""
        assert any(p.name.endswith(".partial.mp4") for p in output.parent.iterdir())  # caught mid-write
        proc.send_signal(signum)
        status = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return status, sorted(p.name for p in output.parent.iterdir())


@pytest.fixture(scope="module")
def h264(tmp_path_factory) -> Path:
    return Path(make_counter_video(tmp_path_factory.mktemp("in") / "clip.mp4", 25, 25))


@pytest.mark.parametrize("in_worker", [False, True], ids=["main thread", "worker thread"])
@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_a_signal_during_the_final_mux_leaves_nothing(h264, tmp_path, signum, in_worker):
    status, left = stop_while_muxing(h264, tmp_path / "take.mp4", signum, in_worker)
    assert left == []
    if signum != signal.SIGINT:  # the process still dies of the signal, as its caller expects
        assert status == -signum


def test_a_signal_while_the_picture_is_re_encoded_leaves_nothing(tmp_path_factory, tmp_path):
    prores = encode_clip(tmp_path_factory.mktemp("in") / "clip.mov", "prores_ks", "yuv422p10le")
    status, left = stop_while_muxing(prores, tmp_path / "take.mp4", signal.SIGTERM, in_worker=True)
    assert status == -signal.SIGTERM and left == []
