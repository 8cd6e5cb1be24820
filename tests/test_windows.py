"""Videos of any length: the window plan, continuing a window from the one before, joining the audio, and memory that
stays that of one window.  The model-free parts are checked exactly; generation runs on tiny random components."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_models import build_tiny_components
from vssflow_core.config import SEQUENCE, WINDOWS
from vssflow_core.flow.settings import SamplerSettings
from vssflow_core.flow.solvers import make_solver
from vssflow_core.pipeline import VSSFlowPipeline
from vssflow_core.results import SamplingProgress
from vssflow_core.text.track import phoneme_frame_ids, phoneme_track
from vssflow_core.video import FrameSource, open_video, preview_frames, resolve_video_input
from vssflow_core.windows import (AudioJoiner, ContinuedVelocity, VideoTooLongError, check_duration, plan_windows,
                                  window_progress, window_seed)

REPO_ROOT = Path(__file__).resolve().parents[1]
SR = SEQUENCE.sample_rate
HELLO = "HH AH0 L OW1 W ER1 L D"
CONTINUE, CROSSFADE = WINDOWS, dataclasses.replace(WINDOWS, seam="crossfade")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


def write_video(path: Path, seconds: float, fps: float = 10, size: tuple[int, int] = (32, 24),
                pix_fmt: str = "yuv420p") -> Path:
    """A cheap H.264 clip of any length: a flat picture whose level changes every frame, a keyframe every second.
    Frames are encoded as they are made, so a long clip never sits in memory."""
    import av

    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"preset": "ultrafast"}
        stream.codec_context.gop_size = max(1, round(fps))
        for i in range(round(seconds * fps)):
            picture = np.full((height, width, 3), (i * 7) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> VSSFlowPipeline:
    paths = build_tiny_components(tmp_path_factory.mktemp("models"))
    return VSSFlowPipeline.load(paths.pop("checkpoint"), device="cpu", **paths)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("videos") / "clip45.mp4", 45.0)


def fast(**kwargs):
    return {"settings": SamplerSettings(solver="euler", steps=2), **kwargs}


# --------------------------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [0.5, 3.0, 10.0, 10.03])
def test_a_clip_that_fits_takes_one_window(duration):
    plan = plan_windows(duration)
    assert plan.starts == (0.0,) and plan.timeline.latent_length == 250
    assert plan.samples == round(duration * SR)  # the output is the clip's exact length, never the window's


@pytest.mark.parametrize("duration", [10.2, 12.0, 19.9, 45.0, 61.3, 600.0, 900.0])
def test_longer_clips_take_evenly_spaced_overlapping_windows(duration):
    plan = plan_windows(duration)
    starts = np.array(plan.starts)
    assert starts[0] == 0.0 and plan.count >= 2
    assert np.allclose(starts / WINDOWS.grid_sec, np.round(starts / WINDOWS.grid_sec))  # whole frames at every rate
    hops = np.diff(starts)
    assert hops.max() <= SEQUENCE.duration_sec - WINDOWS.overlap_sec + 1e-9  # every seam has its overlap
    assert hops.max() - hops.min() <= WINDOWS.grid_sec + 1e-9  # evenly spaced
    span = starts[-1] + SEQUENCE.duration_sec
    assert duration - 1e-3 <= span < duration + WINDOWS.grid_sec  # the last window covers the end, barely past it
    # no more windows than needed: one fewer could not keep the overlap
    assert (plan.count - 2) * (SEQUENCE.duration_sec - WINDOWS.overlap_sec) < duration - SEQUENCE.duration_sec
    assert all(plan.overlap_frames(k) >= WINDOWS.overlap_sec * SEQUENCE.latent_rate for k in range(1, plan.count))


def test_forty_five_seconds():
    plan = plan_windows(45.0)
    assert plan.starts == (0.0, 7.0, 14.0, 21.0, 28.0, 35.0)
    assert [plan.start_frame(k) for k in range(6)] == [0, 175, 350, 525, 700, 875]
    assert plan.overlap_frames(1) == 75 and plan.timeline.latent_length == 1125


def test_the_maximum_length_is_a_clear_limit():
    assert check_duration(900.0) == 900.0
    with pytest.raises(VideoTooLongError, match=r"900\.50 s long, longer than the maximum of 900 s \(15 min\).*"
                                                r"raise the limit \(--max-duration"):
        check_duration(900.5)
    assert check_duration(3600.0, max_duration=3600) == 3600.0
    assert check_duration(1e6, max_duration=float("inf")) == 1e6
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="no usable duration"):
            check_duration(bad)


def test_window_settings_are_checked():
    with pytest.raises(ValueError, match="seam strategy"):
        plan_windows(20.0, windows=dataclasses.replace(WINDOWS, seam="blend"))
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(20.0, windows=dataclasses.replace(WINDOWS, overlap_sec=10.0))
    with pytest.raises(ValueError, match="not a whole number of CLIP frames"):
        plan_windows(20.0, windows=dataclasses.replace(WINDOWS, grid_sec=0.15))


# --------------------------------------------------------------------------------------------------------------------
# Joining the audio
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [10.2, 18.2, 45.0, 123.4])
@pytest.mark.parametrize("windows", [CONTINUE, CROSSFADE], ids=["continue", "crossfade"])
def test_window_weights_partition_the_output(windows, duration):
    plan = plan_windows(duration, windows=windows)
    amplitude, power = torch.zeros(plan.samples), torch.zeros(plan.samples)
    for k in range(plan.count):
        origin, w = round(plan.starts[k] * SR), plan.weights(k)
        end = min(plan.samples, origin + w.numel())
        amplitude[origin:end] += w[: end - origin]
        power[origin:end] += w[: end - origin] ** 2
    if windows.seam == "continue":  # near-identical signals: amplitudes add up to one everywhere
        torch.testing.assert_close(amplitude, torch.ones_like(amplitude))
    else:  # independent signals: powers add up to one everywhere
        torch.testing.assert_close(power, torch.ones_like(power))
    if duration == 45.0:  # in the middle of the 7 s .. 10 s overlap
        length = SR * (WINDOWS.continue_fade_sec if windows.seam == "continue" else WINDOWS.overlap_sec)
        assert plan.fade(1) == (round(8.5 * SR - length / 2), length)


def test_joiner_places_each_window_and_pads_the_tail():
    plan = plan_windows(10.03)
    joiner = AudioJoiner(plan, batch_size=2)
    joiner.add(0, torch.ones(2, 160_200))  # the vocoder may make a little more than the window
    out = joiner.result()
    assert out.shape == (2, round(10.03 * SR)) and out[:, :160_000].eq(1).all() and out[:, 160_000:].eq(0).all()

    plan = plan_windows(12.0)
    joiner = AudioJoiner(plan, batch_size=1)
    joiner.add(0, torch.full((1, 160_000), 2.0))
    with pytest.raises(RuntimeError, match=r"windows \[1\] were never added"):
        joiner.result()
    joiner.add(1, torch.full((1, 160_000), 2.0))
    torch.testing.assert_close(joiner.result(), torch.full((1, 12 * SR), 2.0))


# --------------------------------------------------------------------------------------------------------------------
# Continuing a window
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["euler", "rk4", "dopri5"])
def test_known_frames_stay_on_the_flow_path_and_land_on_their_value(solver):
    torch.manual_seed(0)
    noise, known = torch.randn(2, 4, 30), torch.randn(2, 4, 10)
    mixing = torch.randn(30, 30) / 30
    seen = []

    class Field:
        evaluations = 0

        def __call__(self, t, x):  # any velocity that couples the frames, as attention does
            seen.append((float(t), x[:, :, :10].clone()))
            return torch.tanh(x @ mixing) - x

    velocity = ContinuedVelocity(Field(), noise, known)
    out = make_solver(solver, steps=8, atol=1e-6, rtol=1e-6).solve(velocity, noise.clone(), 0.0, 1.0).x
    torch.testing.assert_close(out[:, :, :10], known, atol=1e-4, rtol=0)
    for t, frames in seen:  # every stage the network saw the known frames on x_t = (1 - t) noise + t known
        torch.testing.assert_close(frames, (1 - t) * noise[:, :, :10] + t * known, atol=1e-4, rtol=0)
    assert not torch.allclose(out[:, :, 10:], noise[:, :, 10:])  # the rest was generated


def test_window_seeds_and_progress_run_on():
    assert window_seed(7, 0) == 7 and len({window_seed(7, k) for k in range(100)}) == 100
    seen = []
    report = window_progress(seen.append, k=2, count=4, steps_before=10, evaluations_before=20)
    report(SamplingProgress(step=3, total_steps=5, t=0.5, evaluations=6))
    assert seen == [SamplingProgress(step=13, total_steps=20, t=0.625, evaluations=26)]
    callback = seen.append
    assert window_progress(callback, 0, 1, 0, 0) is callback  # one window: unchanged


# --------------------------------------------------------------------------------------------------------------------
# Speech over windows
# --------------------------------------------------------------------------------------------------------------------


def test_speech_lies_on_the_video_timeline_and_is_cut_per_window():
    ids = phoneme_frame_ids(HELLO, 8.0, 12.0, duration=45.0)
    plan = plan_windows(45.0)
    assert ids.shape == (plan.timeline.latent_length,)
    spoken = torch.nonzero(ids).flatten()
    assert spoken.min() == 200 and spoken.max() == 299  # 8 s .. 12 s at 25 frames per second, in video time
    first, second = plan.window_slice(ids, 0), plan.window_slice(ids, 1)  # window 1 starts at 7 s
    assert torch.equal(first[175:], second[:75])  # the frames both windows hold say the same thing
    assert torch.nonzero(first).max() == 249 and torch.nonzero(second).min() == 25  # split where it falls
    assert int(plan.window_slice(ids, 3).abs().sum()) == 0  # 21 s .. 31 s: no speech
    # a clip of one window: the official 250 frames, speech from the start by default
    assert torch.equal(phoneme_frame_ids(HELLO, duration=3.0)[:75] > 0, torch.ones(75, dtype=torch.bool))


def test_speech_outside_the_video_is_refused():
    with pytest.raises(ValueError, match=r"ends at 50 s, after the end of the clip \(45\.00 s\); move the speech"):
        phoneme_frame_ids(HELLO, 40.0, 50.0, duration=45.0)
    with pytest.raises(ValueError, match="outside the clip"):
        phoneme_frame_ids(HELLO, -1.0, 5.0, duration=45.0)
    with pytest.raises(ValueError, match="after the longest video allowed"):
        phoneme_frame_ids(HELLO, 950.0, 960.0)


# --------------------------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("windows", [CONTINUE, CROSSFADE], ids=["continue", "crossfade"])
def test_forty_five_seconds_give_forty_five_seconds_of_audio(pipe, long_video, windows):
    calls = []
    audio = pipe.generate(long_video, HELLO, speech_start=8.0, speech_end=12.0, windows=windows, seed=3,
                          callback=calls.append, **fast())
    assert audio.duration == pytest.approx(45.0) and audio.waveform.shape == (1, 45 * SR)
    assert torch.isfinite(audio.waveform).all() and audio.waveform[0, -SR:].abs().max() > 0
    assert audio.stats.seeds == (3,) and audio.stats.steps == 12 and [c.step for c in calls] == list(range(1, 13))
    assert all(a.t < b.t for a, b in zip(calls, calls[1:])) and calls[-1].t == pytest.approx(1.0)


def test_each_window_continues_the_one_before(pipe, long_video):
    track = phoneme_track(HELLO, 8.0, 12.0, 45.0)
    visual = pipe.components.encode_video(long_video, speech=track)  # windows placed around the speech
    assert visual.windows == 6 and visual.clip.shape[0] == 6
    assert visual.plan.starts == (0.0, 5.2, 13.2, 21.0, 28.0, 35.0)  # no seam inside 8 .. 12 s
    phone_ids = track.frame_ids_on(visual.plan)
    sampled = pipe.sample_windows(visual, phone_ids, seed=3, **fast())
    latent, plan = sampled.latent, sampled.plan
    assert latent.shape == (1, 6, 128, 250) and sampled.stats.steps == 12
    for k in range(1, plan.count):
        overlap = plan.overlap_frames(k)
        torch.testing.assert_close(latent[:, k, :, :overlap], latent[:, k - 1, :, 250 - overlap:], atol=1e-5, rtol=0)
    # the streaming generate() is the same computation, one window at a time
    streamed = pipe.generate(long_video, HELLO, speech_start=8.0, speech_end=12.0, seed=3, **fast())
    torch.testing.assert_close(pipe.components.decode(latent, visual.duration, plan), streamed.waveform)
    # crossfade: each window is sampled on its own, the first exactly as a single-window generation would be
    independent = pipe.sample_windows(dataclasses.replace(visual, plan=dataclasses.replace(plan, windows=CROSSFADE)),
                                      phone_ids, seed=3, **fast())
    torch.testing.assert_close(independent.latent[:, 0], latent[:, 0])
    assert not torch.allclose(independent.latent[:, 1, :, :75], latent[:, 1, :, :75])


# --------------------------------------------------------------------------------------------------------------------
# Memory: one window at a time
# --------------------------------------------------------------------------------------------------------------------


class SpySource(FrameSource):
    """A frame source that records every decode request and how many decoded frames are alive at once."""

    def __init__(self, inner: FrameSource):
        self.inner = inner
        for name in ("name", "backend", "timestamps", "end_time", "average_fps", "rotation", "width", "height"):
            setattr(self, name, getattr(inner, name))
        self.requests: list[list[int]] = []
        self.alive = self.peak_alive = 0

    def _decode(self, indices):
        self.requests.append(list(indices))
        for index, frame in self.inner._decode(indices):
            self.alive += 1
            self.peak_alive = max(self.peak_alive, self.alive)
            yield index, frame
            self.alive -= 1  # the consumer asked for the next frame: it has shrunk this one


def test_frames_are_read_one_window_at_a_time(pipe, long_video):
    with open_video(long_video) as reader:
        spy = SpySource(reader)
        audio = pipe.generate(spy, **fast())
    assert audio.waveform.shape == (1, 45 * SR)
    window = SEQUENCE.duration_sec
    assert len(spy.requests) == 2 * 6  # CLIP then Synchformer frames, for each of the 6 windows in turn
    for indices in spy.requests:  # no request reaches beyond one window of the video
        times = spy.timestamps[indices]
        assert times.max() - times.min() < window
    starts = [spy.timestamps[r[0]] for r in spy.requests[::2]]
    assert starts == pytest.approx(list(plan_windows(45.0).starts), abs=0.11)  # in order, window by window
    assert spy.peak_alive == 1  # every frame is resized before the next one is decoded


def test_the_loader_preview_of_a_long_video_is_its_first_minute(tmp_path):
    video = resolve_video_input(path=write_video(tmp_path / "long.mp4", 70.0, fps=2))
    assert video.duration == pytest.approx(70.0)
    assert preview_frames(video, max_side=16).shape == (600, 12, 16, 3)  # 10 fps, 60 s: memory stays bounded


PEAK_RSS = """
import json, resource, sys, torch
torch.set_num_threads(1)
from vssflow_core.flow.settings import SamplerSettings
from vssflow_core.pipeline import VSSFlowPipeline
paths = json.loads(sys.argv[1])
pipe = VSSFlowPipeline.load(paths.pop("checkpoint"), device="cpu", **paths)
pipe.generate(sys.argv[2], settings=SamplerSettings(solver="euler", steps=1))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def test_peak_memory_does_not_grow_with_the_video(tmp_path):
    """A 60 s 640x360 video holds 1 GB of decoded frames; generating it must cost no more memory than 20 s does (the
    output track itself grows by 2.5 MB)."""
    paths = {k: str(v) for k, v in build_tiny_components(tmp_path / "models").items()}
    short = write_video(tmp_path / "short.mp4", 20.0, fps=25, size=(640, 360))
    long = write_video(tmp_path / "long.mp4", 60.0, fps=25, size=(640, 360))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

    def peak(video: Path) -> int:
        proc = subprocess.run([sys.executable, "-c", PEAK_RSS, json.dumps(paths), str(video)], capture_output=True,
                              text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return int(proc.stdout.split()[-1])

    grown = peak(long) - peak(short)
    assert grown < 64 * 2**20, f"peak RSS grew by {grown / 2**20:.0f} MiB from a 20 s to a 60 s video"
