"""Codes on disk: one `.npz` holding every level's codes for several clips plus JSON metadata.

Arrays `level_0`, `level_1`, … are (clips, tokens) int64, padded with -1 where a clip is shorter than the
longest; `metadata` is a JSON string with the sample rate, hop lengths, codebook size, the fingerprint of
the model that made them, and per clip its source, offset, duration and length in samples.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CodesError
from .fileio import atomic_path

FORMAT_VERSION = 1


@dataclass
class CodedClip:
    source: str
    offset: float  # seconds into the source
    duration: float  # seconds of the source that were encoded
    length: int  # samples at the model's rate; decoding is cropped to this
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class CodesFile:
    levels: list[np.ndarray]  # per level (clips, tokens) int64, -1 = padding
    clips: list[CodedClip]
    sample_rate: int
    hop_lengths: tuple[int, ...]
    codebook_size: int
    fingerprint: str

    def codes(self, clip: int, level: int) -> np.ndarray:
        """One clip's codes at one level, padding removed."""
        row = self.levels[level][clip]
        return row[: -(-self.clips[clip].length // self.hop_lengths[level])]


def pad_levels(rows: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per level, clips' code rows of different lengths stacked into one (clips, tokens) array padded with -1."""
    levels = []
    for level_rows in rows:
        width = max(len(r) for r in level_rows)
        levels.append(np.stack([np.pad(r, (0, width - len(r)), constant_values=-1) for r in level_rows]))
    return levels


def save_codes(path: str | os.PathLike, codes: CodesFile) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        raise CodesError(f"{path}: codes files must end in .npz")
    metadata = {
        "format_version": FORMAT_VERSION,
        "sample_rate": codes.sample_rate,
        "hop_lengths": list(codes.hop_lengths),
        "codebook_size": codes.codebook_size,
        "fingerprint": codes.fingerprint,
        "clips": [vars(c) for c in codes.clips],
    }
    arrays = {f"level_{i}": np.asarray(a, dtype=np.int64) for i, a in enumerate(codes.levels)}
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, metadata=np.array(json.dumps(metadata)), **arrays)
    except OSError as e:
        raise CodesError(f"{path}: could not write the codes file ({e.strerror or e})") from None
    return path


def load_codes(path: str | os.PathLike) -> CodesFile:
    path = Path(path)
    if not path.is_file():
        raise CodesError(f"{path}: no such codes file")
    try:
        with np.load(path, allow_pickle=False) as data:
            metadata = json.loads(str(data["metadata"]))
            levels = [data[f"level_{i}"] for i in range(len(metadata["hop_lengths"]))]
        clips = [CodedClip(**c) for c in metadata["clips"]]
        codes = CodesFile(levels, clips, int(metadata["sample_rate"]), tuple(metadata["hop_lengths"]),
                          int(metadata["codebook_size"]), str(metadata["fingerprint"]))
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CodesError(f"{path}: not a codes file ({e})") from None
    except (KeyError, ValueError, TypeError) as e:
        raise CodesError(f"{path}: codes file is missing or has malformed fields ({e})") from None
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CodesError(f"{path}: codes format {metadata.get('format_version')!r} is not supported")
    for level, array in enumerate(codes.levels):
        if array.dtype.kind not in "iu" or array.ndim != 2 or array.shape[0] != len(clips):
            raise CodesError(f"{path}: level_{level} must be an integer (clips, tokens) array")
        if array.size and (array.min() < -1 or array.max() >= codes.codebook_size):
            raise CodesError(f"{path}: level_{level} holds codes outside 0..{codes.codebook_size - 1} (and -1, "
                             f"padding): {int(array.min())} to {int(array.max())}")
    if not all(isinstance(h, int) and h > 0 for h in codes.hop_lengths):
        raise CodesError(f"{path}: invalid hop lengths {list(codes.hop_lengths)}")
    for i, clip in enumerate(clips):
        if not isinstance(clip.length, int) or isinstance(clip.length, bool) or clip.length <= 0:
            raise CodesError(f"{path}: clip {i} has an invalid length {clip.length!r} (a positive number of samples)")
    return codes


def check_codes_match(codes: CodesFile, path: Path, fingerprint: str, codebook_size: int) -> None:
    """Refuse codes made by another model: they would decode to noise."""
    if codes.codebook_size != codebook_size:
        raise CodesError(f"{path}: codes are for a codebook of {codes.codebook_size} entries, "
                         f"this model has {codebook_size}")
    if codes.fingerprint != fingerprint:
        raise CodesError(f"{path}: codes were made by another model (fingerprint {codes.fingerprint}, "
                         f"this model is {fingerprint}); re-encode the audio with this model")
    for level, hop in enumerate(codes.hop_lengths):
        for clip in range(len(codes.clips)):
            valid = codes.codes(clip, level)  # -1 is padding only after a clip's last code
            needed = -(-codes.clips[clip].length // hop)
            if len(valid) < needed:
                raise CodesError(f"{path}: clip {clip} has {len(valid)} codes at level {level}, its length of "
                                 f"{codes.clips[clip].length} samples needs {needed}")
            if valid.size and (valid.min() < 0 or valid.max() >= codebook_size):
                raise CodesError(f"{path}: level {level} holds code values outside [0, {codebook_size - 1}]")
