"""Ancestral sampling of one level's codes with a KV cache, windowed past the context (paper Figure 2b).

A window holds n_ctx tokens. Past the first window, each new window keeps the last (1 − hop_fraction)·n_ctx
tokens as its prefix, feeds them through the cache and samples the remaining ones. A prefix of known codes
(the user's own audio, encoded) primes the first window the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from ..errors import ConfigError
from ..prior.conditioning import Labels
from ..prior.model import Prior


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Logits (batch, bins) scaled by 1/temperature with everything outside the top k / nucleus p set to −inf."""
    if temperature <= 0:
        raise ConfigError(f"--temperature must be positive, got {temperature}")
    logits = logits.float() / temperature
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens ranked above it already cover p.
        drop = probs.cumsum(-1) - probs > top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def sample_window(prior: Prior, n_tokens: int, prefix: torch.Tensor, labels: Labels | None,
                  upper_codes: torch.Tensor | None, generator: torch.Generator, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Codes (batch, n_tokens) of one window whose first prefix.shape[1] codes are given.

    The known tokens (the prefix, and a merged lyrics prior's lyrics) go through the model in one pass; then
    each new token takes one cached step. A merged lyrics prior draws over its whole vocabulary, as released:
    a drawn lyric character is fed back as drawn and kept as code 0.
    """
    config = prior.config
    batch, known = prefix.shape
    if n_tokens > config.n_ctx or known > n_tokens:
        raise ValueError(f"window of {n_tokens} tokens with a prefix of {known} does not fit n_ctx {config.n_ctx}")
    cond = prior.condition(labels, upper_codes, batch, n_tokens)
    start = prior.start(labels, batch)
    caches = prior.new_caches(batch, prior.encoder_states(labels))
    given = prefix + config.code_shift
    if config.merged_lyrics:
        given = torch.cat([prior.lyrics(labels), given], dim=1)
    out = torch.empty(batch, n_tokens, dtype=torch.long, device=prefix.device)
    out[:, :known] = prefix
    previous = None
    if given.shape[1]:  # the known part in one batched pass
        prior.prefill(given, cond, caches, start)
        previous = given[:, -1]
    for pos in range(given.shape[1], config.lead + n_tokens):
        logits = prior.step(previous, pos, cond, caches, start)
        probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
        previous = torch.multinomial(probs, 1, generator=generator)[:, 0]
        out[:, pos - config.lead] = (previous - config.code_shift).clamp_min(0)
    return out


def window_starts(total_tokens: int, n_ctx: int, hop_fraction: float) -> list[int]:
    """Start token of each window: 0, then steps of hop_fraction·n_ctx until the last window ends at total_tokens."""
    if not 0 < hop_fraction <= 1:
        raise ConfigError(f"--hop-fraction must be in (0, 1], got {hop_fraction}")
    if total_tokens <= n_ctx:
        return [0]
    hop = max(1, int(n_ctx * hop_fraction))
    starts = list(range(0, total_tokens - n_ctx, hop))
    return starts + [total_tokens - n_ctx]


@torch.no_grad()
def sample_level(prior: Prior, total_tokens: int, labels: Labels | Callable[[int], Labels] | None, seed: int,
                 prompt: torch.Tensor | None = None, upper_codes: torch.Tensor | None = None,
                 hop_fraction: float = 0.5, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0,
                 batch: int = 1, on_window: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Codes (batch, total_tokens) of one level, windowed; `prompt` (batch, P) codes are kept as the start.

    For an upsampler, `upper_codes` covers the whole length at the level above (total_tokens / 4 tokens);
    each window gets its slice. Label offsets move with the window; `labels` may instead be a function of the
    window's first audio sample, for labels that change mid-song. Each window draws from its own generator,
    seeded by `seed` and the window's start, so a run resumed from saved codes (passed as `prompt`) gives the
    same codes as an uninterrupted one. `on_window` receives the codes so far after every window.
    """
    n_ctx = prior.config.n_ctx
    device = prior.pos_emb.device
    codes = torch.empty(batch, 0, dtype=torch.long, device=device) if prompt is None else prompt.to(device)
    ratio = 2 ** prior.config.cond_downs
    for start in window_starts(total_tokens, n_ctx, hop_fraction):
        end = min(start + n_ctx, total_tokens)
        if end <= codes.shape[1]:
            continue  # already known (prompt)
        window_labels = None
        if callable(labels):
            window_labels = labels(start * prior.config.hop_length).to(device)
        elif labels is not None:
            offset = labels.offset + start * prior.config.hop_length
            window_labels = dataclasses.replace(labels, offset=offset).to(device)
        upper = None if upper_codes is None else upper_codes[:, start // ratio: -(-end // ratio)]
        generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + start)
        window = sample_window(prior, end - start, codes[:, start:], window_labels, upper, generator,
                               temperature, top_k, top_p)
        codes = torch.cat([codes[:, :start], window], dim=1)
        if on_window is not None:
            on_window(codes)
    return codes[:, :total_tokens]
