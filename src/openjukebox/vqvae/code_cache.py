"""A dataset encoded once by a VQ-VAE: every file's codes at all levels, its labels and the label vocabularies.

Priors train on this cache and never run the VQ-VAE during training. CACHE/codes.npz is an ordinary codes
file (one clip per audio file, labels in the clip metadata); CACHE/vocab.json is the label vocabulary
(labels.LabelEncoder) that a prior trained on the cache keeps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..codes import CodedClip, CodesFile, pad_levels, load_codes, save_codes
from ..data.dataset import AudioFolder
from ..devices import resolve_device
from ..errors import DataError
from ..fileio import writer_lock
from ..labels import LabelEncoder, split_genres
from .loading import load_vqvae

CODES = "codes.npz"


@dataclass
class CodeCache:
    codes: CodesFile
    labels: LabelEncoder

    def label_ids(self, clip: int, max_genres: int) -> tuple[int, list[int]]:
        """A clip's artist id and genre ids (padded with -1 to max_genres)."""
        meta = self.codes.clips[clip]
        return self.labels.ids(meta.labels.get("artist"), split_genres(meta.labels.get("genre", "")), max_genres,
                               where=f"{meta.source}: ")

    def max_genres(self) -> int:
        """The most genres any clip has: how many a prior trained on this cache sums."""
        return max([len(self.labels.genre_ids(split_genres(c.labels.get("genre", "")))) for c in self.codes.clips],
                   default=1)


def build_code_cache(vqvae: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                     metadata: str | os.PathLike | None = None, device: str | torch.device = "auto",
                     audio_cache: str | os.PathLike | None = None) -> CodeCache:
    """Encode every audio file of the folder `data` (channels averaged) at all three levels by the VQ-VAE run or
    checkpoint `vqvae`, into the folder `out`. `device` "auto": the GPU when there is one. The decoded audio is
    cached in `audio_cache` (default OUT/audio-cache): a VQ-VAE run's own cache (RUN/cache) when it trained on the
    same folder, so that hours of audio are not decoded and resampled twice."""
    out, device = Path(out), resolve_device(device)
    model, _ = load_vqvae(vqvae, device)
    with writer_lock(out):  # one writer per code cache
        folder = AudioFolder(data, model.config.sample_rate, audio_cache or out / "audio-cache", metadata)
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
        labels = LabelEncoder.from_names((c.labels["artist"] for c in clips),
                                         (g for c in clips for g in split_genres(c.labels["genre"])))
        save_codes(out / CODES, codes)
        labels.save(out)
        return CodeCache(codes, labels)


def load_code_cache(path: str | os.PathLike) -> CodeCache:
    path = Path(path)
    if not (path / CODES).is_file():
        raise DataError(f"{path}: not a codes cache (no {CODES}); make one with 'openjukebox codes build'")
    return CodeCache(load_codes(path / CODES), LabelEncoder.load(path))
