"""A prior over one level's codes: top-level prior (labels + timing) or upsampler (labels + the level above).

Input at position t is the embedding of code t−1 (the first position gets the labels, or a learned start
token without labels) + a learned position embedding + the conditioning x_cond; the transformer's output
predicts code t. As released, a non-merged decoder ties the output layer to the code embedding and adds
x_cond again before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .attention import KVCache
from .conditioning import Labels, LabelEmbedding, TimingEmbedding, UpsamplerConditioner
from .transformer import Transformer, TransformerConfig


def next_token_loss(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in nats per token of teacher-forced logits (batch, T, bins) against codes (batch, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), codes.reshape(-1))


@dataclass(frozen=True)
class PriorConfig:
    level: int  # 0, 1 (upsamplers) or 2 (top)
    bins: int  # codebook size of this level
    transformer: TransformerConfig
    hop_length: int  # audio samples per token at this level
    n_artists: int = 0  # 0 with n_genres 0: an unconditional model
    n_genres: int = 0
    max_genres: int = 1
    timing_bins: int = 0  # 0: no timing signal (upsamplers never have one, as released)
    min_duration: float = 0.0  # seconds, the range of the total-length embedding
    max_duration: float = 600.0
    sample_rate: int = 44100
    merged_decoder: bool = False
    upper_bins: int = 0  # upsamplers: codebook size of the level above (0 for the top level)
    cond_width: int = 0
    cond_depth: int = 0
    cond_downs: int = 2  # the level above has 2**cond_downs fewer tokens
    cond_dilation_cycle: int = 8
    cond_res_scale: bool = False

    def __post_init__(self) -> None:
        if (self.n_artists > 0) != (self.n_genres > 0):
            raise ConfigError("prior config: give both n_artists and n_genres, or neither (unconditional)")
        if self.upper_bins and self.timing_bins:
            raise ConfigError("prior config: upsamplers have no timing signal")

    @property
    def conditioned_on_labels(self) -> bool:
        return self.n_artists > 0

    @property
    def window_samples(self) -> int:
        return self.transformer.n_ctx * self.hop_length


class Prior(nn.Module):
    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        width = config.transformer.width
        self.x_emb = nn.Embedding(config.bins, width)
        self.pos_emb = nn.Parameter(torch.randn(config.transformer.n_ctx, width) * 0.01)
        if config.conditioned_on_labels:
            self.labels = LabelEmbedding(config.n_artists, config.n_genres, width)
        else:
            self.start_token = nn.Parameter(torch.randn(1, width) * 0.01)
        if config.timing_bins:
            self.timing = TimingEmbedding(config.timing_bins, config.min_duration * config.sample_rate,
                                          config.max_duration * config.sample_rate, width)
        if config.upper_bins:
            self.conditioner = UpsamplerConditioner(config.upper_bins, width, config.cond_width, config.cond_depth,
                                                    config.cond_downs, config.cond_dilation_cycle, config.cond_res_scale)
        self.transformer = Transformer(config.transformer)
        self.x_out = nn.Linear(width, config.bins, bias=False)
        if not config.merged_decoder:
            self.x_out.weight = self.x_emb.weight
        # Small embeddings (GPT-style std 0.02) keep the initial logits near uniform instead of N(0, width).
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        if config.merged_decoder:
            nn.init.normal_(self.x_out.weight, std=0.02)

    def saved_state(self) -> dict[str, torch.Tensor]:
        """The state dict without the tied output weight (safetensors stores each tensor once)."""
        state = self.state_dict()
        if not self.config.merged_decoder:
            del state["x_out.weight"]
        return state

    def start(self, labels: Labels | None, batch: int) -> torch.Tensor:
        """(batch, width): the first position's input."""
        if self.config.conditioned_on_labels:
            if labels is None:
                raise ConfigError("this prior is conditioned on artist and genre: give labels")
            return self.labels(labels)
        return self.start_token.expand(batch, -1)

    def condition(self, labels: Labels | None, upper_codes: torch.Tensor | None, batch: int, n: int) -> torch.Tensor:
        """x_cond (batch, n, width) for the first n tokens of a window: timing or upsampled upper codes, else 0."""
        width = self.config.transformer.width
        cond = self.pos_emb.new_zeros(batch, n, width)
        if self.config.timing_bins:
            if labels is None:
                raise ConfigError("this prior uses the timing signal: give labels with total_length and offset")
            cond = cond + self.timing(labels, self.config.window_samples, self.config.transformer.n_ctx, n)
        if self.config.upper_bins:
            if upper_codes is None:
                raise ConfigError(f"the level-{self.config.level} upsampler needs the codes of the level above")
            cond = cond + self.conditioner(upper_codes)[:, :n]
        return cond

    def forward(self, codes: torch.Tensor, labels: Labels | None = None,
                upper_codes: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits (batch, T, bins) for codes (batch, T), T ≤ n_ctx."""
        b, t = codes.shape
        x = torch.cat([self.start(labels, b)[:, None], self.x_emb(codes[:, :-1])], dim=1)
        cond = self.condition(labels, upper_codes, b, t)
        h = self.transformer(x + self.pos_emb[:t] + cond)
        if not self.config.merged_decoder:
            h = h + cond
        return self.x_out(h)

    def loss(self, codes: torch.Tensor, labels: Labels | None = None,
             upper_codes: torch.Tensor | None = None) -> torch.Tensor:
        """Mean negative log-likelihood in nats per token."""
        return next_token_loss(self.forward(codes, labels, upper_codes), codes)

    def new_caches(self, batch: int) -> list[KVCache]:
        return self.transformer.new_caches(batch, self.pos_emb.device, self.pos_emb.dtype)

    def step(self, previous: torch.Tensor | None, pos: int, cond: torch.Tensor, caches: list[KVCache],
             start: torch.Tensor) -> torch.Tensor:
        """Logits (batch, bins) for position `pos`, given the code at pos−1 (None at pos 0) and the window's x_cond."""
        x = start[:, None] if previous is None else self.x_emb(previous)[:, None]
        c = cond[:, pos: pos + 1]
        h = self.transformer.step(x + self.pos_emb[pos: pos + 1] + c, caches, pos)
        if not self.config.merged_decoder:
            h = h + c
        return self.x_out(h)[:, 0]
