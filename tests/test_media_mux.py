"""Audio files and muxing: atomic writes, bit-exact video stream copy, AAC length, mixing, clear refusals."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vssflow_core.config import SEQUENCE
from vssflow_core.media import (
    MuxError,
    OutputPathError,
    mux_audio,
    read_audio,
    video_duration,
    write_audio,
)
from vssflow_core.media.audio_io import TEMPORARY_NAME_EXTRA
from vssflow_core.media.mux import AAC_FRAME_SAMPLES
from vssflow_core.video import NotAVideoError, NoVideoStreamError, VideoNotFoundError
from vssflow_core.video.synthetic import make_counter_video

SR = SEQUENCE.sample_rate


# --------------------------------------------------------------------------------------------------------------------
# Helpers (also used by test_pipeline)
# --------------------------------------------------------------------------------------------------------------------


def sine(freq: float, seconds: float, rate: int = SR, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


def make_video_with_audio(path: Path, seconds: float = 3.0, fps: int = 25, freq: float = 440.0,
                          rate: int = 48_000, layout: str = "stereo") -> Path:
    """A 64x48 H.264 video with an AAC sine track (the same tone on every channel) of the same length."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=rate, layout=layout)
        for i in range(round(seconds * fps)):
            picture = np.full((48, 64, 3), (i * 3) % 256, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        tone = np.stack([sine(freq, seconds, rate)] * audio.layout.nb_channels)
        for start in range(0, tone.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                               layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def video_packet_digest(path: Path) -> tuple[str, int]:
    """md5 over the video packets' bytes, in stream order, and the packet count."""
    import av

    digest, count = hashlib.md5(), 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                digest.update(bytes(packet))
                count += 1
    return digest.hexdigest(), count


def decoded_audio(path: Path) -> tuple[np.ndarray, int, str]:
    """(float32 [channels, samples], rate, codec name) of the first audio stream."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        frames = [f.to_ndarray() for f in container.decode(stream)]
        rate = stream.rate
    return np.concatenate(frames, axis=1).astype(np.float32), rate, codec


def band_energy(signal: np.ndarray, rate: int, freq: float, width: float = 20.0) -> float:
    spectrum = np.abs(np.fft.rfft(signal)) ** 2
    freqs = np.fft.rfftfreq(signal.size, 1 / rate)
    return float(spectrum[(freqs > freq - width) & (freqs < freq + width)].sum() / spectrum.sum())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


@pytest.fixture(scope="module")
def silent_video(tmp_path_factory) -> Path:
    return Path(make_counter_video(tmp_path_factory.mktemp("src") / "silent.mp4", 75, 25))


@pytest.fixture(scope="module")
def sound_video(tmp_path_factory) -> Path:
    return make_video_with_audio(tmp_path_factory.mktemp("src") / "with_audio.mp4")


# --------------------------------------------------------------------------------------------------------------------
# Audio files
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_audio_exact_length_and_refuses_overwrite(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    wave = sine(440, 1.5)
    write_audio(path, wave, SR)
    data, rate = sf.read(str(path), dtype="float32")
    assert rate == SR and data.shape == (wave.size,)
    np.testing.assert_allclose(data, wave, atol=1 / 2**14)  # 16-bit PCM
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        write_audio(path, wave * 0, SR)
    assert path.read_bytes() == before
    write_audio(path, wave * 0, SR, overwrite=True)
    assert np.abs(sf.read(str(path))[0]).max() == 0
    assert leftovers(tmp_path) == []


def test_write_audio_rejects_bad_input_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match=".wav"):
        write_audio(tmp_path / "out.mp3", sine(440, 0.1), SR)
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "out.wav", np.full(100, np.nan, np.float32), SR)
    assert list(tmp_path.iterdir()) == []


def test_write_audio_channels_first_and_unwritable_folder(tmp_path):
    stereo = np.stack([sine(440, 0.5), sine(880, 0.5)])
    write_audio(tmp_path / "stereo.wav", stereo, SR)
    data, _ = read_audio(tmp_path / "stereo.wav")
    assert data.shape == stereo.shape
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputPathError, match="not a folder"):
        write_audio(blocker / "out.wav", stereo, SR)


def test_read_audio_falls_back_to_pyav(sound_video):
    audio, rate = read_audio(sound_video)  # AAC in mp4: libsndfile cannot, PyAV can
    assert rate == 48_000 and audio.shape[0] == 2
    assert abs(audio.shape[1] / rate - 3.0) < 0.05


# --------------------------------------------------------------------------------------------------------------------
# Muxing
# --------------------------------------------------------------------------------------------------------------------


def test_stream_copy_is_bit_exact_and_audio_matches_video_length(tmp_path, silent_video):
    out = tmp_path / "out.mp4"
    result = mux_audio(silent_video, sine(440, 3.0), SR, out)
    assert video_packet_digest(out) == video_packet_digest(silent_video)
    assert result.duration == pytest.approx(3.0) == pytest.approx(video_duration(silent_video))
    audio, rate, codec = decoded_audio(out)
    assert codec == "aac" and rate == SR and audio.shape[0] == 1
    # AAC pads the last frame: the decoded length is the video's within one AAC frame
    assert 0 <= audio.shape[1] - round(3.0 * SR) < AAC_FRAME_SAMPLES
    assert band_energy(audio[0], rate, 440) > 0.9
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("seconds", [1.0, 5.0])
def test_audio_is_padded_or_cut_to_the_video(tmp_path, silent_video, seconds):
    out = tmp_path / "out.mp4"
    mux_audio(silent_video, sine(440, seconds), SR, out)
    audio, rate, _ = decoded_audio(out)
    assert 0 <= audio.shape[1] - 3 * SR < AAC_FRAME_SAMPLES
    if seconds < 3:  # silence after the waveform ends
        assert np.abs(audio[0, round(1.2 * SR):round(2.9 * SR)]).max() < 1e-3


def test_mux_refuses_to_overwrite(tmp_path, silent_video):
    out = tmp_path / "out.mp4"
    mux_audio(silent_video, sine(440, 3.0), SR, out)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        mux_audio(silent_video, sine(880, 3.0), SR, out)
    assert out.read_bytes() == before
    mux_audio(silent_video, sine(880, 3.0), SR, out, overwrite=True)
    assert band_energy(decoded_audio(out)[0][0], SR, 880) > 0.9
    assert leftovers(tmp_path) == []


def test_mixing_keeps_both_tracks(tmp_path, sound_video):
    generated = sine(1000, 3.0)
    plain = mux_audio(sound_video, generated, SR, tmp_path / "plain.mp4")
    mixed = mux_audio(sound_video, generated, SR, tmp_path / "mixed.mp4", mix_original=True)
    assert not plain.mixed_original and mixed.mixed_original
    assert mixed.audio_sample_rate == 48_000 and mixed.audio_channels == 2  # the original's bandwidth is kept

    audio, rate, _ = decoded_audio(tmp_path / "plain.mp4")
    assert band_energy(audio[0], rate, 440) < 0.01 and band_energy(audio[0], rate, 1000) > 0.9
    audio, rate, _ = decoded_audio(tmp_path / "mixed.mp4")
    for channel in audio:
        assert band_energy(channel, rate, 440) > 0.3 and band_energy(channel, rate, 1000) > 0.3

    # gains: the original alone
    mux_audio(sound_video, generated, SR, tmp_path / "orig.mp4", mix_original=True, generated_gain=0.0)
    audio, rate, _ = decoded_audio(tmp_path / "orig.mp4")
    assert band_energy(audio[0], rate, 440) > 0.9 and band_energy(audio[0], rate, 1000) < 0.01
    assert video_packet_digest(tmp_path / "mixed.mp4") == video_packet_digest(sound_video)


def test_a_surround_original_is_kept_folded_to_stereo_and_the_log_says_why(tmp_path, caplog):
    """The generated track is mono and the delivered mix is measured and limited as one programme, so a 5.1 original
    kept under it is folded down to stereo (FFmpeg's downmix), and the log says so and what to do instead."""
    surround = make_video_with_audio(tmp_path / "surround.mp4", layout="5.1")
    with caplog.at_level("WARNING", logger="vssflow_core.media.mux"):
        mixed = mux_audio(surround, sine(1000, 3.0), SR, tmp_path / "mixed.mp4", mix_original=True)
    assert mixed.audio_channels == 2
    audio, rate, _ = decoded_audio(tmp_path / "mixed.mp4")
    for channel in audio:
        assert band_energy(channel, rate, 440) > 0.1 and band_energy(channel, rate, 1000) > 0.1  # both are heard
    assert any("5.1" in r.getMessage() and "stereo" in r.getMessage() for r in caplog.records), caplog.text


def test_loud_mix_is_scaled_down_not_clipped(tmp_path, sound_video):
    result = mux_audio(sound_video, sine(1000, 3.0, amplitude=0.9), SR, tmp_path / "loud.mp4", mix_original=True,
                       original_gain=3.0)
    assert result.normalized
    assert np.abs(decoded_audio(tmp_path / "loud.mp4")[0]).max() < 1.1


def test_rotation_survives_the_copy(tmp_path):
    import av

    src = make_counter_video(tmp_path / "rotated.mp4", 25, 25, rotation=90)
    mux_audio(src, sine(440, 1.0), SR, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert next(container.decode(video=0)).rotation == 90


def test_clear_errors_and_nothing_written(tmp_path, silent_video):
    wave = sine(440, 1.0)
    with pytest.raises(VideoNotFoundError, match="no such file"):
        mux_audio(tmp_path / "missing.mp4", wave, SR, tmp_path / "a.mp4")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 20)
    with pytest.raises(NotAVideoError):
        mux_audio(fake, wave, SR, tmp_path / "b.mp4")
    wav = tmp_path / "sound.wav"
    sf.write(str(wav), wave, SR)
    with pytest.raises(NoVideoStreamError, match="no video stream"):
        mux_audio(wav, wave, SR, tmp_path / "c.mp4")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="not a folder"):
        mux_audio(silent_video, wave, SR, blocker / "d.mp4")
    with pytest.raises(ValueError, match=".mp4"):
        mux_audio(silent_video, wave, SR, tmp_path / "e.avi")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "notes.mp4", "sound.wav"]


def test_failure_while_writing_leaves_nothing(tmp_path, silent_video, monkeypatch):
    import vssflow_core.media.mux as mux

    def broken(*args, **kwargs):
        raise MuxError("simulated encoder failure")

    monkeypatch.setattr(mux, "_write", broken)
    with pytest.raises(MuxError, match="simulated"):
        mux_audio(silent_video, sine(440, 1.0), SR, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_the_usual_file_permissions(tmp_path):
    """Written through an owner-only temporary file, published with what open(path, "w") would give."""
    import os

    umask = os.umask(0o022)
    try:
        out = write_audio(tmp_path / "out.wav", np.zeros((1, 1600), np.float32), 16_000)
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644


def name_max(folder: Path) -> int:
    import os

    return os.pathconf(folder, "PC_NAME_MAX")


@pytest.mark.parametrize("name, problem", [
    (lambda limit: "take\x00.wav", r"contains a NUL byte \(\\x00, in 'take\\x00\.wav'\), which no file system "
                                   r"allows in a name; remove it"),
    (lambda limit: "t" * limit + ".wav", r"too long: the name 't+\.\.\.' is \d+ bytes, more than the \d+ allowed here "
                                          r"\(\d+, the file system's limit, less 18 for the temporary name.*shorten"),
    (lambda limit: "d" * (limit + 1) + "/take.wav", r"too long: the name 'd+\.\.\.' is \d+ bytes, more than the \d+ "
                                                    r"allowed here \(the file system's limit\)"),
], ids=["NUL byte", "long file name", "long folder name"])
def test_unstorable_output_names_are_refused_with_the_reason(tmp_path, name, problem):
    # before: Python's "embedded null byte" and "[Errno 36] File name too long"
    with pytest.raises(OutputPathError, match=problem):
        write_audio(tmp_path / name(name_max(tmp_path)), sine(440, 0.1), SR)
    assert list(tmp_path.iterdir()) == []


def test_the_longest_storable_name_is_written(tmp_path):
    longest = "t" * (name_max(tmp_path) - TEMPORARY_NAME_EXTRA - len(".wav")) + ".wav"  # room for the temporary name
    out = write_audio(tmp_path / longest, sine(440, 0.1), SR)
    assert out.is_file() and leftovers(tmp_path) == []
