"""Deterministic synthetic music (melodies, chords, drums) for tests, demos and smoke-training.

Real enough to exercise a codec (harmonic tones with envelopes, noisy percussion, stereo panning),
made from a seed in milliseconds, so nothing needs downloading.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..audio import save_audio
from ..errors import ConfigError

_SCALE = np.array([0, 2, 4, 5, 7, 9, 11, 12])  # major scale, semitones above the root


def synth_song(seconds: float, sample_rate: int, seed: int, channels: int = 2) -> np.ndarray:
    """A (channels, samples) float32 clip: a melody over chords and a drum pattern at a random tempo."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    out = np.zeros((channels, n), dtype=np.float64)
    root = 48 + int(rng.integers(0, 12))
    beat = 60.0 / rng.uniform(80, 160)
    pans = rng.uniform(0.2, 0.8, size=3)

    def note(midi: float, start: float, length: float, harmonics: int, pan: float, gain: float) -> None:
        i0, i1 = int(start * sample_rate), min(n, int((start + length) * sample_rate))
        if i0 >= n or i1 <= i0:
            return
        tt = t[i0:i1] - start
        f = 440.0 * 2 ** ((midi - 69) / 12)
        wave = sum(np.sin(2 * np.pi * f * k * tt) / k for k in range(1, harmonics + 1) if f * k < sample_rate / 2)
        env = np.minimum(1.0, tt / 0.01) * np.exp(-3.0 * tt / length)
        mono = gain * env * wave
        for c in range(channels):
            weight = pan if c % 2 == 0 else 1 - pan
            out[c, i0:i1] += mono * (weight if channels > 1 else 1.0)

    start = 0.0
    while start < seconds:
        chord_root = root + int(rng.choice(_SCALE[:6]))
        for interval in (0, 4, 7):
            note(chord_root + interval, start, 4 * beat, 3, pans[0], 0.08)
        for k in range(4):
            note(root + 12 + int(rng.choice(_SCALE)), start + k * beat, beat * rng.choice([0.5, 1.0]), 5, pans[1], 0.12)
        for k in range(4):
            i0 = int((start + k * beat) * sample_rate)
            length = int(0.08 * sample_rate)
            if i0 + length < n:
                decay = np.exp(-np.arange(length) / (0.015 * sample_rate))
                hit = (rng.standard_normal(length) * 0.3 + (k % 2 == 0) * np.sin(2 * np.pi * 60 * np.arange(length) / sample_rate)) * decay
                for c in range(channels):
                    out[c, i0:i0 + length] += 0.25 * hit * (pans[2] if c % 2 == 0 else 1 - pans[2])
        start += 4 * beat
    peak = np.abs(out).max()
    return (out / peak * 0.8 if peak > 0 else out).astype(np.float32)


def write_synthetic_dataset(out: str | os.PathLike, files: int = 4, seconds: float = 8.0,
                            sample_rate: int = 22050, seed: int = 0) -> list[Path]:
    """Write `files` synthetic songs as WAV files into the folder `out`; returns their paths."""
    if files <= 0 or seconds <= 0 or sample_rate < 4000:
        raise ConfigError("synthetic data needs files > 0, seconds > 0 and a sample rate of at least 4000 Hz")
    out_dir = Path(out)
    paths = []
    for i in range(files):
        path = out_dir / f"synth-{seed}-{i:03d}.wav"
        save_audio(path, synth_song(seconds, sample_rate, seed * 1000 + i), sample_rate)
        paths.append(path)
    return paths
