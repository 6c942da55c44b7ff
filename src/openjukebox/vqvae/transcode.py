"""Audio files to codes files and back: the VQ-VAE as a user applies it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio, save_audio
from ..codes import CodedClip, CodesFile, pad_levels, check_codes_match, load_codes, save_codes
from ..errors import CodesError, ConfigError
from .model import VQVAE


def encode_audio_files(model: VQVAE, paths: list[str | os.PathLike], out: str | os.PathLike,
                       offset: float = 0.0, duration: float | None = None, chunk_seconds: float = 20.0) -> CodesFile:
    """Encode each file (mixed to mono, at the model's rate, from `offset` for `duration` seconds) at every
    level and write one codes file. Every input is checked before `out` is written."""
    if not paths:
        raise ConfigError("no audio files given to encode")
    if offset < 0 or (duration is not None and duration <= 0):
        raise ConfigError("offset (--offset) must be ≥ 0 and duration (--duration) > 0")
    rate = model.config.sample_rate
    device = next(model.parameters()).device
    rows: list[list[np.ndarray]] = [[] for _ in range(model.config.levels)]
    clips = []
    for path in paths:
        audio = load_audio(path, sample_rate=rate, mono=True)
        start = round(offset * rate)
        stop = audio.shape[1] if duration is None else min(audio.shape[1], start + round(duration * rate))
        if start >= audio.shape[1]:
            raise ConfigError(f"{path}: --offset {offset}s is past the end of the file ({audio.shape[1] / rate:.2f}s)")
        audio = audio[:, start:stop]
        if audio.shape[1] == 0:
            raise ConfigError(f"{path}: --duration {duration}s is shorter than one sample at {rate} Hz")
        codes = model.encode(torch.from_numpy(audio)[None].to(device), chunk_seconds=chunk_seconds)
        for level, c in enumerate(codes):
            rows[level].append(c[0].cpu().numpy())
        clips.append(CodedClip(source=str(path), offset=start / rate, duration=audio.shape[1] / rate,
                               length=int(audio.shape[1])))
    levels = pad_levels(rows)
    codes_file = CodesFile(levels, clips, rate, model.hop_lengths, model.config.codebook_size, model.fingerprint())
    save_codes(out, codes_file)
    return codes_file


def decode_codes(model: VQVAE, codes_path: str | os.PathLike, level: int, out: str | os.PathLike,
                 clip: int | None = None, chunk_seconds: float = 20.0) -> list[Path]:
    """Decode one level of a codes file to audio files of each clip's original length.

    With several clips and no `clip`, clip i goes to `<out stem>-<i><suffix>`."""
    codes_path = Path(codes_path)
    out = Path(out)
    if out.suffix.lower() not in (".wav", ".flac"):
        raise ConfigError(f"{out}: output must be a .wav or .flac file")
    if not 0 <= level < model.config.levels:
        raise ConfigError(f"level (--level) must be one of {list(range(model.config.levels))}, got {level}")
    codes = load_codes(codes_path)
    check_codes_match(codes, codes_path, model.fingerprint(), model.config.codebook_size)
    n = len(codes.clips)
    if clip is not None and not 0 <= clip < n:
        raise CodesError(f"{codes_path}: has {n} clip(s); clip (--clip) {clip} does not exist")
    chosen = [clip] if clip is not None else list(range(n))
    device = next(model.parameters()).device
    decoded = []
    for i in chosen:
        tokens = torch.from_numpy(codes.codes(i, level).astype(np.int64))[None].to(device)
        audio = model.decode(tokens, level, chunk_seconds=chunk_seconds)[0, :, : codes.clips[i].length]
        decoded.append(audio.cpu().numpy())
    targets = [out] if len(chosen) == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in chosen]
    written: list[Path] = []
    try:
        for path, audio in zip(targets, decoded):
            written.append(save_audio(path, audio, model.config.sample_rate))
    except BaseException:
        for path in written:  # all clips or none
            path.unlink(missing_ok=True)
        raise
    return targets
