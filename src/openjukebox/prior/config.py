"""Prior hyperparameters: JSON round trip and the named presets for each level."""

from __future__ import annotations

import dataclasses
import json

from ..errors import ConfigError
from .model import PriorConfig
from .transformer import TransformerConfig


def prior_config_to_json(config: PriorConfig) -> str:
    return json.dumps({"kind": "prior", **dataclasses.asdict(config)}, indent=2) + "\n"


def prior_config_from_dict(d: dict) -> PriorConfig:
    d = dict(d)
    if d.pop("kind", None) != "prior":
        raise ConfigError("not a prior config")
    try:
        d["transformer"] = TransformerConfig(**d["transformer"])
        if d.get("lyrics_encoder") is not None:
            d["lyrics_encoder"] = TransformerConfig(**d["lyrics_encoder"])
        return PriorConfig(**d)
    except (TypeError, KeyError) as e:
        raise ConfigError(f"prior config: {e}") from None


# Per preset: (top transformer, upsampler transformer, upsampler conditioner width, depth, timing bins).
_SIZES = {
    "tiny": (TransformerConfig(width=32, depth=3, heads=2, n_ctx=64, blocks=8),
             TransformerConfig(width=32, depth=3, heads=2, n_ctx=64, blocks=8), 16, 2, 16),
    "small": (TransformerConfig(width=128, depth=6, heads=2, n_ctx=256, blocks=16),
              TransformerConfig(width=128, depth=6, heads=1, n_ctx=256, blocks=16), 64, 4, 32),
    # The released 5b top prior and upsamplers (compat/released.py, docs/released-models.md).
    "paper": (TransformerConfig(width=4800, depth=72, heads=8, n_ctx=8192, blocks=128),
              TransformerConfig(width=1920, depth=72, heads=1, n_ctx=8192, blocks=128), 1024, 16, 128),
}


# Lyrics presets (level 2): (lyrics tokens per window, lyrics encoder, attn_order with encoder-decoder layers).
_LYRICS = {
    "tiny": (16, TransformerConfig(width=16, depth=3, heads=2, n_ctx=16, blocks=4), 8, 10),
    "small": (64, TransformerConfig(width=64, depth=3, heads=2, n_ctx=64, blocks=8), 6, 12),
}
LYRICS_VOCABULARY = 80  # the released v2 characters (openjukebox.lyrics.text)
PRESET_NAMES = (*_SIZES, *(f"{name}-lyrics" for name in _LYRICS))


def prior_preset(name: str, level: int, bins: int, hop_length: int, sample_rate: int, n_artists: int,
                 n_genres: int, max_genres: int = 1) -> PriorConfig:
    """The `name` preset's prior for `level`: the top level (2) with timing, upsamplers conditioned on the level
    above. `NAME-lyrics` presets give the top prior a lyrics encoder read by encoder-decoder layers (as 5b_lyrics)."""
    size, lyrics = name.removesuffix("-lyrics"), name.endswith("-lyrics")
    if size not in _SIZES or (lyrics and size not in _LYRICS):
        raise ConfigError(f"unknown prior preset '{name}'; choose one of {', '.join(PRESET_NAMES)}")
    top, upsampler, cond_width, cond_depth, timing_bins = _SIZES[size]
    common = dict(level=level, bins=bins, hop_length=hop_length, sample_rate=sample_rate, n_artists=n_artists,
                  n_genres=n_genres, max_genres=max_genres)
    if level == 2:
        extra = {}
        if lyrics:
            n_tokens, encoder, attn_order, depth = _LYRICS[size]
            top = dataclasses.replace(top, attn_order=attn_order, depth=depth)
            extra = dict(n_vocab=LYRICS_VOCABULARY, n_tokens=n_tokens, lyrics_encoder=encoder)
        return PriorConfig(transformer=top, timing_bins=timing_bins, min_duration=0.0 if size != "paper" else 60.0,
                           max_duration=600.0, merged_decoder=size == "paper", **common, **extra)
    return PriorConfig(transformer=upsampler, upper_bins=bins, cond_width=cond_width, cond_depth=cond_depth,
                       cond_res_scale=level == 1, **common)
