"""Audio files in and out: soundfile for wav/flac, PyAV for what libsndfile cannot read (m4a, mp4, ...).

Every write is atomic: the data goes to a temporary file in the destination folder, which is renamed onto the final
name only once it is complete, so a crash, a full disk or a cancelled run never leaves a half-written file behind, and
an existing file is never replaced unless the caller asks for it.  :func:`atomic_output` is shared with the muxer.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .temporary import temporary_path

__all__ = ["AUDIO_FORMATS", "AudioReadError", "OutputPathError", "atomic_output", "check_output_path", "read_audio",
           "temporary_path", "write_audio"]

# suffix -> (libsndfile major format, default subtype).  16-bit PCM is what the official code's saved wavs hold and
# what every player accepts; float can be asked for.
AUDIO_FORMATS: dict[str, tuple[str, str]] = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}


class OutputPathError(OSError):
    """The output cannot be written where it was asked for (folder missing and not creatable, not a folder,
    no permission)."""


class AudioReadError(ValueError):
    """A file that should hold audio cannot be decoded as audio."""


# --------------------------------------------------------------------------------------------------------------------
# Atomic output
# --------------------------------------------------------------------------------------------------------------------

# What the temporary name adds to the final one: ".NAME.<8 random>.partial.mp4" (the re-encoded picture's
# ".NAME.<8 random>.picture.mp4" adds as much).
TEMPORARY_NAME_EXTRA = len("." + "." + "12345678" + ".partial")


def _exists(folder: Path) -> bool:
    try:
        return folder.exists()
    except OSError:  # a path too long to look up
        return False


def _limit(folder: Path, name: str, default: int) -> int:
    """The file system's ``pathconf`` limit for the nearest existing folder above ``folder``."""
    while not _exists(folder) and folder != folder.parent:
        folder = folder.parent
    try:
        return int(os.pathconf(folder, name))
    except (OSError, ValueError):
        return default


def check_output_path(path: str | os.PathLike, what: str = "output file name") -> Path:
    """``path`` as a Path, or :class:`OutputPathError` naming the problem when no file system could store it: a NUL
    byte, or a name (or whole path) longer than the folder's file system allows, counting the temporary name the
    file is written under.  ``what`` names the setting to change (``"filename_prefix"``, ``"-o"``)."""
    text = os.fspath(path)
    if "\x00" in text:
        shown = next(part for part in text.split(os.sep) if "\x00" in part)
        raise OutputPathError(f"the {what} contains a NUL byte (\\x00, in {shown!r}), which no file system allows in "
                              f"a name; remove it from the {what}")
    path = Path(text).expanduser()
    name_max = _limit(path.parent, "PC_NAME_MAX", 255)
    for part in (*path.parent.parts, path.name):
        size = len(os.fsencode(part))
        allowed = name_max - TEMPORARY_NAME_EXTRA if part == path.name else name_max
        if size > allowed:
            shown = part if len(part) <= 40 else part[:40] + "..."
            extra = (f" ({name_max}, the file system's limit, less {TEMPORARY_NAME_EXTRA} for the temporary name "
                     f"the file is written under)") if part == path.name else " (the file system's limit)"
            raise OutputPathError(f"the {what} is too long: the name {shown!r} is {size} bytes, more than the "
                                  f"{allowed} allowed here{extra}; shorten the {what}")
    path_max = _limit(path.parent, "PC_PATH_MAX", 4096)
    size = len(os.fsencode(str(path.absolute()))) + TEMPORARY_NAME_EXTRA
    if size >= path_max:
        raise OutputPathError(f"the {what} is too long: the full path of the output would be {size} bytes, and this "
                              f"file system allows {path_max - 1}; use a shorter {what} or a folder nearer the root")
    return path


def _prepare_folder(path: Path) -> None:
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: the folder {folder} cannot be created ({exc.strerror or exc})") \
            from None


def _usual_permissions(path: Path) -> None:
    """mkstemp makes owner-only files; a published output gets what a plain ``open(path, "w")`` would (0666 minus
    the umask), so other users and tools can read it as usual."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    _usual_permissions(tmp)
    if overwrite:
        os.replace(tmp, path)
        return
    # A hard link fails if the name exists, so a file that appeared while we were working is not clobbered.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; choose another name or allow overwriting") from None
    except OSError:  # file systems without hard links (FAT, some network shares): check, then rename
        if path.exists():
            raise FileExistsError(f"{path} exists; choose another name or allow overwriting") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it becomes ``path``, on an exception it is deleted.

    The temporary name keeps the real suffix last, so libraries that pick the format from the extension still do.
    Raises ``FileExistsError`` up front (and again at the end, if the name appeared meanwhile) unless ``overwrite``,
    and :class:`OutputPathError` when the folder cannot be written.
    """
    path = check_output_path(path)
    if path.is_dir():
        raise OutputPathError(f"cannot write {path}: it is a folder; give a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another name or allow overwriting")
    _prepare_folder(path)
    with contextlib.ExitStack() as stack:
        try:  # deleted on any exit, a termination signal included (see .temporary)
            tmp = stack.enter_context(temporary_path(path.parent, f".{path.stem}.", f".partial{path.suffix}"))
        except OSError as exc:
            raise OutputPathError(f"cannot write to the folder {path.parent}: {exc.strerror or exc}") from None
        yield tmp
        _publish(tmp, path, overwrite)


# --------------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------------


def _as_samples_by_channels(waveform: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[T]`` or channels-first ``[C, T]`` (a ComfyUI ``[1, C, T]`` batch of one too) -> float32 ``[T, C]``."""
    x = waveform.detach().float().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"waveform must be [samples] or [channels, samples], got shape {tuple(x.shape)}")
    if x.shape[0] > x.shape[1]:
        raise ValueError(f"waveform of shape {tuple(x.shape)} has more channels than samples; pass [channels, samples]")
    if x.shape[1] == 0:
        raise ValueError("waveform is empty")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("waveform contains NaN or infinite samples")
    return np.ascontiguousarray(x.T)


def write_audio(
    path: str | os.PathLike,
    waveform: torch.Tensor | np.ndarray,
    sample_rate: int,
    *,
    subtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``waveform`` (``[samples]`` or ``[channels, samples]``, float in [-1, 1]) as .wav or .flac, atomically.

    ``subtype`` is a libsndfile subtype (``"PCM_16"`` by default, ``"PCM_24"``, ``"FLOAT"`` for wav).  Samples outside
    [-1, 1] are clipped by the integer subtypes, as any PCM writer does.
    """
    import soundfile as sf

    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in AUDIO_FORMATS:
        raise ValueError(f"cannot write audio as '{path.suffix}': use one of {', '.join(AUDIO_FORMATS)}")
    if int(sample_rate) <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    major, default_subtype = AUDIO_FORMATS[suffix]
    data = _as_samples_by_channels(waveform)
    with atomic_output(path, overwrite=overwrite) as tmp:
        sf.write(str(tmp), data, int(sample_rate), format=major, subtype=subtype or default_subtype)
    return path


# --------------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------------


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode an audio file (or the first audio track of a video) -> (float32 ``[channels, samples]``, sample rate).

    soundfile first (wav, flac, ogg, mp3 ...), PyAV for everything FFmpeg can open (m4a, aac, mp4, webm ...).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        samples = np.ascontiguousarray(data.T)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        samples, rate = _read_with_pyav(path)
    if samples.shape[1] == 0:
        raise AudioReadError(f"{path}: the audio is empty (0 samples)")
    return samples, int(rate)


def _read_with_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av

    from ..video.pyav_reader import open_input

    try:
        container = open_input(path)
    except av.FFmpegError as exc:
        raise AudioReadError(f"{path}: not an audio file FFmpeg can read ({exc})") from None
    with container:
        if not container.streams.audio:
            raise AudioReadError(f"{path}: the file has no audio stream")
        stream = container.streams.audio[0]
        # planar float keeps every channel; no resampling here (callers resample with the library's own resampler)
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except av.FFmpegError as exc:
            raise AudioReadError(f"{path}: the audio cannot be decoded ({exc})") from None
        rate = stream.rate
    if not chunks:
        raise AudioReadError(f"{path}: the audio stream holds no samples")
    return np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32), int(rate)
