"""Objective measures that tell music apart from silence and white noise, for judging generated samples.

None of these says a clip is good music; together they say whether a model makes something with the texture
of music (tonal, harmonic, rhythmic, at a sensible level) rather than hiss, hum or silence. numpy only, so that
they can be checked by hand.
"""

from __future__ import annotations

import os

import numpy as np

from .audio import load_audio

SILENT_RMS = 1e-4  # about -80 dBFS: frames quieter than this are silence, not signal to describe


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size == 0:
        raise ValueError("no samples to measure")
    return audio.mean(axis=0) if audio.ndim == 2 else audio


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    """(frames, size) views, zero-padding the end so that a clip shorter than one frame still gives one."""
    if len(x) < size:
        x = np.pad(x, (0, size - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, size)[::hop]


def _loud_frames(audio: np.ndarray, size: int = 2048, hop: int = 512) -> np.ndarray:
    frames = _frames(_mono(audio), size, hop)
    return frames[np.sqrt(np.mean(frames ** 2, axis=1)) >= SILENT_RMS]


def spectral_flatness(audio: np.ndarray, sample_rate: int) -> float:
    """Noise is flat (about 0.56 for white noise), tones and chords are peaky (near 0): music sits low.

    Silent frames are skipped, since silence has no spectrum to be flat or peaky; nan if all are silent.
    `sample_rate` is unused (flatness has no unit) but kept so that all the measures are called alike.
    """
    frames = _loud_frames(audio)
    if len(frames) == 0:
        return float("nan")
    power = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2 + 1e-10
    return float(np.mean(np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)))


def onset_rate(audio: np.ndarray, sample_rate: int, delta_db: float = 1.0) -> float:
    """Notes and beats start often (a few per second); steady hum and stationary noise have no onsets.

    Positive spectral flux in dB (the mean rise over bins), kept at local maxima at least 50 ms apart that
    rise `delta_db` above the median of the surrounding 0.1 s; the dB scale makes it independent of level.
    """
    x = _mono(audio)
    hop = 256
    gap = half = max(1, round(0.05 * sample_rate / hop))  # 50 ms between onsets; 0.1 s median window
    magnitude = np.abs(np.fft.rfft(_frames(x, 1024, hop) * np.hanning(1024), axis=1))
    db = 20 * np.log10(np.maximum(magnitude, max(magnitude.max(), 1e-10) * 1e-4))  # 80 dB below the loudest
    flux = np.concatenate([[0.0], np.maximum(np.diff(db, axis=0), 0).mean(axis=1)])
    padded = np.pad(flux, half, mode="edge")
    median = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
    local_max = np.lib.stride_tricks.sliding_window_view(np.pad(flux, gap, mode="constant"), 2 * gap + 1).max(axis=1)
    onsets, last = 0, -gap
    for i in np.flatnonzero((flux >= local_max) & (flux > median + delta_db)):
        if i - last >= gap:
            onsets, last = onsets + 1, i
    return onsets / (len(x) / sample_rate)


def pitch_salience(audio: np.ndarray, sample_rate: int) -> float:
    """Pitched sound repeats itself every period (near 1), noise never does (below 0.1): harmonicity.

    The highest local peak of the normalised autocorrelation at periods of 60-1000 Hz, averaged over the
    non-silent frames; nan if all are silent. Each lag is normalised by the energy of the two overlapping
    parts, so a perfectly periodic frame scores 1 at any lag.
    """
    frames = _loud_frames(audio)
    if len(frames) == 0:
        return float("nan")
    frames = frames - frames.mean(axis=1, keepdims=True)
    n = frames.shape[1]
    acf = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * n, axis=1)) ** 2, axis=1)[:, :n]
    energy = np.cumsum(frames ** 2, axis=1)
    head = energy[:, ::-1]  # energy of frame[:n - k] at lag k
    tail = energy[:, -1:] - np.concatenate([np.zeros((len(frames), 1)), energy[:, :-1]], axis=1)  # frame[k:]
    ncc = acf / np.sqrt(head * tail + 1e-20)
    low, high = max(1, int(sample_rate / 1000)), min(n - 2, int(np.ceil(sample_rate / 60)))
    mid = ncc[:, low:high + 1]
    peaks = (mid >= ncc[:, low - 1:high]) & (mid >= ncc[:, low + 1:high + 2])
    return float(np.mean(np.where(peaks, mid, 0.0).max(axis=1)))


def spectral_centroid(audio: np.ndarray, sample_rate: int) -> float:
    """Spectral balance in Hz: the power-weighted mean frequency of the clip's average spectrum. A low-frequency
    wash reads low, hiss reads high (white noise: a quarter of the sample rate); music sits in between.

    The power spectra of the non-silent frames are averaged first, so that loud frames weigh more; nan if all
    are silent.
    """
    frames = _loud_frames(audio)
    if len(frames) == 0:
        return float("nan")
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2, axis=0)
    frequencies = np.fft.rfftfreq(frames.shape[1], 1 / sample_rate)
    return float(np.sum(frequencies * power) / np.sum(power))


def band_levels(audio: np.ndarray, sample_rate: int, edges: list[float]) -> list[float]:
    """Mean power per frequency bin, in dB, of each band [edges[i], edges[i + 1]) over the non-silent frames
    (2,048 samples, Hann window): where a clip's energy sits, to trace a measure such as flatness (which follows
    the many quiet high bins) to the bands that move it. nan for a band with no bins or a clip that is silent."""
    frames = _loud_frames(audio)
    if len(frames) == 0:
        return [float("nan")] * (len(edges) - 1)
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2, axis=0)
    frequencies = np.fft.rfftfreq(frames.shape[1], 1 / sample_rate)
    levels = []
    for low, high in zip(edges[:-1], edges[1:]):
        band = power[(frequencies >= low) & (frequencies < high)]
        levels.append(float(10 * np.log10(band.mean() + 1e-30)) if band.size else float("nan"))
    return levels


def rms_db(audio: np.ndarray) -> float:
    """Level in dBFS (a full-scale sine is -3.01), to catch clips that are near silent or clipping.

    Digital silence reads -200 dBFS rather than minus infinity, so that averages stay finite.
    """
    return float(10 * np.log10(np.mean(_mono(audio) ** 2) + 1e-20))


def mel_filterbank(sample_rate: int, n_fft: int, bands: int) -> np.ndarray:
    """(bands, n_fft // 2 + 1) triangular filters equally spaced on the HTK mel scale (2595·log10(1 + f/700)),
    each peaking at 1: power spectra @ bank.T give mel spectra (for plots and MFCC baselines)."""
    mel = 2595 * np.log10(1 + np.array([0.0, sample_rate / 2]) / 700)
    edges = 700 * (10 ** (np.linspace(mel[0], mel[1], bands + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    rise = (freqs - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    fall = (edges[2:, None] - freqs) / (edges[2:, None] - edges[1:-1, None])
    return np.clip(np.minimum(rise, fall), 0, None)


def music_measures(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """All five measures of one clip, mono (samples,) or (channels, samples)."""
    return {"spectral_flatness": spectral_flatness(audio, sample_rate),
            "spectral_centroid": spectral_centroid(audio, sample_rate),
            "onset_rate": onset_rate(audio, sample_rate),
            "pitch_salience": pitch_salience(audio, sample_rate),
            "rms_db": rms_db(audio)}


def distance(means: dict[str, float], reference_means: dict[str, float], reference_stds: dict[str, float]) -> float:
    """How far a group of clips sits from a reference group (real music), in one number: the sum over the five
    measures of |mean − reference mean| / reference spread (its standard deviation over clips), so that no measure
    counts for more because of its unit. 0 is the reference itself; white noise sits far off."""
    return float(sum(abs(means[key] - reference_means[key]) / reference_stds[key] for key in reference_means))


def measure_file(path: str | os.PathLike, sample_rate: int = 22050) -> dict[str, float]:
    """All five measures of a whole file, mixed to mono and resampled so that files at any rate compare."""
    return music_measures(load_audio(path, sample_rate=sample_rate, mono=True), sample_rate)
