"""Peak memory while generating sound for a 10-minute 1080p video: bounded by one window, not by the video.

What it measures
    A 10-minute 1920x1080 25 fps H.264 video (a moving bar and a counter-coloured background, x264 ultrafast, a
    keyframe every 2 s; written once to ``.cache/bench/`` and reused) goes through ``VSSFlowPipeline.generate``
    (75 windows of 10 s), then the generated track is muxed onto it as the command line does (``--no-mux`` skips
    that).  A thread samples the process's resident memory every 50 ms; the report gives
        loaded     RSS after the weights are loaded and before the video is opened
        peak       the process's peak RSS (``ru_maxrss``), and the peak above ``loaded``
        per window the highest RSS seen in the first, middle and last tenth of the windows: flat when memory does
                   not grow with the video (the output track itself grows by 64 KB per second of video)
    Decoded, the video would be 15 000 frames of 6 MB: 93 GB.  Nothing like it may appear.

Run
    .venv/bin/python bench/memory_long_video.py                     # tiny random components; ~10 min on 2 cores
    .venv/bin/python bench/memory_long_video.py --checkpoint demo   # the demo model
Options: ``--seconds`` / ``--size WxH`` / ``--fps`` (another video; cached by its parameters), ``--video`` (your own),
``--solver`` / ``--steps`` (default euler, 2 steps: memory, not quality, is measured), ``--threads``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vssflow_core.flow.settings import SamplerSettings  # noqa: E402
from vssflow_core.windows import plan_windows  # noqa: E402

CACHE = ROOT / ".cache" / "bench"
MIB = 2**20


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


class RssSampler:
    """Resident memory every ``period`` seconds, in a thread, with the time of each sample."""

    def __init__(self, period: float = 0.05):
        self.period, self.samples, self._stop = period, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), rss_bytes()))
            self._stop.wait(self.period)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def synthetic_video(seconds: float, size: tuple[int, int], fps: int) -> Path:
    """A long, cheap-to-encode video, cached by its parameters."""
    import av

    width, height = size
    path = CACHE / f"long_{width}x{height}_{fps}fps_{seconds:g}s.mp4"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    started = time.perf_counter()
    frames = round(seconds * fps)
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        stream.codec_context.gop_size = 2 * fps
        stream.thread_type = "AUTO"
        base = np.zeros((height, width, 3), np.uint8)
        bar = max(8, width // 40)
        for i in range(frames):
            picture = base.copy()
            picture[:] = ((i // fps) * 13 % 200, (i // fps) * 29 % 200, 60)  # a new colour every second
            x = (i * 7) % (width - bar)
            picture[:, x:x + bar] = 255  # a bar sweeping across
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
            if i % (60 * fps) == 0:
                print(f"  encoding {i / fps / 60:.0f}/{seconds / 60:.0f} min", file=sys.stderr)
        for packet in stream.encode():
            out.mux(packet)
    partial.rename(path)
    print(f"wrote {path} ({path.stat().st_size / MIB:.0f} MiB) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return path


def build_pipeline(checkpoint: str, device: str):
    from vssflow_core.pipeline import VSSFlowPipeline

    if checkpoint == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import build_tiny_components

        paths = build_tiny_components(Path(tempfile.mkdtemp(prefix="vssflow_memory_")))
        return VSSFlowPipeline.load(paths.pop("checkpoint"), device=device, **paths)
    return VSSFlowPipeline.load(checkpoint, device=device)


def pipe_duration(video: Path) -> float:
    from vssflow_core.video import open_video

    with open_video(video) as reader:
        return reader.end_time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="tiny", help="'tiny' (random test components), 'demo', or a path")
    parser.add_argument("--video", help="your own long video instead of the synthetic one")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--solver", default="euler")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-mux", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    width, height = (int(v) for v in args.size.lower().split("x"))
    video = Path(args.video) if args.video else synthetic_video(args.seconds, (width, height), args.fps)
    pipe = build_pipeline(args.checkpoint, args.device)
    loaded = rss_bytes()
    plan = plan_windows(pipe_duration(video))
    window_end: dict[int, float] = {}  # window -> when its last solver step finished

    def on_step(progress) -> None:  # progress.t runs over [k / n, (k + 1) / n] in window k
        window_end[min(plan.count - 1, int(progress.t * plan.count - 1e-9))] = time.perf_counter()

    started = time.perf_counter()
    with RssSampler() as sampler:
        audio = pipe.generate(video, settings=SamplerSettings(solver=args.solver, steps=args.steps), callback=on_step,
                              max_duration=float("inf"))
        generated = time.perf_counter()
        if not args.no_mux:
            from vssflow_core.media import mux_audio

            with tempfile.TemporaryDirectory() as scratch:
                mux_audio(video, audio.waveform[0], audio.sample_rate, Path(scratch) / "out.mp4")
    finished = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    # the highest RSS while each window was read, encoded, sampled and decoded (up to the end of its last step)
    times = np.array([t for t, _ in sampler.samples])
    values = np.array([v for _, v in sampler.samples])
    ends = np.array([window_end[k] for k in range(plan.count)])
    owner = np.searchsorted(ends, times)  # the window running at each sample
    per_window = [int(values[owner == k].max()) if np.any(owner == k) else 0 for k in range(plan.count)]
    tenths = [max(per_window[i:i + max(1, plan.count // 10)]) for i in range(0, plan.count, max(1, plan.count // 10))]
    print(f"video: {video.name}, {audio.duration:.1f} s, {width}x{height} @ {args.fps} fps "
          f"(decoded: {audio.duration * args.fps * width * height * 3 / 2**30:.0f} GiB of frames)")
    print(f"windows: {plan.count}, checkpoint {args.checkpoint}, {args.solver} x{args.steps}, "
          f"generate {generated - started:.0f} s, mux {finished - generated:.0f} s")
    print(f"RSS after loading: {loaded / MIB:.0f} MiB; peak: {peak / MIB:.0f} MiB "
          f"(+{(peak - loaded) / MIB:.0f} MiB above loaded)")
    print(f"max RSS over each tenth of the {plan.count} windows, in order (MiB): "
          + " ".join(f"{v / MIB:.0f}" for v in tenths))
    print(f"output track: {audio.waveform.numel() * 4 / MIB:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
