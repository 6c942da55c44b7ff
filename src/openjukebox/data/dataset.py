"""A folder of audio files as a training set of random crops.

Lyrics come from the metadata table, or from NAME.lrc beside NAME.wav, which also says when each word is sung.
Files are decoded once into a cache of float16 arrays at the model's sample rate (memory-mapped, so a crop
costs a slice, not a decode), keyed by path, size and modification time: re-running training never
re-decodes, and adding a file decodes only that file. Unreadable files are skipped with one warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import AUDIO_EXTENSIONS, load_audio
from ..errors import AudioError, DataError
from ..fileio import atomic_path, atomic_write_text
from ..lyrics.timing import read_lrc
from .metadata import find_metadata, read_metadata

INDEX_VERSION = 1


@dataclass(frozen=True)
class AudioFile:
    path: str  # relative to the dataset folder
    channels: int
    length: int  # samples at the dataset's sample rate
    cache: str  # cached array's file name
    artist: str = ""
    genre: str = ""
    lyrics: str = ""
    lyrics_timing: str = ""  # from NAME.lrc beside the audio: anchors as JSON (openjukebox.lyrics.timing)


@dataclass
class Batch:
    audio: torch.Tensor  # (batch, 1, samples) mono
    file_index: torch.Tensor  # (batch,) which file each crop came from
    offset: torch.Tensor  # (batch,) crop start in samples; with total_length this is the timing-conditioning input
    total_length: torch.Tensor  # (batch,) the whole file's length in samples


def _timed_lyrics(lrc: Path, lyrics: str) -> dict[str, str]:
    """The lyrics and their timing from an LRC file beside the audio, which must sing what the metadata says."""
    timed = read_lrc(lrc)
    if lyrics.strip() and lyrics.split() != timed.text.split():
        raise DataError(f"{lrc}: its lyrics differ from the metadata's 'lyrics' for the same song; keep one of them")
    return {"lyrics": timed.text, "lyrics_timing": timed.anchors_json()}


def list_audio_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


class AudioFolder:
    def __init__(self, data_dir: str | os.PathLike, sample_rate: int, cache_dir: str | os.PathLike,
                 metadata: str | os.PathLike | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.sample_rate = sample_rate
        self.cache_dir = Path(cache_dir) / f"audio-{sample_rate}"
        if not self.data_dir.exists():
            raise DataError(f"{self.data_dir}: no such data folder")
        if not self.data_dir.is_dir():
            raise DataError(f"{self.data_dir}: is a file; --data takes a folder of audio files")
        table_path = Path(metadata) if metadata else find_metadata(self.data_dir)
        labels = read_metadata(table_path) if table_path else {}
        self.files = self._index(labels)
        self._arrays: dict[int, np.ndarray] = {}
        self.lengths = np.array([f.length for f in self.files], dtype=np.int64)

    def _index(self, labels: dict[str, dict[str, str]]) -> list[AudioFile]:
        paths = list_audio_files(self.data_dir)
        if not paths:
            raise DataError(f"{self.data_dir}: no audio files found (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")
        index_path = self.cache_dir / "index.json"
        try:
            cached = json.loads(index_path.read_text())
            known = cached["files"] if cached.get("version") == INDEX_VERSION else {}
        except (OSError, ValueError, KeyError, TypeError):
            known = {}
        files, entries, unreadable = [], {}, []
        for path in paths:
            rel = str(path.relative_to(self.data_dir))
            stat = path.stat()
            key = f"{rel}|{stat.st_size}|{stat.st_mtime_ns}"
            entry = known.get(key)
            if entry is None or ("error" not in entry and not (self.cache_dir / entry["cache"]).is_file()):
                entry = self._decode(path, key)
            entries[key] = entry
            if "error" in entry:
                unreadable.append(f"{rel} ({entry['error']})")
                continue
            fields = dict(labels.get(rel, {}))
            lrc = path.with_suffix(".lrc")
            if lrc.is_file():
                fields.update(_timed_lyrics(lrc, fields.get("lyrics", "")))
            files.append(AudioFile(rel, entry["channels"], entry["length"], entry["cache"], **fields))
        try:
            # Other folders' entries are kept: a VQ-VAE run caches its training and its evaluation folders in one
            # place, and a code cache may reuse it.
            atomic_write_text(index_path, json.dumps({"version": INDEX_VERSION, "files": {**known, **entries}}))
        except OSError as e:
            raise DataError(f"{index_path}: could not write the dataset index ({e.strerror or e})") from None
        if unreadable:
            warnings.warn(f"skipping {len(unreadable)} unreadable file(s) in {self.data_dir}: " + "; ".join(unreadable),
                          stacklevel=3)
        if not files:
            raise DataError(f"{self.data_dir}: none of the {len(paths)} audio file(s) could be read")
        return files

    def _decode(self, path: Path, key: str) -> dict:
        try:
            audio = load_audio(path, sample_rate=self.sample_rate)
        except AudioError as e:
            return {"error": str(e).removeprefix(f"{path}: ")}
        name = hashlib.sha1(key.encode()).hexdigest()[:20] + ".npy"
        try:
            with atomic_path(self.cache_dir / name) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, audio.astype(np.float16))
        except OSError as e:
            raise DataError(f"{self.cache_dir}: could not write the audio cache ({e.strerror or e})") from None
        return {"channels": int(audio.shape[0]), "length": int(audio.shape[1]), "cache": name}

    def __len__(self) -> int:
        return len(self.files)

    @property
    def total_seconds(self) -> float:
        return float(self.lengths.sum()) / self.sample_rate

    def array(self, i: int) -> np.ndarray:
        """File i as (channels, samples) float16, memory-mapped."""
        if i not in self._arrays:
            self._arrays[i] = np.load(self.cache_dir / self.files[i].cache, mmap_mode="r")
        return self._arrays[i]

    def crop(self, i: int, offset: int, length: int) -> np.ndarray:
        """(channels, length) float32 from file i at `offset`, zero-padded past the end of the file."""
        data = np.asarray(self.array(i)[:, offset:offset + length], dtype=np.float32)
        if data.shape[1] < length:
            data = np.pad(data, ((0, 0), (0, length - data.shape[1])))
        return data

    def sample_batch(self, batch_size: int, length: int, generator: np.random.Generator,
                     train: bool = True) -> Batch:
        """Random crops, files drawn in proportion to their length.

        Training mixes the channels down with random weights (the paper's left/right augmentation,
        Dirichlet(1) weights, which for stereo is α·L + (1−α)·R with α ~ U(0, 1)); evaluation averages them.
        """
        probs = self.lengths / self.lengths.sum()
        picks = generator.choice(len(self.files), size=batch_size, p=probs)
        audio, offsets = [], []
        for i in picks:
            offset = int(generator.integers(0, max(1, self.lengths[i] - length + 1)))
            clip = self.crop(int(i), offset, length)
            audio.append(downmix(clip, generator if train else None))
            offsets.append(offset)
        return Batch(
            audio=torch.from_numpy(np.stack(audio)),
            file_index=torch.as_tensor(picks, dtype=torch.long),
            offset=torch.as_tensor(offsets, dtype=torch.long),
            total_length=torch.as_tensor(self.lengths[picks], dtype=torch.long),
        )

    def windows(self, length: int, max_per_file: int) -> list[tuple[int, int]]:
        """(file, offset) of up to `max_per_file` evenly spaced, non-overlapping windows per file, for evaluation."""
        out = []
        for i, n in enumerate(self.lengths):
            count = max(1, min(max_per_file, int(n) // length))
            starts = np.linspace(0, max(0, int(n) - length), count).astype(int)
            out.extend((i, int(s)) for s in starts)
        return out


def downmix(clip: np.ndarray, generator: np.random.Generator | None) -> np.ndarray:
    """(channels, samples) → (1, samples): random convex weights when `generator` is given, else the mean."""
    if clip.shape[0] == 1:
        return clip
    if generator is None:
        return clip.mean(0, keepdims=True)
    weights = generator.dirichlet(np.ones(clip.shape[0])).astype(np.float32)
    return (weights @ clip)[None]
