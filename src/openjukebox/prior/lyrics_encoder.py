"""The lyrics encoder of a separate encoder-decoder lyrics prior (the released `5b_lyrics`, paper section 4.3).

A small causal transformer over a window's lyric tokens; its last activations, projected to the prior's width
and layer-normalised, are what the prior's encoder-decoder layers attend to. As released it is autoregressive
(it has its own next-character loss through `x_out`), so a lyric token's state never depends on later ones.
"""

from __future__ import annotations

import torch
from torch import nn

from .transformer import Transformer, TransformerConfig


class LyricsEncoder(nn.Module):
    def __init__(self, config: TransformerConfig, n_vocab: int, prior_width: int) -> None:
        super().__init__()
        width = config.width
        self.x_emb = nn.Embedding(n_vocab, width)
        self.start_token = nn.Parameter(torch.randn(1, width) * 0.01)
        self.pos_emb = nn.Parameter(torch.randn(config.n_ctx, width) * 0.01)
        self.transformer = Transformer(config)
        self.proj = nn.Linear(width, prior_width)
        self.ln = nn.LayerNorm(prior_width, eps=1e-5)
        self.x_out = nn.Linear(prior_width, n_vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Lyric tokens (batch, n_tokens) → encoder states (batch, n_tokens, prior width)."""
        b, t = tokens.shape
        x = torch.cat([self.start_token.expand(b, 1, -1), self.x_emb(tokens[:, :-1])], dim=1)
        return self.ln(self.proj(self.transformer(x + self.pos_emb[:t])))

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """Next-character logits (batch, n_tokens, n_vocab) from the encoder states."""
        return self.x_out(states)
