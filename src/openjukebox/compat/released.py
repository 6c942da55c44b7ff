"""The released Jukebox models' hyperparameters, under their original names, and their openjukebox configs.

The original code describes a model by a flat dict of hyperparameters (`hps`), saved inside every checkpoint it
writes. `RELEASED` holds the values of the released models (the hyperparameters the original code ships for them, its
defaults filled in; docs/released-models.md). `vqvae_config` and `prior_config` turn any such dict into our configs, so checkpoints people trained
with the original code convert too; a value openjukebox cannot reproduce is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..prior.model import PriorConfig
from ..prior.transformer import TransformerConfig
from ..vqvae.config import VQVAEConfig

_VQVAE = dict(sr=44100, levels=3, downs_t=(3, 2, 2), strides_t=(2, 2, 2), emb_width=64, l_bins=2048, l_mu=0.99,
              commit=0.02, multispectral=1.0, hvqvae_multipliers=(2, 1, 1), lmix_linf=0.02, width=32, depth=4,
              m_conv=1.0, dilation_growth_rate=3, dilation_cycle=None, vqvae_reverse_decoder_dilation=True)
_LABELS_V2 = dict(labels=True, labels_v3=False, y_bins=(120, 4111), t_bins=128, max_bow_genre_size=5, n_vocab=80)
_LABELS_V3 = dict(labels=True, labels_v3=True, y_bins=(604, 7898), t_bins=64, max_bow_genre_size=1, n_vocab=79)
_UPSAMPLER = dict(**_LABELS_V2, n_ctx=8192, prior_width=1920, prior_depth=72, heads=1, attn_order=2, blocks=128,
                  cond_width=1024, cond_depth=16, cond_dilation_growth_rate=3, cond_dilation_cycle=8,
                  cond_res_scale=False, cond_c_res=1, use_tokens=False, n_tokens=0, fp16_params=False)
_TOP = dict(level=2, min_duration=60.0, max_duration=600.0, merged_decoder=True, fp16_params=True)

RELEASED: dict[str, dict[str, Any]] = {
    "vqvae": _VQVAE,
    "upsampler_level_0": {**_UPSAMPLER, "level": 0},
    "upsampler_level_1": {**_UPSAMPLER, "level": 1, "cond_res_scale": True},
    "prior_5b": {**_LABELS_V2, **_TOP, "n_ctx": 8192, "prior_width": 4800, "prior_depth": 72, "heads": 8,
                 "attn_order": 2, "blocks": 128, "use_tokens": False, "n_tokens": 0},
    "prior_5b_lyrics": {**_LABELS_V2, **_TOP, "n_ctx": 8192, "prior_width": 4800, "prior_depth": 79, "heads": 8,
                        "attn_order": 10, "blocks": 128, "min_duration": 23.8, "use_tokens": True, "n_tokens": 512,
                        "prime_width": 1280, "prime_depth": 18, "prime_heads": 4, "prime_attn_order": 2,
                        "prime_blocks": 32, "prime_loss_fraction": 0.4, "alignment_layer": 68, "alignment_head": 2},
    "prior_1b_lyrics": {**_LABELS_V3, "level": 2, "n_ctx": 6144, "prior_width": 2048, "prior_depth": 72, "heads": 2,
                        "attn_order": 12, "blocks": 64, "min_duration": 17.84, "max_duration": 600.0,
                        "merged_decoder": False, "single_enc_dec": True, "use_tokens": True, "n_tokens": 384,
                        "prime_loss_fraction": 0.4, "fp16_params": False, "alignment_layer": 63,
                        "alignment_head": 0},
}
# Which top prior each released model uses, and the version of its label tables (artist/genre ids, lyrics).
TOP_PRIORS = {"5b": "prior_5b", "5b_lyrics": "prior_5b_lyrics", "1b_lyrics": "prior_1b_lyrics"}

# The original's defaults for the hyperparameters a prior's structure depends on.
_PRIOR_DEFAULTS = dict(labels=True, heads=1, attn_order=0, blocks=None, m_attn=0.25, m_mlp=1.0, t_bins=64,
                       max_bow_genre_size=None, y_bins=0, merged_decoder=False, single_enc_dec=False,
                       use_tokens=False, n_tokens=0, n_vocab=0, min_duration=None, max_duration=None,
                       cond_width=128, cond_depth=3, cond_m_conv=1.0, cond_dilation_growth_rate=1,
                       cond_dilation_cycle=None, cond_res_scale=False, cond_zero_out=False, res_scale=False,
                       pos_init=False, spread=None, copy_input=False, prime_heads=1, prime_attn_order=0,
                       prime_blocks=None, prime_m_attn=0.25, prime_m_mlp=1.0, prime_res_scale=False,
                       prime_pos_init=False, alignment_layer=None, alignment_head=None)
_VQVAE_DEFAULTS = dict(sr=44100, levels=2, downs_t=(1, 1), strides_t=(2, 2), hvqvae_multipliers=None, emb_width=64,
                       l_bins=512, l_mu=0.99, commit=1.0, multispectral=1.0, lmix_linf=0.0, width=128, depth=3,
                       m_conv=1.0, dilation_growth_rate=1, dilation_cycle=None, vqvae_reverse_decoder_dilation=True)


def _require(hps: Mapping[str, Any], name: str, supported: Any, what: str) -> None:
    if hps[name] != supported:
        raise ConfigError(f"{what}: {name}={hps[name]!r} is not supported (openjukebox builds {name}={supported!r})")


def vqvae_config(original: Mapping[str, Any]) -> VQVAEConfig:
    """Our VQ-VAE config for an original VQ-VAE hyperparameter dict."""
    hps = {**_VQVAE_DEFAULTS, **original}
    levels = int(hps["levels"])
    if any(s != 2 for s in hps["strides_t"]):
        raise ConfigError(f"VQ-VAE hparams: strides_t={tuple(hps['strides_t'])!r} is not supported (only 2)")
    _require(hps, "m_conv", 1.0, "VQ-VAE hparams")
    multipliers = hps["hvqvae_multipliers"] or (1,) * levels
    try:
        return VQVAEConfig(sample_rate=int(hps["sr"]), downs=tuple(hps["downs_t"]), emb_width=hps["emb_width"],
                           codebook_size=hps["l_bins"], width=hps["width"], depth=hps["depth"],
                           level_multipliers=tuple(multipliers), dilation_growth=hps["dilation_growth_rate"],
                           dilation_cycle=hps["dilation_cycle"],
                           reverse_decoder_dilation=bool(hps["vqvae_reverse_decoder_dilation"]),
                           commit_beta=hps["commit"], ema_decay=hps["l_mu"], spectral_weight=hps["multispectral"],
                           linf_weight=hps["lmix_linf"])
    except TypeError as e:
        raise ConfigError(f"VQ-VAE hparams: {e}") from None


def _transformer(hps: Mapping[str, Any], prefix: str, n_ctx: int, prefix_len: int = 0) -> TransformerConfig:
    name = "prior_" if not prefix else prefix
    return TransformerConfig(width=hps[f"{name}width"], depth=hps[f"{name}depth"], heads=hps[f"{prefix}heads"],
                             n_ctx=n_ctx, blocks=hps[f"{prefix}blocks"] or 1, attn_order=hps[f"{prefix}attn_order"],
                             attn_fraction=hps[f"{prefix}m_attn"], mlp_fraction=hps[f"{prefix}m_mlp"],
                             prefix_len=prefix_len)


def prior_config(original: Mapping[str, Any], vqvae: VQVAEConfig) -> PriorConfig:
    """Our prior config for an original prior hyperparameter dict, over the codes of `vqvae`."""
    hps = {**_PRIOR_DEFAULTS, **original}
    what = "prior hparams"
    for name, supported in (("res_scale", False), ("pos_init", False), ("copy_input", False), ("cond_m_conv", 1.0),
                            ("prime_res_scale", False), ("prime_pos_init", False)):
        _require(hps, name, supported, what)
    try:
        level = int(hps["level"])
        top = level == vqvae.levels - 1
        if not top:
            _require(hps, "cond_dilation_growth_rate", 3, what)
        lyrics = bool(hps["use_tokens"]) and hps["n_tokens"] > 0
        single = lyrics and bool(hps["single_enc_dec"])
        n_tokens = int(hps["n_tokens"]) if lyrics else 0
        labels = bool(hps["labels"])
        n_genres, n_artists = hps["y_bins"] if labels else (0, 0)
        timing = dict(timing_bins=hps["t_bins"], min_duration=hps["min_duration"],
                      max_duration=hps["max_duration"]) if labels and top else {}
        upsampler = {} if top else dict(upper_bins=vqvae.codebook_size, cond_width=hps["cond_width"],
                                        cond_depth=hps["cond_depth"], cond_downs=vqvae.downs[level + 1],
                                        cond_dilation_cycle=hps["cond_dilation_cycle"] or hps["cond_depth"],
                                        cond_res_scale=bool(hps["cond_res_scale"]))
        transformer = _transformer(hps, "", hps["n_ctx"] + (n_tokens if single else 0), n_tokens if single else 0)
        encoder = _transformer(hps, "prime_", n_tokens) if lyrics and not single else None
        return PriorConfig(level=level, bins=vqvae.codebook_size, transformer=transformer,
                           hop_length=vqvae.hop_lengths[level], n_artists=n_artists, n_genres=n_genres,
                           max_genres=hps["max_bow_genre_size"] or 1, sample_rate=int(hps.get("sr", vqvae.sample_rate)),
                           merged_decoder=bool(hps["merged_decoder"]), n_vocab=hps["n_vocab"] if lyrics else 0,
                           n_tokens=n_tokens, lyrics_encoder=encoder,
                           alignment_layer=-1 if hps["alignment_layer"] is None else hps["alignment_layer"],
                           alignment_head=hps["alignment_head"] or 0, **timing, **upsampler)
    except KeyError as e:
        raise ConfigError(f"{what}: missing {e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: {e}") from None
