"""Giving a trained VQ-VAE a noise fill (noise_fill.py), fitted on a folder of music: `openjukebox vqvae noise-fill`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..data.dataset import AudioFolder
from ..errors import ConfigError
from ..train.checkpoint import CONFIG_FILE, META, write_model_dir
from .config import NoiseFillSetting
from .loading import load_vqvae
from .noise_fill import fit_noise_fill


def add_noise_fill(model: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                   metadata: str | os.PathLike | None = None, seconds: float = 10.0, windows_per_file: int = 2,
                   from_hz: float = NoiseFillSetting.from_hz, context_frames: int = NoiseFillSetting.context_frames,
                   audio_cache: str | os.PathLike | None = None) -> dict:
    """Fit a noise fill for every level of the VQ-VAE `model` (run, checkpoint or a bundle's vqvae/) on the music
    in `data` and write that VQ-VAE with it to `out`, a model directory that every command taking a VQ-VAE reads
    (`openjukebox bundle make --vqvae OUT --prior0 BUNDLE ...` makes a bundle of it). The encoders, codebooks and
    decoders are copied unchanged, so codes, fingerprint and priors stay valid.

    Each level learns from `windows_per_file` windows of `seconds` per file, their centres splitting it into equal
    parts, encoded and decoded by that level. Returns the number of windows and, per level, the fit's
    root-mean-square error per filled band in nats of energy (1 nat ≈ 4.3 dB), from `from_hz` up."""
    out = Path(out)
    if (out / META).exists() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"{out}: already holds a model or a file; choose a new --out")
    if not seconds > 0 or windows_per_file < 1:
        raise ConfigError(f"--seconds {seconds} and --windows-per-file {windows_per_file}: both must be positive")
    source, step = load_vqvae(model)
    if not source.config.quantise:
        raise ConfigError(f"{model}: a VQ-VAE without quantisation has no codes to decode; a noise fill needs codes")
    filled = source.with_noise_fill_setting(NoiseFillSetting(from_hz=from_hz, context_frames=context_frames))
    config = filled.config

    top = config.hop_lengths[-1]
    window = -(-round(seconds * config.sample_rate) // top) * top
    with tempfile.TemporaryDirectory() as scratch:
        dataset = AudioFolder(data, config.sample_rate, audio_cache or scratch, metadata)
        # Centres that split each file into equal parts: the body of the music, never its intro or its fade-out.
        clips = [torch.from_numpy(dataset.crop(i, max(0, round((k + 1) * int(length) / (windows_per_file + 1))
                                                       - window // 2), window).mean(0)).float()
                 for i, length in enumerate(dataset.lengths) for k in range(windows_per_file)]
    codes = [filled.encode(clip[None, None]) for clip in clips]
    errors = {}
    for level in range(config.levels):
        pairs = ((clip, filled.decode(level_codes[level], level)[0, 0]) for clip, level_codes in zip(clips, codes))
        errors[level] = fit_noise_fill(filled.noise_fills[level], pairs)
    write_model_dir(out, filled.state_dict(), "vqvae", step, {CONFIG_FILE: config.to_json()})
    return {"windows": len(clips), "rms_error_nats": errors}
