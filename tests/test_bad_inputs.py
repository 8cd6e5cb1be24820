"""Everything a user can throw at VSSFlow either works or fails cleanly, through the Python API, the command line and
the nodes.

Every bad input is made inside the test (PyAV, numpy, torch).  A failure raises the documented type with a message
that names the problem and the fix; the command line exits with status 1 and one ``error:`` line (details, such as
where weights were looked for, indented below it), never a traceback; and the output folder is left exactly as it
was: no file, no temporary file.  The inputs that must work (odd sizes, odd rates, rotation, scripts other than
Latin) produce audio of exactly the video's duration.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import soundfile as sf
import torch

from test_windows import write_video
from tiny_models import build_tiny_models_folder
from vssflow_core.flow.settings import SamplerSettings
from vssflow_core.config import SEQUENCE
from vssflow_core.generate import main as generate_main
from vssflow_core.media import video_duration
from vssflow_core.pipeline import VSSFlowPipeline
from vssflow_core.video import (CorruptVideoError, EmptyVideoError, InvalidFrameRateError, NotAVideoError,
                                NoVideoStreamError, TruncatedVideoError, VideoError)
from vssflow_core.video.synthetic import make_counter_video
from vssflow_core.weights.checkpoint import CheckpointError
from vssflow_core.weights.hub import MissingWeightsError
from vssflow_core.windows import VideoTooLongError
from workflow_tools import load_pack, pack_nodes

REPO_ROOT = Path(__file__).resolve().parents[1]
SR = SEQUENCE.sample_rate
FAST = {"settings": SamplerSettings(solver="euler", steps=2)}
NAN = float("nan")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


# --------------------------------------------------------------------------------------------------------------------
# The bad inputs, made on the spot
# --------------------------------------------------------------------------------------------------------------------


def good_mp4(path: Path) -> Path:
    return make_counter_video(path, 75, 25)  # 3 s, its index ('moov') after the data


def truncated_mp4(path: Path) -> Path:
    data = Path(good_mp4(path.with_name("whole_" + path.name))).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_faststart_mp4(path: Path) -> Path:
    """Index at the front, end cut off: FFmpeg reads the first half without complaint."""
    import av

    source = good_mp4(path.with_name("whole_" + path.name))
    whole = path.with_name("faststart_" + path.name)
    with av.open(str(source)) as src, av.open(str(whole), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_mp4(path: Path) -> Path:
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(30_000))
    return path


def empty_mp4(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def audio_only_mp4(path: Path) -> Path:
    import av

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16_000, layout="mono")
        tone = (0.3 * np.sin(np.arange(16_000) / 10)).astype(np.float32)[None]
        for start in range(0, tone.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16_000, start, Fraction(1, 16_000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def png_named_mp4(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(path, format="PNG")
    return path


def text_named_mp4(path: Path) -> Path:
    path.write_text("These are my notes for the video, not the video.\n" * 40)
    return path


def video_12s(path: Path) -> Path:
    return write_video(path, 12.0, fps=5)


def encoded(width: int, height: int, frames: int, fps: float, pix_fmt: str = "yuv420p") -> Callable[[Path], Path]:
    return lambda path: write_video(path, frames / fps, fps=fps, size=(width, height), pix_fmt=pix_fmt)


def rotated_mp4(path: Path) -> Path:
    return make_counter_video(path, 50, 25, rotation=90)


def pickle_that_runs_code(path: Path) -> Path:
    marker = path.with_name("pwned")

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"state_dict": {"vaflow.proj_in.weight": Payload()}}, path)
    return path


def half_of(name: str) -> Callable[[Path, dict[str, Path]], Path]:
    def make(path: Path, weights: dict[str, Path]) -> Path:
        data = weights[name].read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    return make


def copy_of(name: str) -> Callable[[Path, dict[str, Path]], Path]:
    def make(path: Path, weights: dict[str, Path]) -> Path:
        shutil.copy(weights[name], path)
        return path

    return make


def frames(seconds: float = 2.0, fps: float = 10.0, poison: float | None = None) -> torch.Tensor:
    images = torch.rand(round(seconds * fps), 24, 32, 3)
    if poison is not None:
        images[5, 3, 4] = poison
    return images


# --------------------------------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fails:
    type: type[BaseException]
    problem: str  # regex: what is wrong
    fix: str  # regex: what to do about it


@dataclass(frozen=True)
class Case:
    """One input a user might bring.  ``video``: a maker of a file (``name.ext``, maker) or in-memory frames with their
    rate; ``weights``: component -> maker of a replacement file (or None: missing, offline)."""

    video: tuple[str, Callable[[Path], Path]] | tuple[torch.Tensor, float] = ("clip.mp4", good_mp4)
    transcript: str | None = None
    speech: tuple[float | None, float | None] = (None, None)
    speaker: Any = None  # a ComfyUI AUDIO value
    max_duration: float | None = None
    weights: dict[str, Callable[[Path, dict[str, Path]], Path] | None] = field(default_factory=dict)
    expect: Fails | float = 3.0  # the error, or the duration of the audio it must produce
    cli: bool = True  # expressible on the command line
    cli_only: bool = False  # a rule of the command line alone
    extra_cli: tuple[str, ...] = ()


TEN_THOUSAND = ("The quick brown fox jumps over the lazy dog while the band plays on. " * 150)[:10_000]
VIDEO_IS_BAD = "Download or export it again|copy the video again|Load a file that has a video track"

CASES: dict[str, Case] = {
    # ---- video files that cannot be used
    "truncated mp4 (index at the end)": Case(
        video=("cut.mp4", truncated_mp4), expect=Fails(CorruptVideoError, r"truncated or damaged", VIDEO_IS_BAD)),
    "truncated mp4 (index at the front)": Case(
        video=("cut_fast.mp4", truncated_faststart_mp4),
        expect=Fails(TruncatedVideoError, r"end of the file is missing", VIDEO_IS_BAD)),
    "corrupt mp4": Case(
        video=("corrupt.mp4", corrupt_mp4), expect=Fails(CorruptVideoError, r"cannot be read", VIDEO_IS_BAD)),
    "zero-length file": Case(
        video=("empty.mp4", empty_mp4), expect=Fails(EmptyVideoError, r"empty \(0 bytes\)", VIDEO_IS_BAD)),
    "no video stream": Case(
        video=("sound_only.mp4", audio_only_mp4), expect=Fails(NoVideoStreamError, r"audio-only", VIDEO_IS_BAD)),
    "image renamed to .mp4": Case(
        video=("picture.mp4", png_named_mp4),
        expect=Fails(NotAVideoError, r"a still picture \(PNG\), not a video", r"turn the picture into one first")),
    "text file renamed to .mp4": Case(
        video=("notes.mp4", text_named_mp4),
        expect=Fails(NotAVideoError, r"not a video file FFmpeg can read", r"Use a video such as \.mp4")),
    "video over the maximum length": Case(
        video=("long.mp4", video_12s), max_duration=5.0,
        expect=Fails(VideoTooLongError, r"12\.00 s long, longer than the maximum of 5 s", r"raise the limit")),
    # ---- video files that are odd but fine
    "8K frames": Case(video=("8k.mp4", encoded(7680, 4320, 2, 1)), expect=2.0),
    "1x1 frames": Case(video=("dot.mp4", encoded(1, 1, 10, 10, "yuv444p")), expect=1.0),
    "rotated video": Case(video=("rotated.mp4", rotated_mp4), expect=2.0),
    "odd-sized video": Case(video=("odd.mp4", encoded(63, 47, 20, 10, "yuv444p")), expect=2.0),
    "0.5 fps": Case(video=("slow.mp4", encoded(32, 24, 3, 0.5)), expect=6.0),
    "1000 fps": Case(video=("fast.mp4", encoded(16, 16, 1500, 1000)), expect=1.5),
    # ---- transcripts
    "empty transcript": Case(transcript="", cli=False, expect=3.0),  # no speech: sound effects only
    "empty transcript on the command line": Case(
        transcript="", cli_only=True, expect=Fails(ValueError, r"--transcript is empty", r"leave --transcript out")),
    "transcript of only punctuation": Case(
        transcript="?!... ,;", expect=Fails(ValueError, r"nothing to pronounce", r"write the words to be spoken")),
    "transcript of only emoji": Case(
        transcript="\U0001F600\U0001F389 \U0001F44D", expect=Fails(ValueError, r"nothing to pronounce",
                                                                    r"write the words to be spoken")),
    "Cyrillic transcript": Case(transcript="Привет, как дела?", expect=3.0),  # transliterated, as official
    "Chinese transcript": Case(transcript="你好世界", expect=3.0),
    "10,000-character transcript": Case(
        transcript=TEN_THOUSAND, expect=Fails(ValueError, r"phonemes .* holds only 75 frames",
                                              r"shorten the transcript or widen the speech window")),
    "speech window past the end": Case(
        transcript="Hello there", speech=(2.0, 5.0),
        expect=Fails(ValueError, r"ends at 5 s, after the end of the clip", r"move the speech window inside")),
    "speech window before the start": Case(
        transcript="Hello there", speech=(-1.0, 2.0),
        expect=Fails(ValueError, r"lies outside the clip", r"move the speech window inside")),
    # ---- NaN and infinity arriving from elsewhere
    "NaN in the frames": Case(
        video=(frames(poison=NAN), 10.0), cli=False,
        expect=Fails(VideoError, r"1 of 20 frames hold NaN or infinite values \(first: frame 5\)", r"fix its inputs")),
    "infinity in the frames": Case(
        video=(frames(poison=float("inf")), 10.0), cli=False,
        expect=Fails(VideoError, r"NaN or infinite values", r"fix its inputs")),
    "NaN frame rate": Case(
        video=(frames(), NAN), cli=False,
        expect=Fails(InvalidFrameRateError, r"frame rate.* is nan", r"positive number of frames per second")),
    "NaN speech start": Case(
        transcript="Hello there", speech=(NAN, 2.0),
        expect=Fails(ValueError, r"speech window must be finite", r"give its start and end in seconds")),
    "infinite samples in the speaker reference": Case(
        speaker={"waveform": torch.full((1, 1, 16_000), float("inf")), "sample_rate": 16_000}, cli=False,
        expect=Fails(ValueError, r"NaN or infinite samples", r"use another recording")),
    "NaN maximum length": Case(
        max_duration=NAN, expect=Fails(ValueError, r"maximum video length must be a positive number", r"seconds")),
    # ---- weights
    "checkpoint of the wrong model": Case(
        weights={"checkpoint": copy_of("clip")},
        expect=Fails(CheckpointError, r"belong to no VSSFlow component", r"Choose the VSSFlow network's file")),
    "component file of the wrong model": Case(
        weights={"vae": copy_of("vocoder")},
        expect=Fails(CheckpointError, r"does not hold vae weights", r"choose the vae file")),
    "truncated safetensors": Case(
        weights={"checkpoint": half_of("checkpoint")},
        expect=Fails(CheckpointError, r"not a valid safetensors file, or truncated", r"Download or copy it again")),
    "pickle that tries to run code": Case(
        weights={"checkpoint": lambda path, _: pickle_that_runs_code(path.with_suffix(".ckpt"))},
        expect=Fails(CheckpointError, r"refusing to load .* could run code", r"export the weights with safetensors")),
    "missing component weights while offline": Case(
        weights={"vocoder": None}, extra_cli=("--download",),
        expect=Fails(MissingWeightsError, r"Missing weights for 'vocoder'",
                     r"(?s)offline mode is on.*python -m vssflow_core download vocoder")),
}
FAILING = [name for name, case in CASES.items() if isinstance(case.expect, Fails)]
WORKING = [name for name, case in CASES.items() if not isinstance(case.expect, Fails)]


# --------------------------------------------------------------------------------------------------------------------
# Fixtures: tiny weights, the case's files, and a folder snapshot
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A ComfyUI-style models/vssflow folder with the tiny components; their dropdown names."""
    root = tmp_path_factory.mktemp("models") / "vssflow"
    return root, build_tiny_models_folder(root)


@pytest.fixture(scope="module")
def weights(models) -> dict[str, Path]:
    root, names = models
    paths = {key: root / name for key, name in names.items()}
    paths["vae"] = paths["vae"].parent  # the diffusers folder
    return paths


@pytest.fixture(scope="module")
def pipe(weights) -> VSSFlowPipeline:
    paths = dict(weights)
    return VSSFlowPipeline.load(paths.pop("checkpoint"), device="cpu", **paths)


def listing(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*") if p.is_file())


@dataclass
class Prepared:
    video: Any  # a path, or frames
    fps: float | None
    weights: dict[str, Path | None]  # the weights to load, None for a missing one
    replaced: set[str]


def prepare(case: Case, tmp: Path, weights: dict[str, Path]) -> Prepared:
    tmp.mkdir(parents=True, exist_ok=True)
    if isinstance(case.video[0], str):
        name, make = case.video
        video, fps = Path(make(tmp / name)), None
    else:
        video, fps = case.video
    chosen: dict[str, Path | None] = dict(weights)
    for component, make in case.weights.items():
        chosen[component] = None if make is None else make(tmp / f"bad_{component}.safetensors", weights)
    return Prepared(video, fps, chosen, set(case.weights))


def check_error(error: BaseException, fails: Fails) -> None:
    # the node pack carries its own copy of vssflow_core (loaded as ComfyUI loads it): compare types by name
    kinds = {(kind.__module__.split("vssflow_core")[-1], kind.__qualname__) for kind in type(error).__mro__}
    wanted = (fails.type.__module__.split("vssflow_core")[-1], fails.type.__qualname__)
    assert wanted in kinds, f"{type(error).__name__}: {error}"
    check_message(str(error), fails)


def check_message(message: str, fails: Fails) -> None:
    assert re.search(fails.problem, message), message
    assert re.search(fails.fix, message), message


# --------------------------------------------------------------------------------------------------------------------
# The Python API
# --------------------------------------------------------------------------------------------------------------------


def run_api(case: Case, prepared: Prepared, pipe: VSSFlowPipeline, tmp: Path):
    if prepared.replaced:
        paths = {k: v for k, v in prepared.weights.items() if v is not None}
        missing = {k for k, v in prepared.weights.items() if v is None}
        for component in missing:  # looked for in an empty models folder, download requested, offline
            paths.pop(component, None)
        pipe = VSSFlowPipeline.load(paths.pop("checkpoint"), models_dir=tmp / "no_models", download=bool(missing),
                                    device="cpu", **paths)
    start, end = case.speech
    return pipe.generate(prepared.video, case.transcript, speech_start=start, speech_end=end, fps=prepared.fps,
                         speaker=case.speaker, max_duration=case.max_duration, **FAST)


@pytest.mark.parametrize("name", [n for n in FAILING if not CASES[n].cli_only])
def test_api_refuses_with_the_problem_and_the_fix(name, tmp_path, weights, pipe):
    case = CASES[name]
    prepared = prepare(case, tmp_path, weights)
    with pytest.raises(BaseException) as raised:
        run_api(case, prepared, pipe, tmp_path)
    check_error(raised.value, case.expect)
    assert not (tmp_path / "pwned").exists()  # the pickle's payload never ran


@pytest.mark.parametrize("name", WORKING)
def test_api_makes_audio_of_exactly_the_video_duration(name, tmp_path, weights, pipe):
    case = CASES[name]
    audio = run_api(case, prepare(case, tmp_path, weights), pipe, tmp_path)
    assert audio.waveform.shape == (1, round(case.expect * SR))
    assert torch.isfinite(audio.waveform).all() and audio.waveform.abs().max() > 0


# --------------------------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------------------------


def cli_args(case: Case, prepared: Prepared, out: Path, tmp: Path) -> list[str]:
    args = ["--video", str(prepared.video), "-o", str(out / "result.mp4"), "--wav", str(out / "result.wav"),
            "--device", "cpu", "-q", "--solver", "euler", "--steps", "2", "--models-dir", str(tmp / "no_models"),
            *case.extra_cli]
    for component, path in prepared.weights.items():
        if path is not None:
            args += [f"--{component}", str(path)]
    if case.transcript is not None:
        args += ["--transcript", case.transcript]
    for flag, value in zip(("--speech-start", "--speech-end"), case.speech):
        if value is not None:
            args += [flag, str(value)]
    if case.max_duration is not None:
        args += ["--max-duration", str(case.max_duration)]
    return args


@pytest.fixture
def out_folder(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier_take.mp4").write_bytes(b"an earlier result that must survive")
    return out


@pytest.mark.parametrize("name", [n for n in FAILING if CASES[n].cli])
def test_cli_refuses_with_one_clear_line_and_writes_nothing(name, tmp_path, weights, out_folder, capsys):
    case = CASES[name]
    prepared = prepare(case, tmp_path / "in", weights)
    before = listing(out_folder)
    code = generate_main(cli_args(case, prepared, out_folder, tmp_path))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    first, *details = err.splitlines()
    assert first.startswith("error: ") and all(line.startswith("  ") for line in details), err
    check_message(err, case.expect)
    assert listing(out_folder) == before  # nothing written, nothing left behind, nothing replaced
    assert not (tmp_path / "in" / "pwned").exists()


@pytest.mark.parametrize("name", [n for n in WORKING if CASES[n].cli])
def test_cli_writes_the_video_and_the_sound(name, tmp_path, weights, out_folder, capsys):
    case = CASES[name]
    prepared = prepare(case, tmp_path / "in", weights)
    assert generate_main(cli_args(case, prepared, out_folder, tmp_path)) == 0, capsys.readouterr().err
    samples, rate = sf.read(str(out_folder / "result.wav"), dtype="float32")
    assert rate == SR and samples.shape == (round(case.expect * SR),)
    assert video_duration(out_folder / "result.mp4") == pytest.approx(case.expect, abs=1e-3)
    assert sorted(p.name for p in out_folder.iterdir()) == ["earlier_take.mp4", "result.mp4", "result.wav"]


@pytest.mark.parametrize("name", ["truncated mp4 (index at the front)", "pickle that tries to run code",
                                  "video over the maximum length"])
def test_cli_process_exits_1_without_a_traceback(name, tmp_path, weights, out_folder):
    case = CASES[name]
    prepared = prepare(case, tmp_path / "in", weights)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("VSSFLOW_DEBUG", None)
    before = listing(out_folder)
    proc = subprocess.run([sys.executable, "-m", "vssflow_core", "generate", *cli_args(case, prepared, out_folder,
                                                                                         tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    check_message(proc.stderr, case.expect)
    assert listing(out_folder) == before


def test_cli_never_overwrites(tmp_path, weights, out_folder, capsys, monkeypatch):
    prepared = prepare(Case(), tmp_path / "in", weights)
    args = cli_args(Case(), prepared, out_folder, tmp_path)
    args[args.index("-o") + 1] = str(out_folder / "earlier_take.mp4")
    assert generate_main(args) == 1
    err = capsys.readouterr().err
    assert "earlier_take.mp4 already exists and is never overwritten; choose another name" in err
    assert (out_folder / "earlier_take.mp4").read_bytes() == b"an earlier result that must survive"

    # a file that appears under the name while the sound is being generated is not replaced either
    import vssflow_core.generate as generate

    def someone_else_writes(self, progress):
        (out_folder / "result.wav").write_bytes(b"written meanwhile")

    monkeypatch.setattr(generate._ProgressBar, "__call__", someone_else_writes)
    assert generate_main(cli_args(Case(), prepared, out_folder, tmp_path)) == 1
    assert "result.wav exists" in capsys.readouterr().err
    assert (out_folder / "result.wav").read_bytes() == b"written meanwhile"
    # the mp4 that was ready is not published alone, and no temporary file is left
    assert sorted(p.name for p in out_folder.iterdir()) == ["earlier_take.mp4", "result.wav"]


# --------------------------------------------------------------------------------------------------------------------
# The nodes
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comfy(models, tmp_path_factory):
    """The node pack without a server (ComfyUI's folders set through the bridge), with the tiny weights loaded."""
    pack = load_pack()
    root, names = models
    work = tmp_path_factory.mktemp("comfy")
    bridge = pack.nodes.comfy_bridge
    bridge.configure(models_dirs=[root], input_dir=work / "input", output_dir=work / "output", temp_dir=work / "temp")
    (work / "input").mkdir()
    (work / "output").mkdir()
    nodes = pack_nodes(pack)
    (model,) = nodes["VSSFlowCheckpointLoader"].execute(names["checkpoint"], "cpu", "float32")
    (parts,) = nodes["VSSFlowComponentsLoader"].execute(names["clip"], names["synchformer"], names["vae"],
                                                     names["vocoder"], names["rawnet3"], False, "cpu")
    return {"nodes": nodes, "model": model, "parts": parts, "names": names, "root": root, "input": work / "input",
            "output": work / "output"}


def run_nodes(case: Case, prepared: Prepared, comfy: dict, name: str) -> dict:
    """The graph of the shared workflows, node by node, as the server runs it."""
    nodes, names, model, parts = comfy["nodes"], dict(comfy["names"]), comfy["model"], comfy["parts"]
    for component, path in ((c, prepared.weights[c]) for c in prepared.replaced):  # a file picked in a dropdown
        if path is None:
            names[component] = "auto"
        else:
            names[component] = f"bad/{name}/{path.name}"
            (comfy["root"] / names[component]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, comfy["root"] / names[component])
    if "checkpoint" in prepared.replaced:
        (model,) = nodes["VSSFlowCheckpointLoader"].execute(names["checkpoint"], "cpu", "float32")
    if prepared.replaced - {"checkpoint"}:
        (parts,) = nodes["VSSFlowComponentsLoader"].execute(names["clip"], names["synchformer"], names["vae"],
                                                         names["vocoder"], "none", True, "cpu")
    loader = nodes["VSSFlowVideoLoader"]
    limit = {} if case.max_duration is None else {"max_duration": case.max_duration}
    if isinstance(prepared.video, Path):
        file = f"{name.replace(' ', '_')}_{prepared.video.name}"
        shutil.copy(prepared.video, comfy["input"] / file)
        vssflow_video, video, _, duration, _ = loader.execute(file=file, **limit)
    else:
        vssflow_video, video, _, duration, _ = loader.execute(images=prepared.video, frame_rate=prepared.fps, **limit)
    start, end = case.speech
    (phonemes,) = nodes["VSSFlowPhonemeTokenizer"].execute(case.transcript or "", 0.0 if start is None else start,
                                                           0.0 if end is None else end, "auto",
                                                           duration=duration)
    (visual,) = nodes["VSSFlowVisualEncoder"].execute(parts, vssflow_video)
    (latent,) = nodes["VSSFlowSampler"].execute(model, parts, visual, 0, 2, 3.0, "euler", 1, phonemes=phonemes,
                                               speaker_reference=case.speaker)
    (audio,) = nodes["VSSFlowVocoderDecode"].execute(parts, latent)
    return nodes["VSSFlowAudioMux"].execute(video, audio, f"bad/{name.replace(' ', '_')}", False, 1.0, 1.0)


@pytest.mark.parametrize("name", [n for n in FAILING if not CASES[n].cli_only])
def test_nodes_refuse_with_the_problem_and_the_fix(name, tmp_path, weights, comfy):
    case = CASES[name]
    prepared = prepare(case, tmp_path, weights)
    before = listing(comfy["output"])
    with pytest.raises(BaseException) as raised:
        run_nodes(case, prepared, comfy, name)
    check_error(raised.value, case.expect)
    assert listing(comfy["output"]) == before
    assert not (tmp_path / "pwned").exists()


def test_nodes_refuse_nan_audio_from_upstream(comfy, tmp_path):
    before = listing(comfy["output"])
    path = good_mp4(tmp_path / "clip.mp4")
    video = comfy["nodes"]["VSSFlowVideoLoader"]  # any VIDEO
    shutil.copy(path, comfy["input"] / "nan_audio.mp4")
    _, video, *_ = video.execute(file="nan_audio.mp4")
    audio = {"waveform": torch.full((1, 1, 3 * SR), NAN), "sample_rate": SR}
    with pytest.raises(ValueError, match="NaN or infinite samples"):
        comfy["nodes"]["VSSFlowAudioMux"].execute(video, audio, "bad/nan_audio", False, 1.0, 1.0)
    assert listing(comfy["output"]) == before


@pytest.mark.parametrize("name", WORKING)
def test_nodes_make_and_save_audio_of_exactly_the_video_duration(name, tmp_path, weights, comfy):
    case = CASES[name]
    result = run_nodes(case, prepare(case, tmp_path, weights), comfy, name)
    (item,) = result.ui["audio"]
    samples, rate = sf.read(str(comfy["output"] / item["subfolder"] / item["filename"]), dtype="float32")
    assert rate == SR and samples.shape == (round(case.expect * SR),)
