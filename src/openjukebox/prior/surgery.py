"""Model surgery: a trained top prior becomes a lyrics prior that computes exactly what it computed before.

As the released 5b_lyrics was made from 5b (paper section 4.3), a lyrics encoder is added and encoder-decoder
layers are inserted between the existing ones. Those layers' output projections (attention and MLP) start at
zero, so each adds nothing and the new model's predictions equal the old ones until training on lyrics moves
them. A 72-layer prior gets the released layout (attn_order 10: 79 layers); others get an encoder-decoder layer
after every 9 layers (after the last one when there are fewer).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..errors import ConfigError
from ..fileio import atomic_write_text, new_output_dir
from ..labels import VOCAB_FILE
from ..train.checkpoint import CONFIG_FILE, resolve_checkpoint, write_model_dir
from .attention import ENCODER_DECODER
from .config import prior_config_to_json
from .loading import load_prior
from .model import Prior
from .training import INITIAL
from .transformer import TransformerConfig


def lyrics_layout(config: TransformerConfig) -> TransformerConfig:
    """The transformer with encoder-decoder layers inserted, the existing layers keeping their order."""
    if config.depth == 72 and config.attn_order == 2 and not config.patterns:
        return dataclasses.replace(config, depth=79, attn_order=10)
    group = min(9, config.depth)
    patterns: list[int] = []
    for d, pattern in enumerate(config.layer_patterns()):
        patterns.append(pattern)
        if (d + 1) % group == 0:
            patterns.append(ENCODER_DECODER)
    return dataclasses.replace(config, depth=len(patterns), patterns=tuple(patterns))


def add_lyrics(prior: Prior, n_tokens: int, encoder: TransformerConfig, n_vocab: int = 80) -> Prior:
    """A lyrics prior (separate lyrics encoder of `n_tokens` characters) holding `prior`'s weights."""
    old = prior.config
    if old.level != 2 or old.n_tokens:
        raise ConfigError("add-lyrics takes a top-level (level 2) prior without lyrics")
    if encoder.n_ctx != n_tokens:
        raise ConfigError(f"the lyrics encoder's context ({encoder.n_ctx}) must be the lyrics length {n_tokens}")
    transformer = lyrics_layout(old.transformer)
    new = Prior(dataclasses.replace(old, transformer=transformer, n_vocab=n_vocab, n_tokens=n_tokens,
                                    lyrics_encoder=encoder))
    kept = [d for d, p in enumerate(transformer.layer_patterns()) if p != ENCODER_DECODER]
    state = {}
    for name, tensor in prior.saved_state().items():
        if name.startswith("transformer.blocks."):
            index, rest = name.removeprefix("transformer.blocks.").split(".", 1)
            name = f"transformer.blocks.{kept[int(index)]}.{rest}"
        state[name] = tensor
    fresh = {k: v for k, v in new.saved_state().items() if k not in state}
    new.load_saved_state({**fresh, **state})
    return new


def add_lyrics_to_run(source: str | os.PathLike, out: str | os.PathLike, n_tokens: int = 64,
                      encoder_width: int | None = None, encoder_depth: int = 3, encoder_heads: int = 2) -> Path:
    """A new training run at `out` that starts from `source`'s latest top prior turned into a lyrics prior:
    `prior train --out OUT` on a cache with lyrics continues from it."""
    out = new_output_dir(out)
    ckpt = resolve_checkpoint(source)
    prior = load_prior(ckpt)
    width = encoder_width or max(encoder_heads * 4, prior.config.transformer.width // 2)
    blocks = next(b for b in (8, 4, 2, 1) if n_tokens % b == 0)
    encoder = TransformerConfig(width=width, depth=encoder_depth, heads=encoder_heads, n_ctx=n_tokens, blocks=blocks)
    lyrical = add_lyrics(prior, n_tokens, encoder)
    config_json = prior_config_to_json(lyrical.config)
    vocab = (ckpt / VOCAB_FILE).read_text() if (ckpt / VOCAB_FILE).is_file() else None
    if vocab is None:
        raise ConfigError(f"{ckpt}: no {VOCAB_FILE} (a prior trained with 'openjukebox prior train' has one)")
    write_model_dir(out / INITIAL, lyrical.saved_state(), "prior", 0, {CONFIG_FILE: config_json, VOCAB_FILE: vocab})
    atomic_write_text(out / VOCAB_FILE, vocab)
    atomic_write_text(out / CONFIG_FILE, config_json)
    return out
