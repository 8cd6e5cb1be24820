"""No video file may take the process down: crafted and damaged MP4 indexes either work or raise our VideoError.

A small real MP4 (H.264 with B-frames, so it has ``ctts`` and an edit list, plus an AAC track) is made with PyAV; the
numbers in its index boxes (``stts``, ``ctts``, ``stsz``, ``stco``, ``stsc``, ``stss``, ``elst``, the ``mvhd``/
``mdhd``/``tkhd`` durations and time scales) are overwritten with hostile values, systematically and then by a seeded
random search.  Every case is opened by one long-lived reader process, as a ComfyUI server would open it: resolving
the input, sampling frames with the automatic and the decord reader, reading the muxer's duration and planning the
output video.  The test
asserts that this process is alive after every case (no signal such as decord's ``std::bad_alloc`` abort), that it
never hangs, and that every failure is one of our errors, naming the file.
"""

from __future__ import annotations

import json
import random
import select
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

from typing import Iterator

import numpy as np
import pytest

from mp4_boxes import Field, field, index_fields

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED = 17
RANDOM_CASES = 120
CASE_TIMEOUT_S = 60  # a case that takes this long is a hang (each takes well under a second)

# Values that break naive readers: zero, one, the signed and unsigned limits, a count far beyond the file.
HOSTILE = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x00FFFFFF)

# Failures the reader process may report: the VideoError types, whose messages name the file, and the length limit
# (a crafted time scale can make ten frames last an hour), whose message names the limit.
OUR_ERRORS = {"CorruptVideoError", "TruncatedVideoError", "NotAVideoError", "NoVideoStreamError",
              "InvalidFrameRateError", "VideoBackendError"}
LENGTH_LIMIT = "VideoTooLongError"
# What the reader process does with each file: resolve it as an input, sample it with the automatic and the decord
# reader, read its duration as the muxer does, and plan the output video.
STEPS = ["resolve", "auto", "decord", "mux", "plan"]


def small_mp4(path: Path, seconds: float = 1.0, fps: int = 10) -> bytes:
    """H.264 with B-frames (so ``ctts`` and an edit list exist) and an AAC track: every box the fuzzing touches."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        video.options = {"bf": "2", "g": "5"}
        audio = out.add_stream("aac", rate=8000, layout="mono")
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), (i * 20) % 256, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        for start in range(0, int(8000 * seconds), 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 8000, start, Fraction(1, 8000)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path.read_bytes()


def cases(data: bytes) -> list[tuple[str, bytes]]:
    """Every index number of the video track set to each hostile value, then seeded random multi-field mutations of
    the whole index (both tracks)."""
    out = []
    for f in index_fields(data):
        if f.name.startswith("trak1/"):
            continue  # the audio track's fields get the random search only
        for value in HOSTILE:
            out.append((f"{f.name}={value:#x}", f.write(data, value)))
    rng = random.Random(SEED)
    fields = index_fields(data, entries_per_table=4)
    for k in range(RANDOM_CASES):
        mutated, names = data, []
        for _ in range(rng.choice((1, 2, 3))):
            f: Field = rng.choice(fields)
            old = f.read(mutated)
            value = rng.choice((rng.getrandbits(32), rng.getrandbits(16), old * rng.choice((2, 1000, 1 << 16)),
                                old + rng.randint(-3, 3), old >> rng.randint(1, 8), *HOSTILE))
            mutated = f.write(mutated, value)
            names.append(f"{f.name}={value % (1 << 32):#x}")
        out.append((f"random{k}:" + ",".join(names), mutated))
    return out


class ReaderProcess:
    """One Python process that opens each file it is sent, as a server does, and reports what happened."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], cwd=REPO_ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def open(self, path: Path) -> list[list[str]] | str:
        """The reports for ``path``, or why there are none: the exit status of a process that died, or a hang."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], CASE_TIMEOUT_S)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            return f"hung for {CASE_TIMEOUT_S} s"
        line = self.proc.stdout.readline()
        if not line:
            status = self.proc.wait()
            tail = (self.proc.stderr.read() if self.proc.stderr else "").strip().splitlines()[-2:]
            return f"the process died with status {status} ({' '.join(tail)})"
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def reader() -> Iterator[list[ReaderProcess]]:
    """The reader process, in a list so that a test can replace one that died."""
    box = [ReaderProcess()]
    yield box
    box[0].close()


def test_a_huge_stts_sample_count_is_read_from_its_packets(reader, tmp_path: Path) -> None:
    # The case the sweep found: decord 0.6 sized its tables from this count and aborted with std::bad_alloc.
    data = small_mp4(tmp_path / "clip.mp4")
    crafted = field(data, "trak0/stts.entry0.0").write(data, 0x7FFFFFFF)
    (tmp_path / "crafted.mp4").write_bytes(crafted)
    reports = reader[0].open(tmp_path / "crafted.mp4")
    if isinstance(reports, str):
        reader[0] = ReaderProcess()
    assert not isinstance(reports, str), reports
    outcomes = {what: (outcome, message) for what, outcome, message in reports}
    assert outcomes["auto"][0] == "ok"  # PyAV reads the ten frames that are there
    assert outcomes["decord"][0] == "CorruptVideoError"
    assert "lists 2147483647 frames but the file holds only 10" in outcomes["decord"][1]


def test_fuzzed_index_boxes_never_take_the_process_down(reader, tmp_path: Path) -> None:
    data = small_mp4(tmp_path / "clip.mp4")
    deaths, foreign = [], []
    assert reader[0].open(tmp_path / "clip.mp4") == [[step, "ok", ""] for step in STEPS]
    for k, (name, mutated) in enumerate(cases(data)):
        path = tmp_path / f"case{k}.mp4"
        path.write_bytes(mutated)
        reports = reader[0].open(path)
        if isinstance(reports, str):
            deaths.append(f"{name}: {reports}")
            reader[0] = ReaderProcess()
            continue
        for what, outcome, message in reports:
            if outcome in ("ok", LENGTH_LIMIT):
                continue
            if outcome not in OUR_ERRORS or str(path) not in message:
                foreign.append(f"{name} ({what}): {outcome}: {message}")
        path.unlink()
    assert not deaths, "\n".join(deaths)
    assert not foreign, "\n".join(foreign)


def test_the_fuzzed_file_holds_every_box_the_fuzzing_targets(tmp_path: Path) -> None:
    data = small_mp4(tmp_path / "clip.mp4")
    names = {f.name.split(".")[0].split("/")[-1] for f in index_fields(data)}
    assert {"stts", "ctts", "stsz", "stco", "stsc", "elst", "mdhd", "mvhd", "tkhd"} <= names


# --------------------------------------------------------------------------------------------------------------------
# The reader process (run as `python tests/test_container_fuzz.py --worker`)
# --------------------------------------------------------------------------------------------------------------------


def _worker() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from vssflow_core.media import video_duration
    from vssflow_core.media.output_plan import plan_output
    from vssflow_core.video import resolve_video_input, sample_frames

    torch.set_num_threads(1)
    steps = {
        "resolve": lambda p: resolve_video_input(path=p),
        "auto": lambda p: sample_frames(p, 10, (16, 16), backend="auto", duration=1.0),
        "decord": lambda p: sample_frames(p, 10, (16, 16), backend="decord", duration=1.0),
        "mux": lambda p: video_duration(p),
        "plan": lambda p: plan_output(p, Path(p).with_name("out.mp4")),
    }
    assert list(steps) == STEPS
    for line in sys.stdin:
        path = line.rstrip("\n")
        reports = []
        for what, step in steps.items():
            try:
                step(path)
                reports.append([what, "ok", ""])
            except Exception as exc:  # reported, and judged by the test
                reports.append([what, type(exc).__name__, str(exc)])
        print(json.dumps(reports), flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _worker()
