"""What a prior is conditioned on (paper section 4.2): labels, timing and, for upsamplers, the codes above.

Labels (artist and up to `max_genres` genres, summed) become the embedding of the first position; a model
without labels learns a start token instead. Timing (top level only, as released) is three range embeddings
per position: the song's total length, the absolute position in samples and the fraction of the song elapsed.
Upsamplers instead add a learned upsampling of the upper level's codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..resnet1d import ResNet1D


@dataclass
class Labels:
    """A batch of conditioning labels. Genres are padded with -1; lengths and offsets are in audio samples."""

    artist: torch.Tensor  # (batch,) int64
    genres: torch.Tensor  # (batch, max_genres) int64, -1 = no genre
    total_length: torch.Tensor  # (batch,) samples in the whole song
    offset: torch.Tensor  # (batch,) sample at which this window starts
    lyrics: torch.Tensor | None = None  # (batch, n_tokens) the window's lyric tokens, for lyrics priors

    def rows(self, index: slice) -> Labels:
        """The labels of some samples of the batch."""
        lyrics = None if self.lyrics is None else self.lyrics[index]
        return Labels(*(t[index] for t in (self.artist, self.genres, self.total_length, self.offset)), lyrics)

    def to(self, device: torch.device) -> Labels:
        lyrics = None if self.lyrics is None else self.lyrics.to(device)
        return Labels(*(t.to(device) for t in (self.artist, self.genres, self.total_length, self.offset)), lyrics)


class LabelEmbedding(nn.Module):
    """artist_emb(artist) + Σ genre_emb(g) over the genres present: the first position's input."""

    def __init__(self, n_artists: int, n_genres: int, width: int) -> None:
        super().__init__()
        self.artist_emb = nn.Embedding(n_artists, width)
        self.genre_emb = nn.Embedding(n_genres, width)

    def forward(self, labels: Labels) -> torch.Tensor:
        present = (labels.genres >= 0).unsqueeze(-1).to(self.genre_emb.weight.dtype)
        genres = (self.genre_emb(labels.genres.clamp_min(0)) * present).sum(1)
        return self.artist_emb(labels.artist) + genres  # (batch, width)


class RangeEmbedding(nn.Module):
    """Embeds values interpolated from `start` to `end` over n positions, binned uniformly over [low, high)."""

    def __init__(self, bins: int, low: float, high: float, width: int, clamp_end: bool = False) -> None:
        super().__init__()
        self.bins, self.low, self.high, self.clamp_end = bins, low, high, clamp_end
        self.emb = nn.Embedding(bins, width)

    def forward(self, start: torch.Tensor, end: torch.Tensor | None, n: int) -> torch.Tensor:
        """(batch,) start/end → (batch, n, width); with end None one value per batch item, shape (batch, 1, width)."""
        if end is None:
            positions = start.float()[:, None]
        else:
            if self.clamp_end:
                end = end.clamp(max=self.high)
            steps = torch.arange(n, device=start.device, dtype=torch.float32) / n
            positions = start.float()[:, None] + (end.float() - start.float())[:, None] * steps[None]
        bins = torch.floor(self.bins * (positions - self.low) / (self.high - self.low)).long()
        return self.emb(bins.clamp(0, self.bins - 1))


class TimingEmbedding(nn.Module):
    """total length + absolute position + relative position, per token of a window of n_ctx tokens."""

    def __init__(self, bins: int, min_samples: float, max_samples: float, width: int) -> None:
        super().__init__()
        self.total_length_emb = RangeEmbedding(bins, min_samples, max_samples, width)
        self.absolute_pos_emb = RangeEmbedding(bins, 0.0, max_samples, width)
        self.relative_pos_emb = RangeEmbedding(bins, 0.0, 1.0, width, clamp_end=True)

    def forward(self, labels: Labels, window_samples: int, n_ctx: int, n: int) -> torch.Tensor:
        """(batch, n, width) for the first n tokens of a window of n_ctx tokens spanning `window_samples`."""
        start = labels.offset.float()
        end = start + window_samples
        total = labels.total_length.float()
        out = (self.total_length_emb(total, None, n_ctx)
               + self.absolute_pos_emb(start, end, n_ctx)
               + self.relative_pos_emb(start / total, end / total, n_ctx))
        return out[:, :n]


class UpsamplerConditioner(nn.Module):
    """Codes of the level above → per-token conditioning of this level: embedding, Conv1d(k3), `downs` ×
    [dilated ResNet (3**(d % cycle), not reversed) → ConvTranspose1d(k4, s2)], LayerNorm."""

    def __init__(self, upper_bins: int, width: int, cond_width: int, depth: int, downs: int, cycle: int,
                 res_scale: bool) -> None:
        super().__init__()
        self.x_emb = nn.Embedding(upper_bins, width)
        scale = 1.0 / depth**0.5 if res_scale else 1.0
        layers: list[nn.Module] = [nn.Conv1d(width, cond_width, 3, padding=1)]
        for i in range(downs):
            layers.append(ResNet1D(cond_width, depth, 3, cycle, res_scale=scale))
            layers.append(nn.ConvTranspose1d(cond_width, width if i == downs - 1 else cond_width, 4, 2, 1))
        self.layers = nn.Sequential(*layers)
        self.ln = nn.LayerNorm(width)
        self.upsampling = 2**downs

    def forward(self, upper_codes: torch.Tensor) -> torch.Tensor:
        """(batch, T_upper) → (batch, T_upper · 2**downs, width)."""
        x = self.x_emb(upper_codes).transpose(1, 2)
        return self.ln(self.layers(x).transpose(1, 2))
