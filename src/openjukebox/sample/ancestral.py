"""Ancestral sampling of one level's codes with a KV cache, windowed past the context (paper Figure 2b).

A window holds n_ctx tokens. Past the first window, each new window keeps the last (1 − hop_fraction)·n_ctx
tokens as its prefix, feeds them through the cache and samples the remaining ones. A prefix of known codes
(the user's own audio, encoded) primes the first window the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import torch

from ..devices import cpu_threads
from ..errors import ConfigError
from ..prior.conditioning import Labels
from ..prior.model import Prior
from .decode import Decoder, compile_pays
from .request import Filters


@torch.inference_mode()
def sample_window(prior: Prior, n_tokens: int, prefix: torch.Tensor, labels: Labels | None,
                  upper_codes: torch.Tensor | None, seed: int, filters: Filters = Filters(), first_code: int = 0,
                  sample_ids: torch.Tensor | None = None, decoder: Decoder | None = None,
                  compile: bool = False) -> torch.Tensor:
    """Codes (batch, n_tokens) of one window whose first prefix.shape[1] codes are given.

    The known tokens (the prefix, and a merged lyrics prior's lyrics) go through the model in one pass; then
    each new token takes one static-shape step (decode.py). A merged lyrics prior draws over its whole vocabulary,
    as released: a drawn lyric character is fed back as drawn and kept as code 0. The draws are a function of
    `seed`, each row's `sample_ids` (default 0 … batch − 1) and each code's place in the song (`first_code` is the
    window's), so they do not depend on batching or windowing. `decoder`, from an earlier window of the same prior
    and batch, is refilled instead of allocated (and not traced again).
    """
    config = prior.config
    batch, known = prefix.shape
    if n_tokens > config.n_ctx or known > n_tokens:
        raise ValueError(f"window of {n_tokens} tokens with a prefix of {known} does not fit n_ctx {config.n_ctx}")
    decoder = decoder or Decoder(prior, batch, filters, compile)
    first, last = decoder.load_window(prefix, n_tokens, labels, upper_codes, seed, first_code, sample_ids)
    decoder.run(first, last)
    return decoder.codes(last)


def window_starts(total_tokens: int, n_ctx: int, hop_fraction: float) -> list[int]:
    """Start token of each window: 0, then steps of hop_fraction·n_ctx until the last window ends at total_tokens."""
    if not 0 < hop_fraction <= 1:
        raise ConfigError(f"hop_fraction (--hop-fraction) must be in (0, 1], got {hop_fraction}")
    if total_tokens <= n_ctx:
        return [0]
    hop = max(1, int(n_ctx * hop_fraction))
    starts = list(range(0, total_tokens - n_ctx, hop))
    return starts + [total_tokens - n_ctx]


# A prior narrower than this samples on one CPU thread: its per-token operations (1 × width by width × 3·width and
# smaller) are too small to share. On an idle 2-core machine a 128-wide step is as fast on one thread as on two and
# a 256-wide one 5 % slower; on a busy machine each of its ~200 operations a token otherwise waits for a second
# thread to be scheduled, which made it 3-4 times slower (docs/sampling.md, "Threads"). At width 512 a product is
# 3 times faster on two threads.
ONE_THREAD_BELOW_WIDTH = 512


@torch.inference_mode()
def sample_level(prior: Prior, total_tokens: int, labels: Labels | Callable[[int], Labels] | None, seed: int,
                 prompt: torch.Tensor | None = None, upper_codes: torch.Tensor | None = None,
                 hop_fraction: float = 0.5, filters: Filters = Filters(), batch: int = 1,
                 sample_ids: torch.Tensor | None = None, compile: bool | str = "auto",
                 on_window: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
    """Codes (batch, total_tokens) of one level, windowed; `prompt` (batch, P) codes are kept as the start.

    For an upsampler, `upper_codes` covers the whole length at the level above (total_tokens / 4 tokens);
    each window gets its slice. Label offsets move with the window; `labels` may instead be a function of the
    window's first audio sample, for labels that change mid-song. Every code's draw depends only on `seed`, its
    sample's index (`sample_ids`, default 0 … batch − 1) and its place in the song, so a run resumed from saved
    codes (passed as `prompt`), or split across processes by sample, gives the same codes as one uninterrupted
    run. With `compile` (True, False, or "auto": where the tokens left to draw pay for it), the decode step is
    compiled once for all windows. `on_window` receives the codes so far after every window.
    """
    narrow = prior.pos_emb.device.type == "cpu" and prior.config.transformer.width < ONE_THREAD_BELOW_WIDTH
    with cpu_threads(1) if narrow else contextlib.nullcontext():
        n_ctx = prior.config.n_ctx
        device = prior.pos_emb.device
        codes = torch.empty(batch, 0, dtype=torch.long, device=device) if prompt is None else prompt.to(device)
        ratio = 2 ** prior.config.cond_downs
        compile = compile_pays(compile, device, total_tokens - codes.shape[1])
        decoder = None
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
            decoder = decoder or Decoder(prior, batch, filters, compile)
            window = sample_window(prior, end - start, codes[:, start:], window_labels, upper, seed, filters, start,
                                   sample_ids, decoder)
            codes = torch.cat([codes[:, :start], window], dim=1)
            if on_window is not None:
                on_window(codes)
        return codes[:, :total_tokens]
