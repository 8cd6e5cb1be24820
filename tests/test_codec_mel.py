"""The log-mel front-end: official recipe, exact frame count, librosa's Slaney filterbank without librosa."""

from __future__ import annotations

import math

import pytest
import torch

from vssflow_core.codec.mel import (
    MEL_PAD_VALUE,
    LogMelFrontend,
    hz_to_slaney_mel,
    log_mel_spectrogram,
    slaney_mel_filterbank,
    slaney_mel_to_hz,
)
from vssflow_core.config import MEL, SEQUENCE

from golden import assert_matches_golden


def test_mel_rates_agree_with_the_sequence_rates() -> None:
    # the VAE's 25 latent frames per second and the video alignment assume 100 mel frames per second at 16 kHz
    assert (MEL.sample_rate, MEL.hop_length) == (SEQUENCE.sample_rate, SEQUENCE.mel_hop_length)


def test_filterbank_equals_librosa_slaney() -> None:
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(
        sr=MEL.sample_rate, n_fft=MEL.n_fft, n_mels=MEL.n_mels, fmin=MEL.f_min, fmax=MEL.f_max
    )
    ours = slaney_mel_filterbank(MEL.sample_rate, MEL.n_fft, MEL.n_mels, MEL.f_min, MEL.f_max)
    assert ours.shape == (MEL.n_mels, MEL.n_fft // 2 + 1) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, torch.from_numpy(expected), rtol=1e-6, atol=1e-8)


def test_filterbank_equals_librosa_for_other_settings() -> None:
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=22050, n_fft=512, n_mels=80, fmin=30.0, fmax=None)
    ours = slaney_mel_filterbank(22050, 512, 80, 30.0, None)
    torch.testing.assert_close(ours, torch.from_numpy(expected), rtol=1e-6, atol=1e-8)


def test_slaney_scale_is_linear_below_1khz_and_invertible() -> None:
    hz = torch.tensor([0.0, 200.0, 1000.0, 4000.0, 8000.0], dtype=torch.float64)
    mel = hz_to_slaney_mel(hz)
    assert mel[1].item() == pytest.approx(3.0) and mel[2].item() == pytest.approx(15.0)
    torch.testing.assert_close(slaney_mel_to_hz(mel), hz)


def test_golden_log_mel(load_golden) -> None:
    golden = load_golden("mel_frontend")
    log_mel = LogMelFrontend()(golden["waveform"])
    assert log_mel.shape == golden["log_mel"].shape
    assert_matches_golden(log_mel, golden["log_mel"])


def test_ten_seconds_give_exactly_1000_frames_of_64_bins() -> None:
    waveform = torch.randn(2, SEQUENCE.num_samples)
    log_mel = LogMelFrontend()(waveform)
    assert log_mel.shape == (2, SEQUENCE.mel_frames, MEL.n_mels) == (2, 1000, 64)


def test_one_frame_per_hop_for_any_whole_number_of_hops() -> None:
    frontend = LogMelFrontend()
    for hops in (7, 250):
        assert frontend(torch.randn(1, hops * MEL.hop_length)).shape == (1, hops, MEL.n_mels)


def test_requested_length_pads_with_the_official_value_or_crops() -> None:
    frontend = LogMelFrontend()
    waveform = torch.randn(1, 50 * MEL.hop_length)
    full = frontend(waveform)
    padded = frontend(waveform, num_frames=60)
    assert torch.equal(padded[:, :50], full) and torch.all(padded[:, 50:] == MEL_PAD_VALUE)
    assert torch.equal(frontend(waveform, num_frames=40), full[:, :40])


def test_level_and_dc_offset_do_not_matter() -> None:
    # every clip is mean-centred and peak-normalised to 0.5 before the STFT
    frontend = LogMelFrontend()
    waveform = torch.randn(1, 16_000, dtype=torch.float64)
    torch.testing.assert_close(frontend(3.0 * waveform + 0.2), frontend(waveform))


def test_clips_in_a_batch_are_normalised_independently() -> None:
    frontend = LogMelFrontend()
    quiet, loud = torch.randn(1, 16_000) * 0.01, torch.randn(1, 16_000)
    batch = frontend(torch.cat([quiet, loud]))
    torch.testing.assert_close(batch[:1], frontend(quiet), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batch[1:], frontend(loud), rtol=1e-5, atol=1e-5)


def test_silence_sits_at_the_natural_log_floor() -> None:
    log_mel = LogMelFrontend()(torch.zeros(SEQUENCE.mel_hop_length * 10))
    assert log_mel.shape == (10, MEL.n_mels)
    torch.testing.assert_close(log_mel, torch.full_like(log_mel, math.log(MEL.log_floor)))


def test_functional_form_matches_module() -> None:
    waveform = torch.randn(1, 8_000)
    assert torch.equal(log_mel_spectrogram(waveform), LogMelFrontend()(waveform))


def test_frontend_has_no_weights() -> None:
    assert LogMelFrontend().state_dict() == {}
