"""A dataset encoded once by a VQ-VAE: every file's codes at all levels, its labels and the label vocabularies.

Priors train on this cache and never run the VQ-VAE during training. CACHE/codes.npz is an ordinary codes
file (one clip per audio file, labels in the clip metadata); CACHE/vocab.json lists the artists and genres.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..codes import CodedClip, CodesFile, pad_levels, load_codes, save_codes
from ..errors import DataError
from ..fileio import atomic_write_text
from ..vqvae.loading import load_vqvae
from .dataset import AudioFolder

CODES = "codes.npz"
VOCAB = "vocab.json"
UNKNOWN = "unknown"


@dataclass
class CodeCache:
    codes: CodesFile
    artists: list[str]
    genres: list[str]

    def label_ids(self, clip: int) -> tuple[int, list[int]]:
        """Vocabulary ids of a clip's labels; names missing from the vocabulary count as 'unknown'."""
        labels = self.codes.clips[clip].labels
        artist = _index(self.artists, labels.get("artist") or UNKNOWN, "artist")
        genres = [_index(self.genres, g, "genre") for g in split_genres(labels.get("genre", ""))]
        return artist, genres or [_index(self.genres, UNKNOWN, "genre")]


def _index(vocabulary: list[str], name: str, what: str) -> int:
    if name in vocabulary:
        return vocabulary.index(name)
    if UNKNOWN in vocabulary:
        return vocabulary.index(UNKNOWN)
    raise DataError(f"{what} '{name}' is not in the model's vocabulary, which has no '{UNKNOWN}' entry")


def split_genres(text: str) -> list[str]:
    """'rock; jazz' or 'rock,jazz' → ['rock', 'jazz'] (several genres per song, summed by the prior)."""
    return [g.strip() for g in text.replace(";", ",").split(",") if g.strip()]


def build_code_cache(vqvae_dir: str | os.PathLike, data_dir: str | os.PathLike, out: str | os.PathLike,
                     metadata: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> CodeCache:
    """Encode every audio file of data_dir (channels averaged) at all three levels into out/."""
    out = Path(out)
    model, _ = load_vqvae(vqvae_dir, device)
    folder = AudioFolder(data_dir, model.config.sample_rate, out / "audio-cache", metadata)
    rows: list[list[np.ndarray]] = [[] for _ in range(model.config.levels)]
    clips = []
    for i, file in enumerate(folder.files):
        audio = torch.from_numpy(np.asarray(folder.array(i), dtype=np.float32).mean(0, keepdims=True))[None]
        for level, codes in enumerate(model.encode(audio.to(device))):
            rows[level].append(codes[0].cpu().numpy())
        labels = {"artist": file.artist, "genre": file.genre, "lyrics": file.lyrics}
        if file.lyrics_timing:
            labels["lyrics_timing"] = file.lyrics_timing
        clips.append(CodedClip(source=file.path, offset=0.0, duration=file.length / model.config.sample_rate,
                               length=file.length, labels=labels))
    levels = pad_levels(rows)
    codes = CodesFile(levels, clips, model.config.sample_rate, model.hop_lengths, model.config.codebook_size,
                      model.fingerprint())
    artists = sorted({c.labels["artist"] for c in clips if c.labels["artist"]} | {UNKNOWN})
    genres = sorted({g for c in clips for g in split_genres(c.labels["genre"])} | {UNKNOWN})
    save_codes(out / CODES, codes)
    atomic_write_text(out / VOCAB, json.dumps({"artists": artists, "genres": genres}, indent=2) + "\n")
    return CodeCache(codes, artists, genres)


def load_code_cache(path: str | os.PathLike) -> CodeCache:
    path = Path(path)
    if not (path / CODES).is_file():
        raise DataError(f"{path}: not a codes cache (no {CODES}); make one with 'openjukebox codes build'")
    try:
        vocab = json.loads((path / VOCAB).read_text())
        artists, genres = list(vocab["artists"]), list(vocab["genres"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}/{VOCAB}: missing or corrupt vocabulary ({e})") from None
    return CodeCache(load_codes(path / CODES), artists, genres)
