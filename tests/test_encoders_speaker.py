"""Speaker reference recipe (windows, wrap padding, averaging) and the sinc resampler it relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from vssflow_core.codec import resample as resample_module
from vssflow_core.codec.resample import resample, resample_length
from vssflow_core.config import SEQUENCE, VSSFlowConfig
from vssflow_core.encoders.rawnet3 import RawNet3Config, load_rawnet3
from vssflow_core.encoders.speaker import (
    NUM_WINDOWS,
    WINDOW_SEC,
    SpeakerReference,
    no_speaker_embedding,
    prepare_reference,
    reference_windows,
    speaker_embedding,
    window_starts,
    wrap_pad,
)

WINDOW = round(WINDOW_SEC * SEQUENCE.sample_rate)


# ------------------------------------------------------------------------------------------------------------------
# windows and padding (no model needed)


def test_window_constants_follow_the_official_recipe():
    assert WINDOW == 48_000 and NUM_WINDOWS == 10 and SEQUENCE.sample_rate == 16_000


@pytest.mark.parametrize("length", [WINDOW, WINDOW + 1, WINDOW + 9, 100_003, 16_000 * 37])
def test_window_starts_are_truncated_linspace(length):
    starts = window_starts(length, WINDOW)
    expected = [int(s) for s in np.linspace(0, length - WINDOW, 10)]
    assert starts == expected
    assert starts[0] == 0 and starts[-1] == length - WINDOW
    assert all(a <= b for a, b in zip(starts, starts[1:]))


def test_window_starts_rejects_short_clips():
    with pytest.raises(ValueError, match="wrap-pad"):
        window_starts(WINDOW - 1, WINDOW)


def test_wrap_pad_repeats_short_clips_like_numpy_wrap():
    clip = torch.arange(20_000, dtype=torch.float32)
    padded = wrap_pad(clip, WINDOW)
    # the official code pads by (window - len + 1): one sample more than the window
    expected = np.pad(clip.numpy(), (0, WINDOW - clip.numel() + 1), mode="wrap")
    assert padded.shape[-1] == WINDOW + 1
    np.testing.assert_array_equal(padded.numpy(), expected)


def test_wrap_pad_leaves_long_clips_alone():
    clip = torch.randn(WINDOW)
    assert wrap_pad(clip, WINDOW) is clip


def test_short_clip_windows_start_at_zero_except_the_last():
    clip = torch.arange(1_000, dtype=torch.float32)
    windows = reference_windows(clip, WINDOW)
    assert windows.shape == (10, WINDOW)
    for w in windows[:-1]:
        torch.testing.assert_close(w, torch.arange(WINDOW, dtype=torch.float32) % 1_000)
    torch.testing.assert_close(windows[-1], (torch.arange(WINDOW, dtype=torch.float32) + 1) % 1_000)


def test_long_clip_windows_cover_start_and_end():
    clip = torch.arange(100_000, dtype=torch.float32)
    windows = reference_windows(clip, WINDOW)
    assert windows[0, 0] == 0 and windows[-1, -1] == 99_999
    starts = [int(w[0]) for w in windows]
    assert starts == window_starts(100_000, WINDOW)


# ------------------------------------------------------------------------------------------------------------------
# waveform preparation


def test_prepare_reference_averages_channels_then_resamples():
    stereo = torch.randn(2, 4_410, dtype=torch.float64)
    out = prepare_reference(stereo, 44_100)
    expected = resample(stereo.mean(0), 44_100, SEQUENCE.sample_rate).float()
    assert out.dtype == torch.float32 and out.shape == (resample_length(4_410, 44_100, 16_000),)
    torch.testing.assert_close(out, expected)


def test_prepare_reference_accepts_numpy_int16_and_batch_of_one():
    pcm = (np.sin(np.arange(1_600) / 5) * 20_000).astype(np.int16)
    out = prepare_reference(pcm[None, None, :], 16_000)
    torch.testing.assert_close(out, torch.from_numpy(pcm.astype(np.float32) / 32768.0))


@pytest.mark.parametrize(
    "audio, match",
    [
        (torch.randn(1_000, 2), "channels-first"),
        (torch.zeros(0), "empty"),
        (torch.tensor([0.0, float("nan"), 0.0]), "NaN"),
        (torch.zeros(2, 2, 100), "shape"),
    ],
)
def test_prepare_reference_rejects_bad_audio(audio, match):
    with pytest.raises(ValueError, match=match):
        prepare_reference(audio, 16_000)


def test_no_reference_is_a_zero_vector_of_the_model_width():
    assert torch.equal(no_speaker_embedding(), torch.zeros(VSSFlowConfig.speaker_dim))


# ------------------------------------------------------------------------------------------------------------------
# the embedding: the recipe with a recording stand-in, then the small golden RawNet3 end to end


class _RecordingEncoder(torch.nn.Module):
    """Stands in for RawNet3: remembers every batch of windows, "embeds" a window as its first samples."""

    def __init__(self, n_out: int = 4) -> None:
        super().__init__()
        self.config = RawNet3Config(n_out=n_out)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the recipe a device and dtype
        self.batches: list[torch.Tensor] = []

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        self.batches.append(windows.clone())
        return windows[:, : self.config.n_out] * 1.0


def _fed_windows(encoder: _RecordingEncoder) -> torch.Tensor:
    return torch.cat(encoder.batches)


def test_embedding_is_the_mean_over_the_ten_windows():
    encoder = _RecordingEncoder().eval()
    clip = torch.randn(78_011)  # uneven window starts
    out = speaker_embedding(encoder, clip, SEQUENCE.sample_rate, batch_size=3)
    starts = [int(s) for s in np.linspace(0, clip.numel() - WINDOW, 10)]
    expected = torch.stack([clip[s : s + WINDOW] for s in starts])
    assert [b.shape[0] for b in encoder.batches] == [3, 3, 3, 1]
    torch.testing.assert_close(_fed_windows(encoder), expected, rtol=0, atol=0)
    torch.testing.assert_close(out, expected[:, :4].mean(0))  # plain mean, not normalised


def test_short_clip_is_wrap_padded_before_embedding():
    encoder = _RecordingEncoder().eval()
    clip = torch.randn(12_345)
    speaker_embedding(encoder, clip)
    padded = torch.from_numpy(np.pad(clip.numpy(), (0, WINDOW - clip.numel() + 1), mode="wrap"))
    expected = torch.stack([padded[:WINDOW]] * 9 + [padded[1 : 1 + WINDOW]])
    torch.testing.assert_close(_fed_windows(encoder), expected, rtol=0, atol=0)


def test_other_rates_and_channels_go_through_the_resampler():
    encoder = _RecordingEncoder().eval()
    stereo_48k = torch.randn(2, 3 * 48_000 + 123)
    SpeakerReference(encoder)(stereo_48k, 48_000)
    mono_16k = resample(stereo_48k.double().mean(0), 48_000, 16_000).float()
    torch.testing.assert_close(_fed_windows(encoder), reference_windows(mono_16k, WINDOW))


def test_no_reference_gives_zeros_of_the_encoder_width():
    ref = SpeakerReference(_RecordingEncoder(n_out=7))
    assert torch.equal(ref(None), torch.zeros(7)) and ref.dim == 7


def test_exact_three_second_clip_gives_the_official_embedding(load_golden):
    tensors = dict(load_golden("rawnet3_small"))
    waveform, embedding = tensors.pop("waveform_3s"), tensors.pop("embedding")
    model = load_rawnet3(tensors)
    out = speaker_embedding(model, waveform[0], SEQUENCE.sample_rate)  # ten identical windows
    assert out.shape == embedding[0].shape
    torch.testing.assert_close(out, embedding[0], rtol=1e-4, atol=1e-5)


def test_training_mode_is_refused():
    with pytest.raises(RuntimeError, match="eval"):
        speaker_embedding(_RecordingEncoder().train(), torch.randn(WINDOW))


# ------------------------------------------------------------------------------------------------------------------
# resampler against scipy.signal.resample_poly

RATIOS = [(44_100, 16_000), (48_000, 16_000), (22_050, 16_000), (8_000, 16_000), (16_000, 48_000)]
# resample_poly's own design: Kaiser(beta=5) window over 10 zero crossings, cut-off at the lower Nyquist rate
POLY_DESIGN = dict(lowpass_filter_width=10, rolloff=1.0, window="kaiser", beta=5.0)


def _poly(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    g = math.gcd(orig, new)
    return resample_poly(x, new // g, orig // g, axis=-1)


def _tone(freq: float, rate: int, seconds: float = 0.5, phase: float = 0.3) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate + phase)


@pytest.mark.parametrize("orig, new", RATIOS)
def test_same_filter_design_matches_resample_poly_on_tones_and_noise(orig, new):
    nyquist = min(orig, new) / 2
    signals = [_tone(f * nyquist, orig) for f in (0.02, 0.3, 0.6, 0.85)]
    signals.append(np.random.default_rng(orig + new).standard_normal(orig // 2))
    x = np.stack(signals)
    ours = resample(torch.from_numpy(x), orig, new, **POLY_DESIGN).numpy()
    theirs = _poly(x, orig, new)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=3e-3)  # edges included


@pytest.mark.parametrize("orig, new", RATIOS)
def test_default_design_matches_resample_poly_in_band(orig, new):
    nyquist = min(orig, new) / 2
    x = np.stack([_tone(f * nyquist, orig) for f in (0.02, 0.25, 0.5)])
    ours = resample(torch.from_numpy(x), orig, new).numpy()
    theirs = _poly(x, orig, new)
    margin = new // 20  # the two filters differ in length, hence in their edge transients
    np.testing.assert_allclose(ours[:, margin:-margin], theirs[:, margin:-margin], atol=1e-2)
    # and both are the ideal resampled tone
    ideal = np.stack([_tone(f * nyquist, new, seconds=ours.shape[-1] / new) for f in (0.02, 0.25, 0.5)])
    np.testing.assert_allclose(ours[:, margin:-margin], ideal[:, margin:-margin], atol=1e-2)


def test_gather_path_equals_dense_path(monkeypatch):
    x = torch.randn(3, 5_000, dtype=torch.float64)
    dense = resample(x, 44_100, 16_000)
    monkeypatch.setattr(resample_module, "_DENSE_LIMIT", 0)
    torch.testing.assert_close(resample(x, 44_100, 16_000), dense, rtol=0, atol=1e-12)


def test_awkward_ratio_keeps_a_tone():
    orig, new = 44_101, 16_000  # gcd 1: too many phases for a dense kernel
    y = resample(torch.from_numpy(_tone(1_000.0, orig)), orig, new).numpy()
    assert y.shape[-1] == resample_length(round(orig * 0.5), orig, new)
    ideal = _tone(1_000.0, new, seconds=y.shape[-1] / new)
    np.testing.assert_allclose(y[800:-800], ideal[800:-800], atol=2e-3)


def test_shapes_dtypes_and_identity():
    x = torch.randn(2, 3, 441, dtype=torch.float32)
    y = resample(x, 44_100, 16_000)
    assert y.shape == (2, 3, 160) and y.dtype == torch.float32
    assert resample(x.half(), 44_100, 16_000).dtype == torch.float16
    assert torch.equal(resample(x, 16_000, 16_000), x)
    assert resample(torch.zeros(0), 8_000, 16_000).shape == (0,)
    assert resample_length(7, 3, 2) == 5  # ceil(7 * 2 / 3)
    with pytest.raises(ValueError):
        resample(x, 44_100.5, 16_000)
    with pytest.raises(TypeError):
        resample(torch.zeros(4, dtype=torch.int16), 8_000, 16_000)
