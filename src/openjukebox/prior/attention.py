"""Factorized self-attention of the Scalable Transformer, by reshapes and SDPA, with a per-pattern KV cache.

The context of n_ctx tokens is viewed as (blocks, block_len). Patterns, numbered as in the released models:
  0 dense: causal over everything before;
  1 row: causal within the query's own block;
  2 column: the same in-block offset in this and every earlier block (causal);
  3 previous row: the whole previous block, unmasked; block 0 has none, and its output is exactly 0;
  6 encoder-decoder: every position attends to all the lyrics encoder's states (CrossAttention);
  7 lyrics prefix: causal, over only the first `prefix_keys` positions (the lyrics of a merged sequence).
Each is computed on a reshaped tensor, never with a dense n_ctx × n_ctx mask.

Incremental decoding keeps only what a pattern can ever look at again: a row layer the current block, a
previous-row layer the current and previous block, a prefix layer the prefix, dense and column layers every
key so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DENSE, ROW, COLUMN, PREVIOUS_ROW, ENCODER_DECODER, PREFIX = 0, 1, 2, 3, 6, 7
SELF_ATTENTION_PATTERNS = (DENSE, ROW, COLUMN, PREVIOUS_ROW, PREFIX)


def _pad_to_blocks(t: torch.Tensor, block_len: int) -> torch.Tensor:
    """(B, H, T, d) → (B, H, ceil(T/L)·L, d), zero-padded at the end: padding sits after every real position,
    so causal patterns never let a real query see it."""
    return F.pad(t, (0, 0, 0, -t.shape[2] % block_len))


def factorized_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: int, block_len: int,
                         prefix_keys: int = 0) -> torch.Tensor:
    """Attention of (batch, heads, T, d_head) queries over keys at the same positions, for one pattern."""
    b, h, t, d = q.shape
    if pattern == DENSE:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if pattern == PREFIX:
        n = min(prefix_keys, t)
        visible = torch.ones(t, n, dtype=torch.bool, device=q.device).tril()
        return F.scaled_dot_product_attention(q, k[:, :, :n], v[:, :, :n], attn_mask=visible)
    q, k, v = (_pad_to_blocks(x, block_len) for x in (q, k, v))
    n = q.shape[2] // block_len
    q, k, v = (x.view(b, h, n, block_len, d) for x in (q, k, v))
    if pattern == ROW:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    elif pattern == COLUMN:
        q, k, v = (x.transpose(2, 3) for x in (q, k, v))  # (b, h, block_len, n, d): attend across blocks
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(2, 3)
    elif pattern == PREVIOUS_ROW:
        k_prev = F.pad(k, (0, 0, 0, 0, 1, 0))[:, :, :-1]
        v_prev = F.pad(v, (0, 0, 0, 0, 1, 0))[:, :, :-1]
        out = F.scaled_dot_product_attention(q, k_prev, v_prev)
        out = torch.cat([torch.zeros_like(out[:, :, :1]), out[:, :, 1:]], dim=2)
    else:
        raise ValueError(f"unknown attention pattern {pattern}")
    return out.reshape(b, h, n * block_len, d)[:, :, :t]


@dataclass
class KVCache:
    """Preallocated keys/values of one layer: (batch, heads, slots, d_head). Slot meaning depends on the pattern."""

    keys: torch.Tensor
    values: torch.Tensor


def cache_slots(pattern: int, n_ctx: int, block_len: int, prefix_keys: int = 0) -> int:
    """How many past keys a pattern may still need: all for dense/column, one block for row, two for previous
    row, the prefix for a prefix layer (and one spare slot, which positions past the prefix write and no query
    reads, so that every step writes somewhere)."""
    return {DENSE: n_ctx, COLUMN: n_ctx, ROW: block_len, PREVIOUS_ROW: 2 * block_len, PREFIX: prefix_keys + 1}[pattern]


def _slot(pattern: int, pos: torch.Tensor, block_len: int, prefix_keys: int = 0) -> torch.Tensor:
    """Where position(s) `pos` (int64 tensor) are kept in a pattern's cache."""
    if pattern in (DENSE, COLUMN):
        return pos
    if pattern == PREFIX:
        return pos.clamp(max=prefix_keys)
    if pattern == ROW:
        return pos % block_len
    return pos % (2 * block_len)  # previous row: a ring of two blocks


@dataclass
class StepIndex:
    """Everything a one-token step needs to know of its position `pos` ((1,) int64), computed once per step for
    all layers: the cache slot each pattern writes, and additive masks (1, slots) of the slots each may read."""

    slots: dict[int, torch.Tensor]
    visible: dict[int, torch.Tensor]
    offset: torch.Tensor  # in-block offset: the column a column layer reads
    previous_half: torch.Tensor  # the half of a previous-row ring that holds the previous block
    has_previous: torch.Tensor  # (1,) bool: false in block 0, whose previous-row output is 0, as released


def step_index(pos: torch.Tensor, patterns: set[int], n_ctx: int, block_len: int, prefix_keys: int,
               dtype: torch.dtype) -> StepIndex:
    """The StepIndex of position `pos` for layers of the given self-attention patterns, computing in `dtype`."""
    block, offset = pos // block_len, pos % block_len
    positions = torch.arange(n_ctx, device=pos.device)
    slots = {p: _slot(p, pos, block_len, prefix_keys) for p in patterns}
    visible = {}
    if DENSE in patterns:
        visible[DENSE] = positions <= pos
    if ROW in patterns:
        visible[ROW] = positions[:block_len] <= offset
    if COLUMN in patterns:
        visible[COLUMN] = positions[: n_ctx // block_len] <= block
    if PREFIX in patterns:
        visible[PREFIX] = (positions[: prefix_keys + 1] <= pos) & (positions[: prefix_keys + 1] < prefix_keys)
    # Additive masks (0 or −inf), made once here rather than converted from booleans in every layer.
    masks = {p: torch.zeros(m.shape, dtype=dtype, device=pos.device).masked_fill(~m, float("-inf"))[None]
             for p, m in visible.items()}
    return StepIndex(slots, masks, offset, (block - 1) % 2, block > 0)


def attend_one(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache, pattern: int, index: StepIndex,
               block_len: int) -> torch.Tensor:
    """Attention of one token (q, k, v: (batch, heads, 1, d)) at the position `index` describes, storing its
    key/value in the cache.

    Every shape here is the same at every position: the cache is read whole and the keys a pattern may not see
    yet are masked, rather than sliced to a length that changes per token. So one compiled (or CUDA-graph
    captured) step serves every position, and nothing waits on the host.
    """
    slot = index.slots[pattern]
    cache.keys.index_copy_(2, slot, k)
    cache.values.index_copy_(2, slot, v)
    b, h, _, d = cache.keys.shape
    keys, values = cache.keys, cache.values
    if pattern == COLUMN:  # slot j·block_len + offset of every block j
        keys, values = (c.view(b, h, -1, block_len, d).index_select(3, index.offset)[:, :, :, 0]
                        for c in (keys, values))
    elif pattern == PREVIOUS_ROW:
        keys, values = (c.view(b, h, 2, block_len, d).index_select(2, index.previous_half)[:, :, 0]
                        for c in (keys, values))
        return F.scaled_dot_product_attention(q, keys, values) * index.has_previous
    elif pattern not in (DENSE, ROW, PREFIX):
        raise ValueError(f"unknown attention pattern {pattern}")
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=index.visible[pattern])


class SelfAttention(nn.Module):
    """Multi-head self-attention of one pattern: width → n_state (q, k, v) → width."""

    def __init__(self, width: int, n_state: int, heads: int, pattern: int, block_len: int,
                 prefix_keys: int = 0) -> None:
        super().__init__()
        if n_state % heads:
            raise ValueError(f"attention width {n_state} is not divisible by {heads} heads")
        self.heads = heads
        self.pattern = pattern
        self.block_len = block_len
        self.prefix_keys = prefix_keys
        self.c_attn = nn.Linear(width, 3 * n_state)
        self.c_proj = nn.Linear(n_state, width)
        self.recorded: torch.Tensor | None = None  # see record_weights

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        return tuple(y.view(b, t, self.heads, -1).transpose(1, 2) for y in (q, k, v))

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        b, h, t, d = out.shape
        return self.c_proj(out.transpose(1, 2).reshape(b, t, h * d))

    def forward(self, x: torch.Tensor, record_weights: bool = False) -> torch.Tensor:
        """(batch, T, width) → (batch, T, width), each position attending by this layer's pattern. A prefix
        layer can keep its attention weights over the prefix keys in `recorded` (for lyrics alignment)."""
        q, k, v = self._split(x)
        if record_weights:
            if self.pattern != PREFIX:
                raise ValueError("only prefix layers record their attention weights")
            n = min(self.prefix_keys, q.shape[2])
            visible = torch.ones(q.shape[2], n, dtype=torch.bool, device=q.device).tril()
            self.recorded = attention_weights(q, k[:, :, :n], visible)
        return self._merge(factorized_attention(q, k, v, self.pattern, self.block_len, self.prefix_keys))

    def new_cache(self, batch: int, n_ctx: int, device: torch.device, dtype: torch.dtype) -> KVCache:
        d = self.c_attn.out_features // 3 // self.heads
        shape = (batch, self.heads, cache_slots(self.pattern, n_ctx, self.block_len, self.prefix_keys), d)
        return KVCache(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))

    def prefill(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """The first T positions (batch, T, width) in one pass, leaving in the cache what steps from T need."""
        q, k, v = self._split(x)
        t, slots = q.shape[2], cache.keys.shape[2]
        positions = range(max(0, t - slots), t) if self.pattern != PREFIX else range(min(t, self.prefix_keys))
        index = _slot(self.pattern, torch.arange(positions.start, positions.stop, device=q.device), self.block_len,
                      self.prefix_keys)
        cache.keys[:, :, index] = k[:, :, positions.start: positions.stop]
        cache.values[:, :, index] = v[:, :, positions.start: positions.stop]
        return self._merge(factorized_attention(q, k, v, self.pattern, self.block_len, self.prefix_keys))

    def step(self, x: torch.Tensor, cache: KVCache, index: StepIndex) -> torch.Tensor:
        """One token (batch, 1, width) at the position `index` describes, using and updating the cache."""
        q, k, v = self._split(x)
        return self._merge(attend_one(q, k, v, cache, self.pattern, index, self.block_len))


def attention_weights(q: torch.Tensor, k: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q·kᵀ/√d) (batch, heads, T, L), computed explicitly where the weights themselves are wanted."""
    scores = (q.float() @ k.float().transpose(-1, -2)) / q.shape[-1] ** 0.5
    if visible is not None:
        scores = scores.masked_fill(~visible, float("-inf"))
    return torch.softmax(scores, dim=-1)


class CrossAttention(nn.Module):
    """Encoder-decoder attention (pattern 6): queries from the music, keys and values from the lyrics encoder's
    states, unmasked. As released, c_attn makes only the query and c_enc_kv the keys and values."""

    pattern = ENCODER_DECODER

    def __init__(self, width: int, n_state: int, heads: int) -> None:
        super().__init__()
        if n_state % heads:
            raise ValueError(f"attention width {n_state} is not divisible by {heads} heads")
        self.heads = heads
        self.c_attn = nn.Linear(width, n_state)
        self.c_enc_kv = nn.Linear(width, 2 * n_state)
        self.c_proj = nn.Linear(n_state, width)
        self.recorded: torch.Tensor | None = None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, -1).transpose(1, 2)

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        b, h, t, d = out.shape
        return self.c_proj(out.transpose(1, 2).reshape(b, t, h * d))

    def encoder_cache(self, encoder_states: torch.Tensor) -> KVCache:
        """Keys and values of the encoder's states (batch, L, width): computed once per window."""
        k, v = self.c_enc_kv(encoder_states.to(self.c_enc_kv.weight.dtype)).chunk(2, dim=-1)
        return KVCache(self._heads(k), self._heads(v))

    def attend(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        return self._merge(F.scaled_dot_product_attention(self._heads(self.c_attn(x)), cache.keys, cache.values))

    def forward(self, x: torch.Tensor, encoder_states: torch.Tensor, record_weights: bool = False) -> torch.Tensor:
        """With `record_weights`, the weights over the encoder states are kept in `recorded` (batch, heads, T, L)."""
        cache = self.encoder_cache(encoder_states)
        if record_weights:
            self.recorded = attention_weights(self._heads(self.c_attn(x)), cache.keys)
        return self.attend(x, cache)
