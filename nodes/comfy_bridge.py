"""Everything the nodes need from ComfyUI, in one place, with plain fallbacks when ComfyUI is absent.

Inside ComfyUI this wraps ``folder_paths`` (model, input, output and temp folders), ``comfy.model_management``
(devices, offloading, cache emptying, interruption), ``comfy.utils.ProgressBar`` and the ``comfy_api`` VIDEO types.
Outside it (unit tests, scripts) the same functions work on folders set with :func:`configure`, never interrupt, and
report progress nowhere, so the node classes can be exercised without a server.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import torch

from ..vssflow_core import progress

MODEL_FOLDER = "vssflow"  # models/vssflow/, the folder_paths name of our model files
MODEL_EXTENSIONS = {".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin"}
# The example clips shipped with the pack, offered by the VideoLoader as demo_videos/<name> (so the shipped templates
# run on a fresh install, with nothing copied into the input folder).
DEMO_VIDEOS_DIR = Path(__file__).resolve().parents[1] / "demo_videos"
DEMO_VIDEO_PREFIX = "demo_videos/"

try:  # ComfyUI's modules exist only inside a ComfyUI process
    import folder_paths  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    folder_paths = None
try:
    import comfy.model_management as model_management  # type: ignore[import-not-found]
    import comfy.utils as comfy_utils  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    model_management = None
    comfy_utils = None

try:  # the V3 node API, pinned to a versioned release (comfy_api.latest moves with every ComfyUI version)
    from comfy_api.v0_0_2 import ComfyExtension, io, ui  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    from .v3_standin import ComfyExtension, io  # noqa: F401  (re-exported for the node modules)
    ui = None

IN_COMFYUI = folder_paths is not None

# Folders used without ComfyUI (set by configure(); defaults under the system temp folder).
_fallback: dict[str, Path | list[Path]] = {}


def configure(*, models_dirs: list[str | os.PathLike] | None = None, input_dir: str | os.PathLike | None = None,
              output_dir: str | os.PathLike | None = None, temp_dir: str | os.PathLike | None = None) -> None:
    """Set the folders used when ComfyUI is absent (tests)."""
    if models_dirs is not None:
        _fallback["models"] = [Path(d) for d in models_dirs]
    for key, value in (("input", input_dir), ("output", output_dir), ("temp", temp_dir)):
        if value is not None:
            _fallback[key] = Path(value)


def register_model_folder() -> None:
    """Make ``models/vssflow`` a ComfyUI model folder (also honours ``vssflow:`` in extra_model_paths.yaml)."""
    if folder_paths is None:
        return
    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))
    paths, extensions = folder_paths.folder_names_and_paths[MODEL_FOLDER]
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, set(extensions) | MODEL_EXTENSIONS)


# --------------------------------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------------------------------


def models_dirs() -> list[Path]:
    """Every folder holding VSSFlow model files, the default one first."""
    if folder_paths is not None:
        return [Path(p) for p in folder_paths.get_folder_paths(MODEL_FOLDER)]
    if "models" in _fallback:
        return list(_fallback["models"])  # type: ignore[arg-type]
    env = os.environ.get("VSSFLOW_MODELS_DIR", "").strip()
    return [Path(env)] if env else []


def model_files() -> list[str]:
    """Model files under the model folders, as relative names (what the dropdowns list)."""
    if folder_paths is not None:
        return folder_paths.get_filename_list(MODEL_FOLDER)
    names = set()
    for root in models_dirs():
        if root.is_dir():
            names.update(p.relative_to(root).as_posix() for p in root.rglob("*")
                         if p.is_file() and p.suffix.lower() in MODEL_EXTENSIONS)
    return sorted(names)


def model_path(name: str) -> Path:
    """The full path of a model file listed by :func:`model_files`."""
    if folder_paths is not None:
        found = folder_paths.get_full_path(MODEL_FOLDER, name)
        if found is not None:
            return Path(found)
    else:
        for root in models_dirs():
            if (root / name).is_file():
                return root / name
    raise FileNotFoundError(f"the model file '{name}' is not in {', '.join(map(str, models_dirs())) or 'models/vssflow'}"
                            f" any more; refresh the node's list (press R) and choose again")


def _folder(kind: str) -> Path:
    if folder_paths is not None:
        getter = {"input": folder_paths.get_input_directory, "output": folder_paths.get_output_directory,
                  "temp": folder_paths.get_temp_directory}[kind]
        return Path(getter())
    folder = _fallback.get(kind) or Path(tempfile.gettempdir()) / "vssflow_nodes" / kind
    return Path(folder)  # type: ignore[arg-type]


def input_dir() -> Path:
    return _folder("input")


def output_dir() -> Path:
    return _folder("output")


def temp_dir() -> Path:
    return _folder("temp")


def input_videos() -> list[str]:
    """Video files in the input folder (what ComfyUI's LoadVideo lists)."""
    folder = input_dir()
    if not folder.is_dir():
        return []
    files = sorted(f.name for f in folder.iterdir() if f.is_file())
    if folder_paths is not None and hasattr(folder_paths, "filter_files_content_types"):
        return folder_paths.filter_files_content_types(files, ["video"])
    return [f for f in files if Path(f).suffix.lower() in {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"}]


def demo_videos() -> list[str]:
    """The pack's example clips, as the VideoLoader lists them (``demo_videos/<name>``)."""
    if not DEMO_VIDEOS_DIR.is_dir():
        return []
    return [DEMO_VIDEO_PREFIX + p.name for p in sorted(DEMO_VIDEOS_DIR.glob("*.mp4"))]


def input_file(name: str) -> Path:
    """The path of a file chosen from the input folder (ComfyUI's annotated names such as ``x.mp4 [output]`` too) or
    of one of the pack's demo clips."""
    if name in demo_videos():
        return DEMO_VIDEOS_DIR / name[len(DEMO_VIDEO_PREFIX):]
    if folder_paths is not None:
        return Path(folder_paths.get_annotated_filepath(name))
    return input_dir() / name


def save_path(filename_prefix: str, folder_type: str = "output") -> tuple[Path, str, int, str]:
    """``(folder, file name stem, first free counter, subfolder)`` for a prefix such as ``vssflow/VSSFlow`` in the
    output (or temp) folder, the way ComfyUI's save nodes name their files (``<stem>_00001_.mp4``)."""
    root = _folder(folder_type)
    if folder_paths is not None:
        folder, stem, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, str(root))
        return Path(folder), stem, counter, subfolder
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    stem = os.path.basename(os.path.normpath(filename_prefix))
    folder = root / subfolder
    if not folder.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"the filename prefix {filename_prefix!r} points outside the {folder_type} folder")
    folder.mkdir(parents=True, exist_ok=True)
    used = [int(p.name[len(stem) + 1:].split("_")[0]) for p in folder.iterdir()
            if p.name.startswith(stem + "_") and p.name[len(stem) + 1:].split("_")[0].isdigit()]
    return folder, stem, max(used, default=0) + 1, subfolder


# --------------------------------------------------------------------------------------------------------------------
# Devices and memory
# --------------------------------------------------------------------------------------------------------------------


def torch_device() -> torch.device:
    """The device ComfyUI computes on (``--cpu`` respected), else CUDA when available."""
    if model_management is not None:
        return model_management.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def offload_device() -> torch.device:
    """Where weights rest between uses (ComfyUI's unet offload device: the CPU unless --highvram)."""
    if model_management is not None:
        return model_management.unet_offload_device()
    return torch.device("cpu")


def free_memory(num_bytes: int, device: torch.device) -> None:
    """Ask ComfyUI to unload its own models until ``num_bytes`` fit on ``device``."""
    if model_management is not None and device.type != "cpu":
        model_management.free_memory(num_bytes, device)


def soft_empty_cache() -> None:
    if model_management is not None:
        model_management.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


def throw_if_interrupted() -> None:
    """Raise ComfyUI's interruption exception when the user pressed cancel (never outside ComfyUI)."""
    if model_management is not None:
        model_management.throw_exception_if_processing_interrupted()


# The core checks this in every stage's long loops (per frame, encoder batch, network block, solver evaluation, mux
# packet), so Cancel stops any node within one such unit of work.
progress.set_interrupt_check(throw_if_interrupted)


# --------------------------------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------------------------------


class _NoProgressBar:
    def __init__(self, total: int, node_id: str | None = None):
        self.total, self.current, self.node_id = total, 0, node_id

    def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total)


def progress_bar(total: int, node_id: str | None = None) -> Any:
    """ComfyUI's progress bar on node ``node_id`` (``update_absolute(value, total)``), a silent one outside it."""
    if comfy_utils is not None:
        return comfy_utils.ProgressBar(total, node_id=node_id)
    return _NoProgressBar(total, node_id)


# --------------------------------------------------------------------------------------------------------------------
# VIDEO values
# --------------------------------------------------------------------------------------------------------------------


class _FramesVideo:
    """A VIDEO made of frames, for use without ComfyUI (its ``get_components()`` is all the pack reads)."""

    def __init__(self, images: torch.Tensor, frame_rate: Fraction, audio: dict | None = None):
        self.images, self.frame_rate, self.audio = images, frame_rate, audio

    def get_components(self) -> "_FramesVideo":
        return self

    def get_duration(self) -> float:
        return self.images.shape[0] / float(self.frame_rate)


class _FileVideo:
    """A VIDEO read from a file, for use without ComfyUI."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)

    def get_stream_source(self) -> str:
        return self.path


def _comfy_video_api() -> Any:
    try:
        from comfy_api.latest import InputImpl, Types  # type: ignore[import-not-found]
    except ImportError:
        return None
    return InputImpl, Types


def video_from_file(path: str | os.PathLike) -> Any:
    """A ComfyUI VIDEO for a file (``VideoFromFile``)."""
    api = _comfy_video_api()
    if api is None:
        return _FileVideo(path)
    return api[0].VideoFromFile(str(path))


def video_from_frames(images: torch.Tensor, frame_rate: float | Fraction, audio: dict | None = None) -> Any:
    """A ComfyUI VIDEO for frames at ``frame_rate`` (``VideoFromComponents``)."""
    rate = Fraction(frame_rate).limit_denominator(1_000_000)
    api = _comfy_video_api()
    if api is None:
        return _FramesVideo(images, rate, audio)
    InputImpl, Types = api
    return InputImpl.VideoFromComponents(Types.VideoComponents(images=images, frame_rate=rate, audio=audio))


# --------------------------------------------------------------------------------------------------------------------
# Node runs: hidden inputs and previews
# --------------------------------------------------------------------------------------------------------------------


def prompt_server() -> Any:
    """ComfyUI's running server (``server.PromptServer.instance``, where routes are added); None outside ComfyUI."""
    try:
        from server import PromptServer  # type: ignore[import-not-found]
    except ImportError:
        return None
    return getattr(PromptServer, "instance", None)


def node_id(cls: type) -> str | None:
    """The id of the node being run (ComfyUI fills ``hidden`` on its per-run copy of a V3 class; None elsewhere)."""
    hidden = getattr(cls, "hidden", None)
    return None if hidden is None else hidden.unique_id


def preview_audio(audio: dict, cls: type) -> dict:
    """The ``ui`` entry that gives the node one audio player per batch item: ``{"audio": [file, ...]}`` in the temp
    folder (ComfyUI's own preview helper inside ComfyUI, wav files written here outside it)."""
    if ui is not None:
        return ui.PreviewAudio(audio, cls=cls).as_dict()
    from ..vssflow_core.media import write_audio

    folder = temp_dir()
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for waveform in audio["waveform"]:
        handle, name = tempfile.mkstemp(prefix="vssflow_preview_", suffix=".wav", dir=folder)
        os.close(handle)
        write_audio(name, waveform, int(audio["sample_rate"]), overwrite=True)
        items.append({"filename": Path(name).name, "subfolder": "", "type": "temp"})
    return {"audio": items}


# --------------------------------------------------------------------------------------------------------------------
# Small helpers shared by the nodes
# --------------------------------------------------------------------------------------------------------------------


def step_reporter(node_id: str | None) -> Callable[[Any], None]:
    """A sampler callback that shows every solver step on node ``node_id`` and stops at once when the user cancels.

    Fixed-step solvers report ``step`` of ``total_steps``; the adaptive dopri5 does not know its step count, so its
    flow time ``t`` (0 is noise, 1 is done) is shown as a fraction, in thousandths."""
    scale = 1000
    state: dict[str, Any] = {}

    def report(progress: Any) -> None:
        throw_if_interrupted()
        total = progress.total_steps
        if "bar" not in state:
            state["bar"] = progress_bar(total if total else scale, node_id)
        if total:
            state["bar"].update_absolute(progress.step, total)
        else:
            state["bar"].update_absolute(min(scale, round(progress.t * scale)), scale)

    return report
