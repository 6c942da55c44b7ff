"""The music measures against facts known without them: the flatness of white noise (exp(-Euler's gamma) for a
chi-squared power spectrum), the level of a full-scale sine, the number of clicks in a click train, the centroid
of a sine (its frequency) and of white noise (a quarter of the sample rate)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openjukebox.audio import save_audio
from openjukebox.music_measures import (band_levels, distance, measure_file, mel_filterbank, music_measures, onset_rate,
                                        pitch_salience, rms_db, spectral_centroid, spectral_flatness)

SR = 22050
T = np.arange(4 * SR) / SR


def white_noise(seconds: float = 4.0) -> np.ndarray:
    return 0.1 * np.random.default_rng(0).standard_normal(round(seconds * SR))


def harmonic_tone(f0: float = 220.0) -> np.ndarray:
    return 0.2 * sum(np.sin(2 * np.pi * f0 * k * T) / k for k in range(1, 6))


def click_train(per_second: int = 4) -> np.ndarray:
    audio = 0.02 * np.sin(2 * np.pi * 330 * T)  # a quiet tone under the clicks, so the frames are not silent
    audio[((np.arange(len(T) * per_second // SR) + 0.5) * SR / per_second).astype(int)] += 0.8
    return audio


def test_white_noise_is_flat_and_unpitched():
    noise = white_noise()
    assert 0.45 <= spectral_flatness(noise, SR) <= 0.65  # exp(-0.5772) = 0.561 in theory
    assert pitch_salience(noise, SR) < 0.35
    assert onset_rate(noise, SR) < 0.5  # stationary: nothing starts


def test_harmonic_tone_is_peaky_and_pitched():
    tone = harmonic_tone()
    assert spectral_flatness(tone, SR) < 0.05
    assert pitch_salience(tone, SR) > 0.9


def test_spectral_centroid_of_sines_and_noise():
    assert spectral_centroid(np.sin(2 * np.pi * 1000 * T), SR) == pytest.approx(1000, abs=5)
    # two sines of equal amplitude: equal power at each, so the power-weighted mean is halfway
    assert spectral_centroid(np.sin(2 * np.pi * 500 * T) + np.sin(2 * np.pi * 3500 * T), SR) == pytest.approx(
        2000, abs=10)
    assert spectral_centroid(white_noise(), SR) == pytest.approx(SR / 4, rel=0.02)
    assert math.isnan(spectral_centroid(np.zeros(SR), SR))


def test_click_train_onsets_are_counted():
    assert 3.5 <= onset_rate(click_train(4), SR) <= 4.5


def test_steady_tone_has_no_onsets():
    assert onset_rate(harmonic_tone(), SR) < 0.5


def test_silence_has_no_flatness_or_pitch():
    silence = np.zeros(SR, dtype=np.float32)
    assert math.isnan(spectral_flatness(silence, SR))
    assert math.isnan(pitch_salience(silence, SR))
    assert onset_rate(silence, SR) == 0.0
    assert rms_db(silence) < -150


def test_rms_db_of_full_scale_sine():
    sine = np.sin(2 * np.pi * 441 * T)  # a whole number of periods, so the mean square is exactly 1/2
    assert rms_db(sine) == pytest.approx(20 * math.log10(1 / math.sqrt(2)), abs=1e-3)  # -3.0103
    assert rms_db(white_noise()) == pytest.approx(-20.0, abs=0.1)


def test_stereo_is_measured_as_its_mono_mix():
    tone = harmonic_tone()
    stereo = np.stack([tone + white_noise(), tone - white_noise()])
    assert music_measures(stereo, SR) == pytest.approx(music_measures(tone, SR), rel=1e-6)


def test_measure_file_resamples(tmp_path):
    path = save_audio(tmp_path / "tone.wav", np.stack([np.sin(2 * np.pi * 220 * np.arange(2 * 44100) / 44100)] * 2),
                      44100)
    measures = measure_file(path)
    assert set(measures) == {"spectral_flatness", "spectral_centroid", "onset_rate", "pitch_salience",
                             "rms_db"}
    assert measures["rms_db"] == pytest.approx(-3.01, abs=0.05)
    assert measures["pitch_salience"] > 0.9


def test_mel_filterbank_triangles_sum_to_one_between_the_first_and_last_centre():
    """Triangles that share their edges make a partition of unity: between the first and last centre frequency the
    filters sum to exactly 1, and none is negative."""
    bank = mel_filterbank(SR, 2048, 40)
    assert bank.shape == (40, 1025) and bank.min() >= 0 and bank.max() <= 1
    mel = 2595 * np.log10(1 + SR / 2 / 700)
    centres = 700 * (10 ** (np.linspace(0, mel, 42)[1:-1] / 2595) - 1)
    freqs = np.fft.rfftfreq(2048, 1 / SR)
    inside = (freqs >= centres[0]) & (freqs <= centres[-1])
    np.testing.assert_allclose(bank[:, inside].sum(0), 1.0, atol=1e-9)


def test_band_levels_of_white_noise_are_its_variance_times_the_windows_energy_and_a_sine_sits_in_its_band():
    """White noise of variance s² has E|X_k|² = s² Σ w² in every bin (Σ w² = 3N/8 for a Hann window of N = 2048),
    so each band reads 10·log10(s² · 768); a 1 kHz sine puts its power in the band holding 1 kHz, and the Hann
    window's sidelobes leave the far bands at least 60 dB under it. A band with no bins is nan."""
    edges = [0, 500, 2000, 8000, 11025, 11030, 12000]
    expected = 10 * math.log10(0.1 ** 2 * 3 * 2048 / 8)
    noise = band_levels(white_noise(20.0), SR, edges)
    assert noise[:4] == pytest.approx([expected] * 4, abs=0.3)
    assert math.isnan(noise[5])  # above Nyquist
    sine = band_levels(0.5 * np.sin(2 * np.pi * 1000 * T), SR, edges)
    assert sine[1] > max(sine[0], sine[3]) + 60
    assert all(math.isnan(x) for x in band_levels(np.zeros(SR), SR, edges))


def test_distance_sums_each_measures_gap_in_units_of_the_references_spread():
    reference = {"a": 1.0, "b": 100.0}
    spread = {"a": 0.5, "b": 20.0}
    assert distance(reference, reference, spread) == 0.0
    # |2 - 1| / 0.5 + |70 - 100| / 20 = 2 + 1.5, by hand
    assert distance({"a": 2.0, "b": 70.0}, reference, spread) == pytest.approx(3.5)
