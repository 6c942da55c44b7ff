"""Jukebox representations for music research: a layer of the top prior, run teacher-forced over a song's top-level
codes and pooled over time, is a feature vector for tagging, genre, key and emotion (Castellon et al. 2021, the
JukeMIR study, found the middle layer of the 5B prior the best).

Memory stays bounded whatever the input: audio is encoded in chunks by the VQ-VAE, the prior sees windows of n_ctx
codes a batch at a time, only the layers up to the chosen one run, and each window is pooled as soon as it is
computed. A folder of thousands of files is a resumable job: each finished file's features are kept in
OUT.parts/ until all of them are written to OUT, so a run that dies goes on where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .audio import AUDIO_EXTENSIONS, audio_info, load_audio
from .bundle import Bundle
from .data.dataset import list_audio_files
from .errors import ConfigError
from .fileio import atomic_path, atomic_write_text, writer_lock

POOLS = ("mean", "max")
SETTINGS = "settings.json"


@torch.no_grad()
def song_features(bundle: Bundle, audio: np.ndarray, layer: int | None = None, pool: str = "mean",
                  batch: int = 4, seconds: float | None = None) -> np.ndarray:
    """(width,) float32 features of one song, audio (channels, samples) at the bundle's sample rate: `layer`'s
    output (1 … depth, default the middle) at every top-level code, pooled over the whole song (or its first
    `seconds`). Windows of n_ctx codes go `batch` at a time; each is told the song's length and its offset, and the
    `unknown` artist and genre, so that the features describe the audio rather than a label."""
    layer = checked_layer(bundle, layer, pool)
    if batch < 1:
        raise ConfigError(f"batch (--batch) must be positive, got {batch}")
    prior, vq = bundle.prior(2), bundle.vqvae
    if seconds is not None:
        if not seconds > 0:
            raise ConfigError(f"seconds (--seconds) must be positive, got {seconds}")
        audio = audio[:, : round(seconds * vq.config.sample_rate)]
    mono = torch.from_numpy(np.ascontiguousarray(audio.mean(0, keepdims=True), dtype=np.float32))[None]
    codes = vq.encode(mono.to(bundle.device), levels=[2])[0]  # (1, T)
    if codes.shape[1] == 0:
        raise ConfigError(f"{mono.shape[-1]} samples of audio are shorter than one top-level code "
                          f"({vq.hop_lengths[2]})")
    n_ctx, hop, total, n = prior.config.n_ctx, prior.config.hop_length, mono.shape[-1], codes.shape[1]
    starts = list(range(0, n, n_ctx))
    summed, peak, count = None, None, 0
    full, last = [s for s in starts if s + n_ctx <= n], [s for s in starts if s + n_ctx > n]
    for group, length in ((full, n_ctx), (last, n % n_ctx)):  # the full windows, `batch` at a time; then the rest
        for i in range(0, len(group), batch):
            chunk = group[i:i + batch]
            windows = torch.stack([codes[0, s:s + length] for s in chunk])
            labels = replace(bundle.labels(None, None, total, len(chunk)),
                             offset=torch.tensor(chunk) * hop).to(bundle.device)
            h = prior.activations(windows, labels, layer).double()  # (windows, length, width)
            summed = h.sum((0, 1)) if summed is None else summed + h.sum((0, 1))
            top = h.amax((0, 1))
            peak = top if peak is None else torch.maximum(peak, top)
            count += h.shape[0] * h.shape[1]
    features = summed / count if pool == "mean" else peak
    return features.float().cpu().numpy()


def embed_files(bundle: Bundle, paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                layer: int | None = None, pool: str = "mean", batch: int = 4, seconds: float | None = None,
                progress: Callable[[int, int, Path], None] | None = None) -> Path:
    """Features of many files (folders are searched for audio files) into OUT (.npz): `features` (files, width)
    float32 and `paths` (files,), with `layer`, `pool`, `seconds` and the model's fingerprint.

    Every input is checked before anything is written. Resumable: a file finished by an earlier run with the same
    settings (in OUT.parts/, or already in OUT) is not computed again, so a run that stopped goes on, and files
    added later cost only themselves. `progress(done, total, path)` hears of each file."""
    out = Path(out)
    if out.suffix != ".npz":
        raise ConfigError(f"{out}: --out must end in .npz")
    layer = checked_layer(bundle, layer, pool)
    files = _audio_files(paths, bundle.priors[2].config.hop_length / bundle.vqvae.config.sample_rate)
    settings = {"model": bundle.fingerprint(), "layer": layer, "pool": pool, "seconds": seconds}
    parts = out.with_name(out.name + ".parts")
    with writer_lock(parts):
        known = _finished(out, parts, settings)
        rate = bundle.vqvae.config.sample_rate
        for i, file in enumerate(files):
            part = parts / f"{_key(file)}.npy"
            if str(file) not in known and not part.is_file():
                features = song_features(bundle, load_audio(file, rate), layer, pool, batch, seconds)
                with atomic_path(part) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, features)
            if progress is not None:
                progress(i + 1, len(files), file)
        features = np.stack([known[str(f)] if str(f) in known else np.load(parts / f"{_key(f)}.npy")
                             for f in files])
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, features=features, paths=np.array([str(f) for f in files]),
                         settings=np.array(json.dumps(settings)))
        for part in parts.glob("*.npy"):
            part.unlink()
        (parts / SETTINGS).unlink(missing_ok=True)
    if not any(parts.iterdir()):
        parts.rmdir()
    return out


def checked_layer(bundle: Bundle, layer: int | None, pool: str) -> int:
    """The top prior's layer to read (default: the middle one), refusing a layer or pooling it does not have."""
    bundle.require([2])
    depth = bundle.priors[2].config.transformer.depth
    layer = depth // 2 if layer is None else layer
    if not 1 <= layer <= depth:
        raise ConfigError(f"layer (--layer) {layer}: this model's top prior has layers 1 to {depth}")
    if pool not in POOLS:
        raise ConfigError(f"pool (--pool) must be one of {', '.join(POOLS)}, got {pool!r}")
    return layer


def load_features(path: str | os.PathLike) -> tuple[np.ndarray, list[str], dict]:
    """(features (files, width), paths, settings) of a file embed_files wrote."""
    with np.load(path) as data:
        return data["features"], [str(p) for p in data["paths"]], json.loads(str(data["settings"]))


def _audio_files(paths: Sequence[str | os.PathLike], shortest: float) -> list[Path]:
    """The files to embed, absolute, in order and without repeats, each readable as audio (headers only) and at
    least `shortest` seconds long (one top-level code)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = list_audio_files(path)
            if not found:
                raise ConfigError(f"{path}: no audio files in this folder ({', '.join(sorted(AUDIO_EXTENSIONS))})")
            files += found
        else:
            files.append(path)
    if not files:
        raise ConfigError("no audio files given")
    for file in files:  # a one-line error for a missing, unreadable or too short file, before anything is written
        rate, _, frames = audio_info(file)
        if frames < shortest * rate:
            raise ConfigError(f"{file}: {frames / rate:.3f} s of audio is shorter than one top-level code "
                              f"({shortest:.3f} s); leave it out")
    return list(dict.fromkeys(f.resolve() for f in files))


def _key(file: Path) -> str:
    return hashlib.sha256(str(file).encode()).hexdigest()[:24]


def _finished(out: Path, parts: Path, settings: dict) -> dict[str, np.ndarray]:
    """Features already computed with these settings, by path: from OUT (a finished earlier run), and the parts of
    an unfinished one. Parts made with other settings are refused rather than mixed in."""
    parts.mkdir(parents=True, exist_ok=True)
    saved = parts / SETTINGS
    if saved.is_file() and json.loads(saved.read_text()) != settings:
        raise ConfigError(f"{parts}: holds features of an unfinished run with other settings "
                          f"({json.loads(saved.read_text())}); finish it with those, or remove the folder")
    atomic_write_text(saved, json.dumps(settings))
    if not out.is_file():
        return {}
    try:
        features, paths, earlier = load_features(out)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{out}: exists and is not a features file ({e}); choose another --out") from None
    if earlier != settings:
        raise ConfigError(f"{out}: holds features made with other settings ({earlier}); choose another --out")
    return dict(zip(paths, features))
