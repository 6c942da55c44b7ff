"""Which lyrics are sung when, read from a lyrics prior's attention (paper section 5.3, Figure 3).

Every code of the top level attends, in one layer and head chosen for it (as released: 5b_lyrics layer 68 head 2,
1b_lyrics layer 63 head 0), to the lyric characters of its window. Mapping each window's characters back to their
place in the whole lyrics gives, per code, a distribution over the song's characters. The sung position is the
most likely path through them that never goes backwards (singing does not), and a word starts at the first code
that reaches its first character. The result is written as word-level LRC, as JSON, and as a picture of the attention.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_path, atomic_write_text
from ..lyrics.text import lyrics_window
from ..lyrics.timing import lrc_stamp
from ..prior.conditioning import Labels
from ..prior.model import Prior
from .ancestral import window_starts


@dataclass
class WordTiming:
    word: str
    start: float  # seconds
    character: int  # index of its first character in the cleaned lyrics
    reached: bool  # False: the music ended before the singing reached this word (start = the song's end)


@torch.no_grad()
def lyrics_attention(prior: Prior, codes: torch.Tensor, labels_at: Callable[[int], Labels], lyrics: list[int],
                     total_length: int, hop_fraction: float, layer: int | None = None,
                     head: int | None = None, timing: Sequence[tuple[int, int]] = (), song_start: int = 0
                     ) -> np.ndarray:
    """(batch, T, len(lyrics)): each top-level code's attention over the whole lyrics, window by window as sampled
    (each code read from the window that sampled it), in the prior's alignment head or the given one; `timing` is the
    lyrics' (sample, token) anchors, if they were timed when sampled; the codes begin `song_start` samples into the
    song, and `labels_at` takes offsets from their start."""
    config = prior.config
    batch, total = codes.shape
    out = np.zeros((batch, total, len(lyrics)), dtype=np.float32)
    device = prior.pos_emb.device
    done = 0
    for start in window_starts(total, config.n_ctx, hop_fraction):
        end = min(start + config.n_ctx, total)
        offset = start * config.hop_length
        _, indices = lyrics_window(lyrics, config.n_tokens, total_length, song_start + offset, config.window_samples,
                                   timing)
        weights = prior.lyrics_attention(codes[:, start:end].to(device), labels_at(offset).to(device), layer, head)
        index = np.asarray(indices)
        valid = index >= 0
        window = weights[:, done - start:].float().cpu().numpy()
        out[:, done:end][:, :, index[valid]] = window[:, :, valid]
        done = end
    return out


def monotone_path(attention: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """The character each code sings: the path through (T, C) attention that starts at character 0, moves on by
    at most one character per code and never goes back, with the largest sum of log attention (a Viterbi pass).

    Decoding the whole path at once lets the clear stretches of the attention carry the blurred ones: mean word
    start error 0.83 s against 1.02 s for a per-code argmax made monotone (docs/lyrics-alignment.md)."""
    log_attention = np.log(np.maximum(attention.astype(np.float64), 0.0) + floor)
    steps, characters = log_attention.shape
    score = np.full(characters, -np.inf)
    score[0] = log_attention[0, 0]
    advanced = np.zeros((steps, characters), dtype=bool)  # the best way into (t, c) came from (t - 1, c - 1)
    for t in range(1, steps):
        from_previous = np.concatenate(([-np.inf], score[:-1]))
        advanced[t] = from_previous > score
        score = np.where(advanced[t], from_previous, score) + log_attention[t]
    path = np.zeros(steps, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(steps - 1, 0, -1):
        path[t - 1] = path[t] - int(advanced[t, path[t]])
    return path


def word_timings(text: str, attention: np.ndarray, seconds_per_code: float) -> list[WordTiming]:
    """Words of the cleaned lyrics `text` with the time each starts, from one sample's (T, len(text)) attention;
    the times never decrease."""
    if attention.shape[0] == 0 or attention.shape[1] == 0:
        return []
    position = monotone_path(attention)
    words = []
    for match in re.finditer(r"\S+", text):
        hits = np.flatnonzero(position >= match.start())
        code = int(hits[0]) if hits.size else attention.shape[0] - 1
        words.append(WordTiming(match.group(), round(code * seconds_per_code, 3), match.start(), bool(hits.size)))
    return words


def to_lrc(text: str, words: list[WordTiming]) -> str:
    """Enhanced LRC: a line's time, then each word's time before it."""
    lines, line_start, cursor = [], 0, 0
    for line in text.split("\n"):
        in_line = [w for w in words[cursor:] if line_start <= w.character < line_start + len(line)]
        cursor += len(in_line)
        line_start += len(line) + 1
        if in_line:
            stamped = " ".join(f"<{lrc_stamp(w.start)}>{w.word}" for w in in_line)
            lines.append(f"[{lrc_stamp(in_line[0].start)}]{stamped}")
    return "\n".join(lines) + "\n"


def write_alignment(out: Path, stem: str, text: str, attention: np.ndarray, seconds_per_code: float) -> list[Path]:
    """stem.lrc, stem.json and (with matplotlib installed) stem.png for one sample."""
    words = word_timings(text, attention, seconds_per_code)
    lrc, data = out / f"{stem}.lrc", out / f"{stem}.json"
    atomic_write_text(lrc, to_lrc(text, words))
    atomic_write_text(data, json.dumps({"lyrics": text, "seconds_per_code": seconds_per_code,
                                        "words": [asdict(w) for w in words]}, indent=1) + "\n")
    written = [lrc, data]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.imshow(attention.T, aspect="auto", origin="lower", cmap="magma",
                extent=(0, attention.shape[0] * seconds_per_code, 0, attention.shape[1]))
    axes.set_xlabel("music (seconds)")
    axes.set_ylabel("lyrics (character)")
    axes.set_title("attention of the music to the lyrics")
    png = out / f"{stem}.png"
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return [*written, png]
