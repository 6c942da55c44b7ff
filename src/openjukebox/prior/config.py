"""Prior hyperparameters: JSON round trip and the named presets for each level."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from ..config_file import ConfigSource, config_fields, merge_config
from ..errors import ConfigError
from .model import PriorConfig
from .transformer import TransformerConfig


def prior_config_to_json(config: PriorConfig) -> str:
    return json.dumps({"kind": "prior", **dataclasses.asdict(config)}, indent=2) + "\n"


def prior_config_from_dict(d: dict, where: str = "prior config") -> PriorConfig:
    d = dict(d)
    if d.pop("kind", None) != "prior":
        raise ConfigError(f"{where}: not a prior config")
    try:
        d["transformer"] = TransformerConfig(**d["transformer"])
        if d.get("lyrics_encoder") is not None:
            d["lyrics_encoder"] = TransformerConfig(**d["lyrics_encoder"])
        return PriorConfig(**d)
    except (TypeError, KeyError) as e:
        raise ConfigError(f"{where}: {e}") from None


@dataclass(frozen=True)
class PriorPreset:
    """A model size for all three levels: what `prior train --preset NAME` and `init --preset NAME` build."""

    vqvae: str  # the VQ-VAE preset whose codes these priors model (`init` makes a bundle of both)
    top: TransformerConfig  # level 2
    upsampler: TransformerConfig  # levels 1 and 0
    cond_width: int  # the upsamplers' conditioner (a dilated ResNet over the codes of the level above)
    cond_depth: int
    timing_bins: int
    min_duration: float = 0.0  # seconds: the song lengths the top prior's timing embedding spans
    max_duration: float = 600.0
    merged_decoder: bool = False
    n_tokens: int = 0  # lyrics characters per window; 0: no lyrics
    lyrics_encoder: TransformerConfig | None = None


_TINY = PriorPreset("tiny", TransformerConfig(width=32, depth=3, heads=2, n_ctx=64, blocks=8),
                    TransformerConfig(width=32, depth=3, heads=2, n_ctx=64, blocks=8), 16, 2, 16)
_SMALL = PriorPreset("small", TransformerConfig(width=128, depth=6, heads=2, n_ctx=256, blocks=16),
                     TransformerConfig(width=128, depth=6, heads=1, n_ctx=256, blocks=16), 64, 4, 32)

# Every preset, defined once: the CLI lists these names. A `-lyrics` preset gives the top prior a lyrics encoder
# read by encoder-decoder layers (attention pattern 8 or 6 alternating with the others, as in 5b_lyrics).
PRESETS: dict[str, PriorPreset] = {
    "tiny": _TINY,
    "small": _SMALL,
    # The released 5b top prior and upsamplers (compat/released.py, docs/released-models.md).
    "paper": PriorPreset("paper", TransformerConfig(width=4800, depth=72, heads=8, n_ctx=8192, blocks=128),
                         TransformerConfig(width=1920, depth=72, heads=1, n_ctx=8192, blocks=128), 1024, 16, 128,
                         min_duration=60.0, merged_decoder=True),
    "tiny-lyrics": dataclasses.replace(
        _TINY, top=dataclasses.replace(_TINY.top, depth=10, attn_order=8), n_tokens=16,
        lyrics_encoder=TransformerConfig(width=16, depth=3, heads=2, n_ctx=16, blocks=4)),
    "small-lyrics": dataclasses.replace(
        _SMALL, top=dataclasses.replace(_SMALL.top, depth=12, attn_order=6), n_tokens=64,
        lyrics_encoder=TransformerConfig(width=64, depth=3, heads=2, n_ctx=64, blocks=8)),
}
LYRICS_VOCABULARY = 80  # the released v2 characters (openjukebox.lyrics.text)

# Fields of a prior's config that the data and the level decide, refused in a --config file.
_FROM_DATA = {name: "it comes from the codes and labels the prior is trained on" for name in
              ("level", "bins", "hop_length", "sample_rate", "n_artists", "n_genres", "max_genres", "upper_bins")}


def prior_preset(name: str, level: int, bins: int, hop_length: int, sample_rate: int, n_artists: int,
                 n_genres: int, max_genres: int = 1) -> PriorConfig:
    """The `name` preset's prior for `level`: the top level (2) with timing (and lyrics for a `-lyrics`
    preset), upsamplers conditioned on the codes of the level above."""
    if name not in PRESETS:
        raise ConfigError(f"unknown prior preset '{name}'; choose one of {', '.join(PRESETS)}")
    p = PRESETS[name]
    common = dict(level=level, bins=bins, hop_length=hop_length, sample_rate=sample_rate, n_artists=n_artists,
                  n_genres=n_genres, max_genres=max_genres)
    if level == 2:
        lyrics = dict(n_vocab=LYRICS_VOCABULARY, n_tokens=p.n_tokens, lyrics_encoder=p.lyrics_encoder) \
            if p.n_tokens else {}
        return PriorConfig(transformer=p.top, timing_bins=p.timing_bins, min_duration=p.min_duration,
                           max_duration=p.max_duration, merged_decoder=p.merged_decoder, **common, **lyrics)
    return PriorConfig(transformer=p.upsampler, upper_bins=bins, cond_width=p.cond_width, cond_depth=p.cond_depth,
                       cond_res_scale=level == 1, **common)


def with_config_file(config: PriorConfig, source: ConfigSource | None) -> PriorConfig:
    """`config` with the fields of a JSON/TOML file (or mapping) laid over it."""
    fields, where = config_fields(source)
    if not fields:
        return config
    merged = merge_config(dataclasses.asdict(config), fields, where, _FROM_DATA)
    return prior_config_from_dict({"kind": "prior", **merged}, where)
