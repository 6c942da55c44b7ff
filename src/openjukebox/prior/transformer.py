"""The Scalable Transformer of the Jukebox priors (appendix A): pre-LN blocks over factorized attention.

Block: h = x + a + m with a = attn(ln_0(x)) and m = mlp(ln_1(x + a)), as released; no final LayerNorm.
Attention width is `attn_fraction`·width, the MLP hidden width `mlp_fraction`·width (both as released:
1/4 and 1), with quick-GELU x·σ(1.702x).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config_file import check_fields
from ..errors import ConfigError
from .attention import (COLUMN, DENSE, ENCODER_DECODER, PREFIX, PREVIOUS_ROW, ROW, CrossAttention, KVCache,
                        SelfAttention, StepIndex, step_index)


@dataclass(frozen=True)
class TransformerConfig:
    width: int
    depth: int
    heads: int
    n_ctx: int
    blocks: int  # the context is viewed as (blocks, n_ctx // blocks)
    attn_order: int = 2
    attn_fraction: float = 0.25
    mlp_fraction: float = 1.0
    dropout: float = 0.0
    checkpoint_activations: bool = False
    prefix_len: int = 0  # lyric tokens at the start of a merged sequence (attn_order 12's prefix layers)
    patterns: tuple[int, ...] = ()  # each layer's pattern, when not a released attn_order's (model surgery)

    def __post_init__(self) -> None:
        check_fields(self, "transformer", ("width", "depth", "heads", "n_ctx", "blocks", "attn_fraction",
                                           "mlp_fraction"))
        if self.n_ctx % self.blocks:
            raise ConfigError(f"transformer: n_ctx {self.n_ctx} must be a multiple of blocks {self.blocks}")
        if int(self.width * self.attn_fraction) % self.heads:
            raise ConfigError(f"transformer: attention width {int(self.width * self.attn_fraction)} "
                              f"must be divisible by {self.heads} heads")
        object.__setattr__(self, "patterns", tuple(self.patterns))
        if self.patterns and (len(self.patterns) != self.depth or not set(self.patterns) <= set(_KNOWN)):
            raise ConfigError(f"transformer: patterns {self.patterns} must give one of {_KNOWN} for each of "
                              f"{self.depth} layers")
        self.layer_patterns()

    def layer_patterns(self) -> list[int]:
        return list(self.patterns) or layer_patterns(self.attn_order, self.depth)

    @property
    def block_len(self) -> int:
        return self.n_ctx // self.blocks

    @property
    def prefix_keys(self) -> int:
        """Keys a prefix layer sees: as released, the prefix rounded up by `blocks` (the count, not the length)."""
        return (self.prefix_len // self.blocks + 1) * self.blocks

    @property
    def has_encoder_decoder(self) -> bool:
        return ENCODER_DECODER in self.layer_patterns()


_FACTORIZED = (ROW, COLUMN, PREVIOUS_ROW)
_KNOWN = (DENSE, ROW, COLUMN, PREVIOUS_ROW, ENCODER_DECODER, PREFIX)


def layer_patterns(attn_order: int, depth: int) -> list[int]:
    """The attention pattern of each layer for a released `attn_order`:
    0 all dense; 2 row, column, previous row; 6 that cycle with every fourth layer encoder-decoder; 8 every
    tenth; 10 (5b_lyrics)
    the cycle with an encoder-decoder layer closing every tenth layer from layer 18 on, over 79 layers; 12 (1b_lyrics) the 2 cycle with prefix, prefix, dense
    layers at every 16th."""
    if attn_order == 0:
        return [DENSE] * depth
    if attn_order == 2:
        return [_FACTORIZED[d % 3] for d in range(depth)]
    if attn_order == 6:
        return [(*_FACTORIZED, ENCODER_DECODER)[d % 4] for d in range(depth)]
    if attn_order == 8:
        return [ENCODER_DECODER if d % 10 == 9 else _FACTORIZED[d % 10 % 3] for d in range(depth)]
    if attn_order == 10:
        cycle = [*_FACTORIZED * 3, *([*_FACTORIZED * 3, ENCODER_DECODER] * 7)]
        return [cycle[d % 79] for d in range(depth)]
    if attn_order == 12:
        return [(PREFIX, PREFIX, DENSE)[d % 3] if d % 16 == 15 else _FACTORIZED[d % 3] for d in range(depth)]
    raise ConfigError(f"attention order {attn_order} is not supported (supported: 0, 2, 6, 8, 10, 12)")


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.c_proj = nn.Linear(hidden, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(quick_gelu(self.c_fc(x))))


class TransformerBlock(nn.Module):
    def __init__(self, config: TransformerConfig, pattern: int) -> None:
        super().__init__()
        n_state = int(config.width * config.attn_fraction)
        self.ln_0 = nn.LayerNorm(config.width, eps=1e-5)
        self.attn: SelfAttention | CrossAttention
        if pattern == ENCODER_DECODER:
            self.attn = CrossAttention(config.width, n_state, config.heads)
        else:
            self.attn = SelfAttention(config.width, n_state, config.heads, pattern, config.block_len,
                                      config.prefix_keys if pattern == PREFIX else 0)
        self.ln_1 = nn.LayerNorm(config.width, eps=1e-5)
        self.mlp = MLP(config.width, int(config.width * config.mlp_fraction), config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        if pattern == ENCODER_DECODER:
            # As released: a fresh encoder-decoder layer adds nothing, so adding one leaves the model unchanged.
            for proj in (self.attn.c_proj, self.mlp.c_proj):
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)

    def forward(self, x: torch.Tensor, encoder_states: torch.Tensor | None = None,
                record_weights: bool = False) -> torch.Tensor:
        if isinstance(self.attn, CrossAttention):
            if encoder_states is None:
                raise ValueError("an encoder-decoder layer needs the lyrics encoder's states")
            a = self.attn(self.ln_0(x), encoder_states, record_weights)
        else:
            a = self.attn(self.ln_0(x), record_weights)
        a = self.dropout(a)
        return x + a + self.mlp(self.ln_1(x + a))

    def prefill(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        if isinstance(self.attn, CrossAttention):
            a = self.attn.attend(self.ln_0(x), cache)
        else:
            a = self.attn.prefill(self.ln_0(x), cache)
        return x + a + self.mlp(self.ln_1(x + a))

    def step(self, x: torch.Tensor, cache: KVCache, index: StepIndex) -> torch.Tensor:
        if isinstance(self.attn, CrossAttention):
            a = self.attn.attend(self.ln_0(x), cache)
        else:
            a = self.attn.step(self.ln_0(x), cache, index)
        return x + a + self.mlp(self.ln_1(x + a))


class Transformer(nn.Module):
    """A stack of blocks whose attention patterns cycle as in the released models; (batch, T, width) in and out."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(TransformerBlock(config, p) for p in config.layer_patterns())
        # The self-attention patterns present, for the per-token step (worked out once, not at every token).
        self.self_attention_patterns = set(config.layer_patterns()) - {ENCODER_DECODER}

    def forward(self, x: torch.Tensor, encoder_states: torch.Tensor | None = None,
                record_layer: int | None = None, layers: int | None = None) -> torch.Tensor:
        """With `record_layer`, that layer (encoder-decoder or prefix) keeps its attention weights in
        `blocks[record_layer].attn.recorded`. With `layers`, only the first that many blocks run, and their
        output is returned: the later ones are never computed."""
        if x.shape[1] > self.config.n_ctx:
            raise ValueError(f"sequence of {x.shape[1]} tokens is longer than the context of {self.config.n_ctx}")
        for d, block in enumerate(self.blocks[:layers]):
            if self.config.checkpoint_activations and self.training:
                x = checkpoint(block, x, encoder_states, use_reentrant=False)
            else:
                x = block(x, encoder_states, d == record_layer)
        return x

    def new_caches(self, batch: int, device: torch.device, dtype: torch.dtype = torch.float32,
                   encoder_states: torch.Tensor | None = None) -> list[KVCache]:
        """Empty self-attention caches, and the encoder-decoder layers' keys/values of `encoder_states`."""
        if self.config.has_encoder_decoder and encoder_states is None:
            raise ValueError("this transformer has encoder-decoder layers: give the lyrics encoder's states")
        caches = []
        for block in self.blocks:
            if isinstance(block.attn, CrossAttention):  # tensors of their own, which load_encoder_states refills
                fresh = block.attn.encoder_cache(encoder_states)
                caches.append(KVCache(fresh.keys.clone(), fresh.values.clone()))
            else:
                caches.append(block.attn.new_cache(batch, self.config.n_ctx, device, dtype))
        return caches

    def load_encoder_states(self, caches: list[KVCache], encoder_states: torch.Tensor) -> None:
        """Write the encoder-decoder layers' keys/values of a new window's `encoder_states` (batch, L, width) into
        caches made by new_caches, in place: a compiled step keeps reading the same tensors."""
        for block, cache in zip(self.blocks, caches):
            if isinstance(block.attn, CrossAttention):
                fresh = block.attn.encoder_cache(encoder_states)
                cache.keys.copy_(fresh.keys)
                cache.values.copy_(fresh.values)

    def prefill(self, x: torch.Tensor, caches: list[KVCache]) -> torch.Tensor:
        """Outputs (batch, T, width) of the first T positions in one pass, filling fresh caches so that steps can
        go on from position T: a window's known prefix costs one batched pass instead of T steps."""
        if x.shape[1] > self.config.n_ctx:
            raise ValueError(f"prefix of {x.shape[1]} tokens is longer than the context of {self.config.n_ctx}")
        for block, cache in zip(self.blocks, caches):
            x = block.prefill(x, cache)
        return x

    def step(self, x: torch.Tensor, caches: list[KVCache], pos: torch.Tensor) -> torch.Tensor:
        """The output at position `pos` ((1,) int64 tensor, in [0, n_ctx)) for its input x (batch, 1, width), given
        caches holding positions < pos. Shapes do not depend on `pos`, so the step compiles once for a window."""
        c = self.config
        index = step_index(pos, self.self_attention_patterns, c.n_ctx, c.block_len, c.prefix_keys, x.dtype)
        for block, cache in zip(self.blocks, caches):
            x = block.step(x, cache, index)
        return x
