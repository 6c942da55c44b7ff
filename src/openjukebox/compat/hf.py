"""Converting the Hugging Face transformers format of the released Jukebox models into an openjukebox bundle.

transformers (up to 4.40, the last release with Jukebox) published the released models as `openai/jukebox-1b-lyrics`
and `openai/jukebox-5b-lyrics`: a `config.json` (`JukeboxConfig`: `vqvae_config` and three prior configs, the first
the TOP prior), the weights of one `JukeboxModel` (`pytorch_model.bin` or `model.safetensors`, possibly sharded with
an index json) and the tokenizer's artist, genre and lyrics vocabularies. Its weights are the original checkpoints
renamed by transformers' `convert_jukebox.py`, so we undo that renaming (`hf_to_original_*`, names and shapes facts
of transformers' `modeling_jukebox.py`) and let `compat.openai` finish the job, exactly as for the original files;
likewise the config is mapped back onto the original hyperparameter names (`hf_config_to_original`), which
`compat.released` turns into our configs. transformers itself is never imported: it is not needed to convert.

Facts of the transformers format this relies on:

- `priors.{i}` is level `2 - i` (transformers counts from the top); prior configs come as `prior_config_list`
  (what `save_pretrained` writes) or as `prior_0` ... `prior_2`.
- `JukeboxModel` overwrites every prior's `sampling_rate`, `timing_dims`, `min_duration`, `max_duration`,
  `max_nb_genres` and `metadata_conditioning` with the top-level config's values, so those are read there.
- `save_pretrained` writes nested configs (`vqvae_config`) as a diff from their class defaults, so missing fields
  take transformers' defaults (`_HF_*_DEFAULTS`, copied from its `configuration_jukebox.py`).
- `is_encoder_decoder` means the original's `single_enc_dec` (lyrics and music in ONE sequence, 1b_lyrics); the
  separate lyrics encoder of 5b_lyrics is `encoder` with `encoder_config`.
- The transformer's `JukeboxConv1D` keeps the original's (in, out) layout under `weight`/`bias`; `compat.openai`
  transposes it once it carries its original name (`w`/`b`) again.
- A tied output layer (not `merged_decoder`) is one tensor under two names; safetensors files keep only one.
- The tokenizer's artist and genre vocabularies hold both label versions: a v3 key is the original's key, a v2 key is
  the original's key + '.v2'. Which version the top prior reads is the tokenizer config's `version[0]`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..bundle import write_bundle
from ..errors import CheckpointError, ConfigError
from ..fileio import new_output_dir
from ..label_table import LabelTable
from ..labels import LabelEncoder
from ..prior.model import Prior, PriorConfig
from ..vqvae.config import VQVAEConfig
from ..vqvae.model import VQVAE
from .convert import load_pickled
from .openai import convert_prior_state_dict, convert_vqvae_state_dict
from .released import RELEASED, TOP_PRIORS, prior_config, vqvae_config

CONFIG = "config.json"
# Weight files in the order transformers' from_pretrained prefers them.
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_CONFIG = "tokenizer_config.json"
VOCAB = "vocab.json"  # the three vocabularies in one file: {"artist": ..., "genres": ..., "lyrics": ...}
VOCAB_FILES = ("artists.json", "genres.json", "lyrics.json")  # what transformers' JukeboxTokenizer saves

# transformers' defaults (configuration_jukebox.py, 4.40.2) for the fields that matter here.
_HF_MODEL_DEFAULTS: dict[str, Any] = dict(nb_priors=3, sampling_rate=44100, timing_dims=64, min_duration=0,
                                          max_duration=600.0, max_nb_genres=5, metadata_conditioning=True)
_HF_VQVAE_DEFAULTS: dict[str, Any] = dict(
    act_fn="relu", nb_discrete_codes=2048, commit=0.02, conv_input_shape=1, conv_res_scale=False, embed_dim=64,
    levels=3, lmu=0.99, multipliers=[2, 1, 1], res_conv_depth=4, res_conv_width=32, res_convolution_multiplier=1,
    res_dilation_cycle=None, res_dilation_growth_rate=3, res_downs_t=[3, 2, 2], res_strides_t=[2, 2, 2],
    sample_length=1058304)
_HF_PRIOR_DEFAULTS: dict[str, Any] = dict(
    act_fn="quick_gelu", alignment_head=2, alignment_layer=68, attention_multiplier=0.25,
    attention_pattern="enc_dec_with_lyrics", attn_res_scale=False, blocks=64, conv_res_scale=None, num_layers=72,
    encoder_config=None, encoder_loss_fraction=0.4, hidden_size=2048, is_encoder_decoder=True, lyric_vocab_size=80,
    mask=False, merged_decoder=True, metadata_dims=[604, 7898], mlp_multiplier=1.0, music_vocab_size=2048,
    n_ctx=6144, n_heads=2, nb_relevant_lyric_tokens=384, res_conv_depth=3, res_conv_width=128,
    res_convolution_multiplier=1, res_dilation_cycle=None, res_dilation_growth_rate=1, res_downs_t=[3, 2, 2],
    res_strides_t=[2, 2, 2], spread=None)
# transformers' attention patterns (ATTENTION_PATTERNS) as the original's attn_order they reproduce layer by layer.
ATTENTION_ORDERS = {"full_dense_attention": 0, "raw_column_previous_row_attention": 2,
                    "large_separated_enc_dec_w_lyrics": 10, "enc_dec_with_lyrics": 12}

# ----------------------------------------------------------------------------------------------------------------
# Weight names: transformers' → the original's (the inverse of convert_jukebox.py's renaming)


def _wb(kind: str) -> str:
    """A JukeboxConv1D parameter's original name: `w` (in, out) or `b`."""
    return "w" if kind == "weight" else "b"


def _resnet_conv(index: str) -> str:
    """conv1d_1 / conv1d_2 of a residual block are the 2nd and 4th modules (after each ReLU) of the original's."""
    return "1" if index == "1" else "3"


_Rule = tuple[re.Pattern, Callable[[re.Match], str]]

_VQVAE_RULES: list[_Rule] = [
    # encoder level block: downsample_block.{2k} is the strided conv of block k, .{2k+1} its ResNet
    (re.compile(r"(encoders\.\d+\.level_blocks\.\d+)\.downsample_block\.(\d+)\.resnet_block\.(\d+)"
                r"\.conv1d_([12])\.(weight|bias)"),
     lambda m: f"{m[1]}.model.{int(m[2]) // 2}.{int(m[2]) % 2}.model.{m[3]}.model.{_resnet_conv(m[4])}.{m[5]}"),
    (re.compile(r"(encoders\.\d+\.level_blocks\.\d+)\.downsample_block\.(\d+)\.(weight|bias)"),
     lambda m: f"{m[1]}.model.{int(m[2]) // 2}.{int(m[2]) % 2}.{m[3]}"),
    # decoder level block: model.0 is proj_in; upsample_block.{2k} is the ResNet of block k + 1, .{2k+1} its
    # transposed conv
    (re.compile(r"(decoders\.\d+\.level_blocks\.\d+)\.upsample_block\.(\d+)\.resnet_block\.(\d+)"
                r"\.conv1d_([12])\.(weight|bias)"),
     lambda m: f"{m[1]}.model.{int(m[2]) // 2 + 1}.{int(m[2]) % 2}.model.{m[3]}.model.{_resnet_conv(m[4])}.{m[5]}"),
    (re.compile(r"(decoders\.\d+\.level_blocks\.\d+)\.upsample_block\.(\d+)\.(weight|bias)"),
     lambda m: f"{m[1]}.model.{int(m[2]) // 2 + 1}.{int(m[2]) % 2}.{m[3]}"),
    (re.compile(r"(decoders\.\d+\.level_blocks\.\d+)\.proj_in\.(weight|bias)"), lambda m: f"{m[1]}.model.0.{m[2]}"),
    (re.compile(r"decoders\.\d+\.out\.(?:weight|bias)"), lambda m: m[0]),
    (re.compile(r"bottleneck\.level_blocks\.(\d+)\.codebook"), lambda m: f"bottleneck.level_blocks.{m[1]}.k"),
]
_ENCODER_PROJ_OUT = re.compile(r"(encoders\.\d+\.level_blocks\.\d+)\.proj_out\.(weight|bias)")
_DOWNSAMPLE = re.compile(r"(encoders\.\d+\.level_blocks\.\d+)\.downsample_block\.(\d+)\.")

_PART = {"prior": "prior", "encoder": "prime_prior"}
_PRIOR_RULES: list[_Rule] = [
    (re.compile(r"(prior|encoder)\.transformer\._attn_mods\.(\d+)\.(attn\.c_attn|attn\.c_enc_kv|attn\.c_proj|mlp\.c_fc"
                r"|mlp\.c_proj)\.(weight|bias)"),
     lambda m: f"{_PART[m[1]]}.transformer._attn_mods.{m[2]}.{m[3]}.{_wb(m[4])}"),
    (re.compile(r"(prior|encoder)\.transformer\._attn_mods\.(\d+)\.layer_norm_([01])\.(weight|bias)"),
     lambda m: f"{_PART[m[1]]}.transformer._attn_mods.{m[2]}.ln_{m[3]}.{m[4]}"),
    (re.compile(r"(prior|encoder)\.embed_tokens\.weight"), lambda m: f"{_PART[m[1]]}.x_emb.weight"),
    (re.compile(r"(prior|encoder)\.(pos_emb\.pos_emb|start_token)"), lambda m: f"{_PART[m[1]]}.{m[2]}"),
    (re.compile(r"prior\.fc_proj_out\.weight"), lambda m: "prior.x_out.weight"),
    (re.compile(r"encoder\.proj_in\.(weight|bias)"), lambda m: f"prime_state_proj.{_wb(m[1])}"),
    (re.compile(r"encoder\.final_layer_norm\.(weight|bias)"), lambda m: f"prime_state_ln.{m[1]}"),
    (re.compile(r"encoder\.lm_head\.weight"), lambda m: "prime_x_out.weight"),
    (re.compile(r"metadata_embedding\.(artist_emb|bow_genre_emb)\.weight"), lambda m: f"y_emb.{m[1]}.emb.weight"),
    (re.compile(r"metadata_embedding\.(total_length_emb|absolute_pos_emb|relative_pos_emb)\.emb\.weight"),
     lambda m: f"y_emb.{m[1]}.emb.weight"),
    (re.compile(r"conditioner_blocks\.embed_tokens\.weight"), lambda m: "conditioner_blocks.0.x_emb.weight"),
    (re.compile(r"conditioner_blocks\.layer_norm\.(weight|bias)"), lambda m: f"conditioner_blocks.0.ln.{m[1]}"),
    # the conditioner is a decoder block of the original: cond.model.0 is proj_in, as in the VQ-VAE's decoders
    (re.compile(r"conditioner_blocks\.upsampler\.proj_in\.(weight|bias)"),
     lambda m: f"conditioner_blocks.0.cond.model.0.{m[1]}"),
    (re.compile(r"conditioner_blocks\.upsampler\.upsample_block\.(\d+)\.resnet_block\.(\d+)\.conv1d_([12])"
                r"\.(weight|bias)"),
     lambda m: f"conditioner_blocks.0.cond.model.{int(m[1]) // 2 + 1}.{int(m[1]) % 2}.model.{m[2]}"
               f".model.{_resnet_conv(m[3])}.{m[4]}"),
    (re.compile(r"conditioner_blocks\.upsampler\.upsample_block\.(\d+)\.(weight|bias)"),
     lambda m: f"conditioner_blocks.0.cond.model.{int(m[1]) // 2 + 1}.{int(m[1]) % 2}.{m[2]}"),
]


def _rename(name: str, rules: list[_Rule], what: str) -> str:
    for pattern, new in rules:
        match = pattern.fullmatch(name)
        if match:
            return new(match)
    raise CheckpointError(f"Hugging Face {what}: unexpected weight '{name}'")


def hf_to_original_vqvae(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of transformers' `JukeboxVQVAE` (names without the `vqvae.` prefix) under the original
    checkpoint's names, for `convert_vqvae_state_dict`. Tensors are passed through (same shapes, no copy).

    An encoder level block's `proj_out` is the original's `model.{down_t}`: its index is the number of strided
    blocks before it, counted from the block's own `downsample_block.{2k}` entries."""
    blocks: dict[str, int] = {}
    for name in state_dict:
        match = _DOWNSAMPLE.match(name)
        if match:
            blocks[match[1]] = max(blocks.get(match[1], 0), int(match[2]) // 2 + 1)
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        proj_out = _ENCODER_PROJ_OUT.fullmatch(name)
        if proj_out:
            out[f"{proj_out[1]}.model.{blocks.get(proj_out[1], 0)}.{proj_out[2]}"] = tensor
        else:
            out[_rename(name, _VQVAE_RULES, "VQ-VAE")] = tensor
    return out


def hf_to_original_prior(state_dict: Mapping[str, torch.Tensor], tied_output: bool = False
                         ) -> dict[str, torch.Tensor]:
    """The state dict of one transformers `JukeboxPrior` (names without the `priors.{i}.` prefix) under the
    original checkpoint's names, for `convert_prior_state_dict`. Tensors are passed through (same shapes and
    layout: the transformer's Conv1D weights stay (in, out), as the original's `w`).

    With `tied_output` (not merged_decoder) the code embedding and the output layer are one tensor; a file that
    kept it only as `prior.fc_proj_out.weight` (safetensors drops one name of a shared tensor) gives it back as the
    embedding."""
    out = {_rename(name, _PRIOR_RULES, "prior"): tensor for name, tensor in state_dict.items()}
    if tied_output and "prior.x_emb.weight" not in out and "prior.x_out.weight" in out:
        out["prior.x_emb.weight"] = out["prior.x_out.weight"]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Config: transformers' JukeboxConfig → the original hyperparameters


def _prior_configs(config: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """The prior configs as JukeboxConfig reads them, top first."""
    listed = config.get("prior_config_list")
    if listed is None and isinstance(config.get("prior_configs"), list):
        listed = config["prior_configs"]
    if listed is None:
        listed = [config.get(f"prior_{i}") or {} for i in range(count)]
    if not isinstance(listed, list) or not all(isinstance(p, dict) for p in listed):
        raise ConfigError("prior_config_list is not a list of prior configs")
    return [{**_HF_PRIOR_DEFAULTS, **p} for p in listed]


def _attn_order(pattern: Any, what: str) -> int:
    if pattern not in ATTENTION_ORDERS:
        raise ConfigError(f"{what}: attention_pattern {pattern!r} is not supported "
                          f"(supported: {', '.join(ATTENTION_ORDERS)})")
    return ATTENTION_ORDERS[pattern]


def _require(config: Mapping[str, Any], name: str, supported: Any, what: str, why: str) -> None:
    if config.get(name) != supported:
        raise ConfigError(f"{what}: {name}={config.get(name)!r} is not supported ({why})")


def _transformer_checks(p: Mapping[str, Any], what: str) -> None:
    _require(p, "act_fn", "quick_gelu", what, "the released priors use quick_gelu")
    _require(p, "mask", True, what, "without it every position sees the future: not an autoregressive prior")


def hf_config_to_original(config_json: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A transformers `JukeboxConfig` (the dict of `config.json`) as the original hyperparameters: (VQ-VAE hps,
    [prior hps of our levels 0, 1, 2]), under the names `released.vqvae_config` and `released.prior_config` read.
    Refuses, one line naming the field, what openjukebox cannot build the same."""
    if config_json.get("model_type", "jukebox") != "jukebox":
        raise ConfigError(f"not a Jukebox config (model_type {config_json.get('model_type')!r})")
    model = {**_HF_MODEL_DEFAULTS, **config_json}
    vq = {**_HF_VQVAE_DEFAULTS, **(config_json.get("vqvae_config") or {})}
    what = "vqvae_config"
    if model["nb_priors"] != 3 or vq["levels"] != 3:
        raise ConfigError(f"nb_priors={model['nb_priors']}, levels={vq['levels']}: openjukebox builds 3 levels")
    _require(vq, "act_fn", "relu", what, "the released VQ-VAE uses relu")
    _require(vq, "conv_input_shape", 1, what, "openjukebox's VQ-VAE is mono")
    _require(vq, "conv_res_scale", False, what, "the released VQ-VAE does not scale its residuals")
    vq_hps = dict(sr=model["sampling_rate"], levels=vq["levels"], downs_t=tuple(vq["res_downs_t"]),
                  strides_t=tuple(vq["res_strides_t"]), emb_width=vq["embed_dim"], l_bins=vq["nb_discrete_codes"],
                  l_mu=vq["lmu"], commit=vq["commit"], hvqvae_multipliers=tuple(vq["multipliers"] or (1,) * 3),
                  width=vq["res_conv_width"], depth=vq["res_conv_depth"], m_conv=vq["res_convolution_multiplier"],
                  dilation_growth_rate=vq["res_dilation_growth_rate"], dilation_cycle=vq["res_dilation_cycle"],
                  vqvae_reverse_decoder_dilation=True, sample_length=vq["sample_length"],
                  # loss weights transformers does not record (training only): the released VQ-VAE's
                  multispectral=RELEASED["vqvae"]["multispectral"], lmix_linf=RELEASED["vqvae"]["lmix_linf"])
    priors = _prior_configs(config_json, model["nb_priors"])
    if len(priors) != 3:
        raise ConfigError(f"{len(priors)} prior configs: openjukebox builds 3 levels")
    by_level: list[dict[str, Any]] = [{}, {}, {}]
    for index, p in enumerate(priors):
        level = 2 - index
        what = f"prior {index} (level {level})"
        _transformer_checks(p, what)
        if p["music_vocab_size"] != vq["nb_discrete_codes"]:
            raise ConfigError(f"{what}: music_vocab_size={p['music_vocab_size']} is not the VQ-VAE's "
                              f"nb_discrete_codes={vq['nb_discrete_codes']}")
        n_tokens = int(p["nb_relevant_lyric_tokens"])
        if p["is_encoder_decoder"] and n_tokens <= 0:
            raise ConfigError(f"{what}: is_encoder_decoder without lyric tokens (nb_relevant_lyric_tokens="
                              f"{n_tokens}) is not a released structure")
        hps: dict[str, Any] = dict(
            level=level, sr=model["sampling_rate"], n_ctx=p["n_ctx"], prior_width=p["hidden_size"],
            prior_depth=p["num_layers"], heads=p["n_heads"], blocks=p["blocks"],
            attn_order=_attn_order(p["attention_pattern"], what), spread=p["spread"], m_attn=p["attention_multiplier"],
            m_mlp=p["mlp_multiplier"], res_scale=p["attn_res_scale"], merged_decoder=p["merged_decoder"],
            labels=bool(model["metadata_conditioning"]), y_bins=tuple(p["metadata_dims"]),
            max_bow_genre_size=model["max_nb_genres"], t_bins=model["timing_dims"],
            min_duration=model["min_duration"], max_duration=model["max_duration"],
            use_tokens=n_tokens > 0, n_tokens=n_tokens, n_vocab=p["lyric_vocab_size"],
            single_enc_dec=bool(p["is_encoder_decoder"]), prime_loss_fraction=p["encoder_loss_fraction"])
        if n_tokens > 0:
            hps.update(alignment_layer=p["alignment_layer"], alignment_head=p["alignment_head"])
        if n_tokens > 0 and not p["is_encoder_decoder"]:
            encoder = p["encoder_config"]
            if not isinstance(encoder, dict):
                raise ConfigError(f"{what}: a lyrics prior that is not is_encoder_decoder needs encoder_config")
            encoder = {**_HF_PRIOR_DEFAULTS, **encoder}
            _transformer_checks(encoder, f"{what} encoder_config")
            hps.update(prime_width=encoder["hidden_size"], prime_depth=encoder["num_layers"],
                       prime_heads=encoder["n_heads"], prime_blocks=encoder["blocks"],
                       prime_attn_order=_attn_order(encoder["attention_pattern"], f"{what} encoder_config"),
                       prime_m_attn=encoder["attention_multiplier"], prime_m_mlp=encoder["mlp_multiplier"],
                       prime_res_scale=encoder["attn_res_scale"])
        if index > 0:
            # transformers sizes the conditioner with res_downs_t[i] of ITS level index i; the original with the
            # VQ-VAE's downs_t[level + 1]. They agree for the released [3, 2, 2]; any model where they do not
            # would upsample the level above to the wrong length.
            downs, strides = p["res_downs_t"][index], p["res_strides_t"][index]
            if strides != 2 or downs != vq["res_downs_t"][level + 1]:
                raise ConfigError(f"{what}: the conditioner upsamples by {strides}**{downs}, not by the VQ-VAE's "
                                  f"2**{vq['res_downs_t'][level + 1]} between levels {level + 1} and {level}")
            hps.update(cond_width=p["res_conv_width"], cond_depth=p["res_conv_depth"],
                       cond_m_conv=p["res_convolution_multiplier"],
                       cond_dilation_growth_rate=p["res_dilation_growth_rate"],
                       cond_dilation_cycle=p["res_dilation_cycle"], cond_res_scale=bool(p["conv_res_scale"]))
        by_level[level] = hps
    return vq_hps, by_level


# ----------------------------------------------------------------------------------------------------------------
# Reading a model folder


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such {what}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt {what}, not valid JSON ({str(e)[:200]})") from None


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    """A `pytorch_model.bin` (shard), loading tensors and plain data only, memory-mapped when it is a zip file."""
    state = load_pickled(path, "weights")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{path}: not a state dict (a mapping of names to tensors)")
    return state


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A `model.safetensors` (shard), memory-mapped."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt weights ({str(e).splitlines()[0][:200]})") from None


def _load_index(index: Path, load: Callable[[Path], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Sharded weights: the index's weight_map {name: shard file}; every listed tensor must be in its shard."""
    weight_map = _read_json(index, "weights index")
    weight_map = weight_map.get("weight_map") if isinstance(weight_map, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index}: not a weights index (no 'weight_map' of names to shard files)")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if Path(shard).name != shard:
            raise CheckpointError(f"{index}: shard '{shard}' is not a file name in the model folder")
        state.update(load(index.parent / shard))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise CheckpointError(f"{index}: lists {len(missing)} weight(s) its shards do not hold, e.g. '{missing[0]}'")
    return state


def read_hf_folder(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config.json as a dict, the whole model's state dict under transformers' names) of a folder written by
    `JukeboxModel.save_pretrained`: weights in `model.safetensors` or `pytorch_model.bin`, whole or sharded with
    an index json. `.bin` files are read with `torch.load(weights_only=True)`, so reading one never runs code."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such folder (expected a Hugging Face model folder)")
    config_path = folder / CONFIG
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG}; not a Hugging Face model folder")
    config = _read_json(config_path, "model config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: not a model config (a JSON object)")
    found = [name for name in WEIGHTS if (folder / name).is_file()]
    if not found:
        raise CheckpointError(f"{folder}: no weights ({', '.join(WEIGHTS)})")
    path = folder / found[0]
    load = _load_safetensors if "safetensors" in path.name else _load_bin
    state = _load_index(path, load) if path.name.endswith(".index.json") else load(path)
    return config, state


# ----------------------------------------------------------------------------------------------------------------
# Labels: the tokenizer's vocabularies → the top prior's id table


def read_hf_vocab(folder: str | os.PathLike) -> tuple[dict[str, dict[str, int]], list[str] | None] | None:
    """The tokenizer's vocabularies {"artist", "genres", "lyrics": {name: id}} and its per-prior label versions
    (top first, e.g. ['v3', 'v2', 'v2']; None when not recorded), or None when the folder has no vocabulary.
    Reads `vocab.json` (the three in one file) or transformers' `artists.json`, `genres.json`, `lyrics.json`."""
    folder = Path(folder)
    if (folder / VOCAB).is_file():
        data = _read_json(folder / VOCAB, "tokenizer vocabulary")
        data = data if isinstance(data, dict) else {}
        vocab = {"artist": data.get("artist", data.get("artists")), "genres": data.get("genres", data.get("genre")),
                 "lyrics": data.get("lyrics", {})}
        where = folder / VOCAB
    elif all((folder / name).is_file() for name in VOCAB_FILES[:2]):
        vocab = {key: _read_json(folder / name, "tokenizer vocabulary") if (folder / name).is_file() else {}
                 for key, name in zip(("artist", "genres", "lyrics"), VOCAB_FILES)}
        where = folder / VOCAB_FILES[0]
    else:
        return None
    for key, names in vocab.items():
        if not isinstance(names, dict) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                  for i in names.values()):
            raise ConfigError(f"{where}: the '{key}' vocabulary is not an object of names to integer ids")
    version = None
    if (folder / TOKENIZER_CONFIG).is_file():
        tokenizer_config = _read_json(folder / TOKENIZER_CONFIG, "tokenizer config")
        version = tokenizer_config.get("version") if isinstance(tokenizer_config, dict) else None
        if version is not None and (not isinstance(version, list) or not version
                                    or any(v not in ("v2", "v3") for v in version)):
            raise ConfigError(f"{folder / TOKENIZER_CONFIG}: version {version!r} is not a list of 'v2'/'v3'")
    return vocab, version


def hf_label_table(vocab: Mapping[str, Mapping[str, int]], version: int) -> LabelTable:
    """The id table of one label version from the tokenizer's vocabularies: v2 keys are the original's + '.v2'."""
    def keys(names: Mapping[str, int]) -> dict[str, int]:
        if version == 2:
            return {k.removesuffix(".v2"): i for k, i in names.items() if k.endswith(".v2")}
        return {k: i for k, i in names.items() if not k.endswith(".v2")}
    return LabelTable(version, keys(vocab["artist"]), keys(vocab["genres"]))


def _label_tables(folder: Path, configs: Mapping[int, PriorConfig]) -> dict[int, LabelTable]:
    """Each labelled prior's id table, by level, from the tokenizer's vocabularies (which hold both versions):
    1b_lyrics keys names by v3 at the top and by v2 in its upsamplers, as in the original."""
    found = read_hf_vocab(folder)
    if found is None:
        return {}
    vocab, versions = found
    tables = {}
    for level, config in configs.items():
        if not config.conditioned_on_labels:
            continue
        # Not recorded: the lyrics vocabulary tells the top's version, as in the original (v3 has 79 characters,
        # v2 80); the released upsamplers are v2.
        version = int(versions[2 - level][1]) if versions else 2 if level < 2 or config.n_vocab != 79 else 3
        table = hf_label_table(vocab, version)
        for kind, ids, size in (("artist", table.artists, config.n_artists), ("genre", table.genres, config.n_genres)):
            if not ids:
                raise ConfigError(f"{folder}: the tokenizer vocabulary holds no v{version} {kind} names "
                                  f"({'keys ending in .v2' if version == 2 else 'keys without .v2'})")
            if max(ids.values()) >= size or min(ids.values()) < 0:
                raise ConfigError(f"{folder}: v{version} {kind} ids of the tokenizer vocabulary run from "
                                  f"{min(ids.values())} to {max(ids.values())}, but the level-{level} prior has "
                                  f"{size} {kind} embeddings (the vocabulary of another model?)")
        tables[level] = table
    return tables


# ----------------------------------------------------------------------------------------------------------------
# Converting


def _check_fits(where: Path, what: str, converted: Mapping[str, torch.Tensor],
                expected: Mapping[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{where}: the {what} weights do not fit {CONFIG} (missing {missing[:2]}, "
                              f"unexpected {unexpected[:2]})")
    for name, tensor in converted.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(f"{where}: the {what} weights do not fit {CONFIG} ({name} is "
                                  f"{tuple(tensor.shape)}, {CONFIG} gives {tuple(expected[name].shape)})")


def _converted(where: Path, what: str, convert: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    try:
        return convert()
    except CheckpointError as e:
        raise CheckpointError(f"{where}: the {what} weights are not transformers' Jukebox weights ({e})") from None


_VQ_STRUCTURE = ("sample_rate", "downs", "emb_width", "codebook_size", "width", "depth", "level_multipliers",
                 "dilation_growth", "dilation_cycle", "reverse_decoder_dilation")
# What a prior computes with but what its weights and layers do not depend on (transformers shares max_nb_genres
# across the priors, so the upsamplers of jukebox-1b-lyrics read 1 genre where the original's read 5).
_PRIOR_NOT_STRUCTURE = ("max_genres", "min_duration", "max_duration", "alignment_layer", "alignment_head",
                        "lyrics_loss_fraction")


def released_preset(vq: VQVAEConfig, priors: Mapping[int, PriorConfig]) -> str | None:
    """The released model ('5b', '5b_lyrics', '1b_lyrics') whose structure these configs have, if any: the same
    layers and weight shapes (training-only and sampling-range fields aside)."""
    released_vq = vqvae_config(RELEASED["vqvae"])
    if any(getattr(vq, f) != getattr(released_vq, f) for f in _VQ_STRUCTURE):
        return None
    for preset, top in TOP_PRIORS.items():
        names = {0: "upsampler_level_0", 1: "upsampler_level_1", 2: top}
        released = {level: prior_config(RELEASED[name], released_vq) for level, name in names.items()}
        if all(dataclasses.replace(priors[level], **{f: getattr(released[level], f) for f in _PRIOR_NOT_STRUCTURE})
               == released[level] for level in range(3)):
            return preset
    return None


def convert_hf(folder: str | os.PathLike, out: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    """Write a bundle from a transformers Jukebox model folder (`save_pretrained` of `JukeboxModel`, as the hub's
    `openai/jukebox-1b-lyrics` and `openai/jukebox-5b-lyrics`): the VQ-VAE, the priors of levels 0, 1, 2 and, when
    the folder has the tokenizer's vocabulary, the top prior's artist and genre ids. Every tensor is checked against
    the model config.json describes before anything is written. `dtype` stores the weights in that floating-point
    type (e.g. torch.bfloat16). The bundle's preset is the released model whose structure it has, else None."""
    folder = Path(folder)
    out = new_output_dir(out)
    config_json, state = read_hf_folder(folder)
    where = folder / CONFIG
    try:
        vq_hps, prior_hps = hf_config_to_original(config_json)
        vq_config = vqvae_config(vq_hps)
        configs = {level: prior_config(prior_hps[level], vq_config) for level in (2, 1, 0)}
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ConfigError(f"{where}: not a Jukebox model config ({type(e).__name__}: {e})") from None
    parts: dict[str, dict[str, torch.Tensor]] = {"vqvae": {}, **{f"priors.{i}": {} for i in range(3)}}
    for name, tensor in state.items():
        prefix = next((p for p in parts if name.startswith(p + ".")), None)
        if prefix is None:
            raise CheckpointError(f"{folder}: unexpected weight '{name}' (not under vqvae. or priors.0-2.)")
        parts[prefix][name[len(prefix) + 1:]] = tensor
    with torch.device("meta"):
        vq_expected = VQVAE(vq_config).state_dict()
    vq_converted = _converted(folder, "VQ-VAE", lambda: convert_vqvae_state_dict(hf_to_original_vqvae(parts["vqvae"])))
    _check_fits(folder, "VQ-VAE", vq_converted, vq_expected)
    sources: dict[int, tuple[PriorConfig, dict[str, torch.Tensor]]] = {}
    for level, config in configs.items():
        what, tied = f"priors.{2 - level} (level-{level} prior)", not config.merged_decoder
        hf_state = parts[f"priors.{2 - level}"]
        converted = _converted(folder, what, lambda: convert_prior_state_dict(hf_to_original_prior(hf_state, tied),
                                                                               tied))
        with torch.device("meta"):
            expected = Prior(config).saved_state()
        _check_fits(folder, what, converted, expected)
        if config.n_tokens and (config.alignment_layer not in config.lyrics_layers()
                                or not 0 <= config.alignment_head < config.transformer.heads):
            # transformers' defaults (layer 68, head 2) left in a config where they do not read the lyrics: use the
            # last layer that does (alignment only; sampling does not read these)
            config = dataclasses.replace(config, alignment_layer=-1, alignment_head=0)
        sources[level] = (config, converted)
    tables = _label_tables(folder, configs)
    preset = released_preset(vq_config, {level: config for level, (config, _) in sources.items()})
    if preset is not None:  # the released model: its own sampling settings (transformers shares the top's with all)
        names = {0: "upsampler_level_0", 1: "upsampler_level_1", 2: TOP_PRIORS[preset]}
        sources = {level: (prior_config(RELEASED[names[level]], vq_config), weights)
                   for level, (_, weights) in sources.items()}
    level_labels = {level: LabelEncoder([], [], table) for level, table in tables.items()
                    if level < 2 and (2 not in tables or table.version != tables[2].version)}
    return write_bundle(out, vq_config, vq_converted, dict(sorted(sources.items())),
                        LabelEncoder([], [], tables.get(2)), preset=preset, dtype=dtype, level_labels=level_labels)
