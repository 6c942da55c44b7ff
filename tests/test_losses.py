"""Losses and the spectral-convergence metric against hand-computed values."""

import math

import pytest
import torch

from openjukebox.vqvae.config import STFTSetting
from openjukebox.vqvae.losses import (log_spectral_loss, low_passed, reconstruction_loss, spectral_convergence_db,
                                     spectral_loss)

SETTING = STFTSetting(256, 64, 256)


def _music(batch=2, n=4096):
    t = torch.arange(n) / 16000
    tones = torch.stack([torch.sin(2 * math.pi * f * t) for f in (220.0, 330.0)[:batch]])
    return (0.5 * tones)[:, None]


def test_spectral_convergence_of_half_amplitude_is_minus_6_db():
    x = _music()
    # |STFT(x/2)| = |STFT(x)|/2, so the ratio is exactly 1/2: 20·log10(0.5).
    assert spectral_convergence_db(x, 0.5 * x, SETTING).tolist() == pytest.approx([20 * math.log10(0.5)] * 2, abs=1e-4)
    assert spectral_convergence_db(x, torch.zeros_like(x), SETTING).tolist() == pytest.approx([0.0, 0.0], abs=1e-5)


def test_spectral_convergence_of_silence_is_nan_not_infinite():
    x = torch.zeros(1, 1, 4096)
    assert math.isnan(spectral_convergence_db(x, x + 0.1, SETTING).item())


def test_spectral_loss_is_relative_frobenius_distance():
    x = _music()
    settings = (SETTING, STFTSetting(128, 32, 128))
    assert spectral_loss(x, 0.5 * x, settings).item() == pytest.approx(0.5, rel=1e-5)
    assert spectral_loss(x, x, settings).item() == pytest.approx(0.0, abs=1e-6)


def test_reconstruction_loss_is_mse_over_signal_power_plus_linf():
    x = _music()
    power = x.pow(2).mean().item()  # 0.125 for a 0.5-amplitude sine
    assert reconstruction_loss(x, x + 0.1).item() == pytest.approx(0.01 / power, rel=1e-4)
    # L∞ term: every clip's largest error is 0.1, divided by the RMS of the batch.
    assert reconstruction_loss(x, x + 0.1, linf_weight=0.02).item() == pytest.approx(
        0.01 / power + 0.02 * 0.1 / math.sqrt(power), rel=1e-4)


def test_log_spectral_loss_of_twice_the_amplitude_is_log_2_in_every_bin():
    """|STFT(2x)| = 2|STFT(x)| exactly: far above the floor every bin's log ratio is log 2."""
    x = 0.1 * torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(0))
    assert log_spectral_loss(x, 2 * x, (SETTING,), floor_db=-200).item() == pytest.approx(math.log(2), abs=1e-5)
    assert log_spectral_loss(x, x, (SETTING, STFTSetting(128, 32, 128))).item() == 0.0


def test_log_spectral_loss_hears_a_quiet_noise_floor_that_the_linear_loss_does_not():
    """A tone over noise 50 dB quieter, rebuilt without the noise: the linear spectral loss calls it nearly perfect
    (the noise is 0.3 % of the amplitude), the log one sees the empty bins. The noise's bins sit about 32 dB under
    the mean magnitude: with the floor 10 dB under the mean, they barely count."""
    tone = _music(batch=1)
    noise = 10 ** (-50 / 20) * 0.5 * torch.randn(1, 1, 4096, generator=torch.Generator().manual_seed(1))
    target = tone + noise
    assert spectral_loss(target, tone, (SETTING,)).item() < 0.01
    assert log_spectral_loss(target, tone, (SETTING,)).item() > 1.0
    assert log_spectral_loss(target, tone, (SETTING,), floor_db=-10).item() < 0.1


def test_low_passed_keeps_a_tone_under_the_cutoff_and_takes_out_one_above():
    """Whole-cycle tones, so that each sits in one FFT bin: the one under the cutoff comes out as it went in."""
    sr = 16000
    t = torch.arange(sr, dtype=torch.float64) / sr
    low, high = torch.sin(2 * math.pi * 440 * t).float(), 0.5 * torch.sin(2 * math.pi * 5000 * t).float()
    out = low_passed((low + high)[None, None], 2000, sr)
    assert out.shape == (1, 1, sr)
    assert torch.allclose(out[0, 0], low, atol=1e-4)
    assert torch.allclose(low_passed(high, 8000, sr), high, atol=1e-4)  # up to Nyquist: all of it
    # so a reconstruction wrong only above the cutoff costs nothing there
    noisy = low + 0.1 * torch.randn(sr, generator=torch.Generator().manual_seed(0))
    assert reconstruction_loss(low_passed(low, 2000, sr), low_passed(low + high, 2000, sr)).item() < 1e-8
    assert reconstruction_loss(low, noisy).item() > 1e-3
