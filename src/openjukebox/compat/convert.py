"""Converting original Jukebox checkpoint files (`.pth.tar`) into an openjukebox bundle.

Original files are read with `torch.load(weights_only=True)`: a checkpoint holding anything but tensors and plain
data is refused, so converting a file can never run code from it. Zip-format files are memory-mapped; tensors are
renamed and transposed as views and written one at a time (`weights_file`), so a 5B prior is never held twice in
memory. The hyperparameters come from a released preset, from a JSON file of original hyperparameters, or from
the `hps` dict the original code saves in each checkpoint, in that order. Before anything is written, every
converted tensor's name and shape is checked against the model those hyperparameters describe (built on the meta
device: no memory), so a wrong file or wrong preset is refused by name.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..bundle import write_bundle
from ..errors import CheckpointError, ConfigError
from ..fileio import new_output_dir
from ..label_table import LabelTable, load_label_table
from ..labels import LabelEncoder
from ..prior.model import Prior
from ..vqvae.model import VQVAE
from .openai import convert_prior_state_dict, convert_vqvae_state_dict
from .released import RELEASED, TOP_PRIORS, prior_config, vqvae_config

PRIOR_PRESETS = {0: "upsampler_level_0", 1: "upsampler_level_1"}


def read_original_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(state dict, the original hyperparameters if saved) of an original checkpoint file, loading no code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) format
    except pickle.UnpicklingError as e:
        reason = str(e).split("\n")[0].removeprefix("Weights only load failed. ")
        raise CheckpointError(f"{path}: holds objects other than weights, refused so that no code from it can run "
                              f"({reason[:200]})") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({str(e).splitlines()[0][:200]})") from None
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not an original Jukebox checkpoint (no 'model' state dict)")
    hps = checkpoint.get("hps")
    return {k.removeprefix("module."): v for k, v in state.items()}, hps if isinstance(hps, dict) else None


def _check_fits(path: Path, what: str, converted: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: is not a {what} checkpoint (missing {missing[:2]}, unexpected {unexpected[:2]})")
    for name, tensor in converted.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(f"{path}: is not a {what} checkpoint ({name} is {tuple(tensor.shape)}, "
                                  f"the hyperparameters give {tuple(expected[name].shape)})")


def _hparams(name: str, path: Path, saved: dict | None, preset: str | None, given: dict | None) -> dict[str, Any]:
    if given is not None:
        return given
    if preset is not None:
        return RELEASED[name]
    if saved is not None:
        return saved
    raise ConfigError(f"{path}: holds no hyperparameters; give --preset or --hparams")


def load_hparams_file(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """A JSON file of original hyperparameter dicts: {"vqvae": {...}, "prior0": {...}, ...} (any subset)."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read hyperparameters ({e.strerror or e})") from None
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not set(data) <= {"vqvae", "prior0", "prior1", "prior2"}:
        raise ConfigError(f"{path}: expected an object with keys vqvae, prior0, prior1, prior2")
    return data


def convert_openai(out: str | os.PathLike, vqvae: str | os.PathLike, priors: dict[int, str | os.PathLike],
                   preset: str | None = None, hparams: dict[str, dict] | None = None,
                   artist_ids: str | os.PathLike | None = None, genre_ids: str | os.PathLike | None = None,
                   dtype: torch.dtype | None = None) -> Path:
    """Write a bundle from original checkpoint files: the VQ-VAE and priors for levels 0, 1 and 2.

    `preset` names the released model ('5b', '5b_lyrics', '1b_lyrics'); `hparams` gives original hyperparameter
    dicts instead. `artist_ids`/`genre_ids` are the original id tables (name;id per line) for artist and genre
    names at sampling time. `dtype` stores the weights in that floating-point type (e.g. torch.bfloat16).
    """
    if preset is not None and preset not in TOP_PRIORS:
        raise ConfigError(f"unknown preset '{preset}'; choose one of {', '.join(TOP_PRIORS)}")
    if set(priors) != {0, 1, 2}:
        raise ConfigError("give the priors of all three levels (--prior0, --prior1, --prior2)")
    hparams = hparams or {}
    out = new_output_dir(out)
    vq_path = Path(vqvae)
    vq_state, vq_saved = read_original_checkpoint(vq_path)
    vq_config = vqvae_config(_hparams("vqvae", vq_path, vq_saved, preset, hparams.get("vqvae")))
    with torch.device("meta"):
        vq_expected = VQVAE(vq_config).state_dict()
    vq_converted = _convert(vq_path, "VQ-VAE", lambda: convert_vqvae_state_dict(vq_state))
    _check_fits(vq_path, "VQ-VAE", vq_converted, vq_expected)
    sources, top_hps = {}, {}
    for level in (2, 1, 0):
        path = Path(priors[level])
        state, saved = read_original_checkpoint(path)
        name = TOP_PRIORS[preset] if preset is not None and level == 2 else PRIOR_PRESETS.get(level, "")
        hps = _hparams(name, path, saved, preset, hparams.get(f"prior{level}"))
        config = prior_config(hps, vq_config)
        if config.level != level:
            raise CheckpointError(f"{path}: is a level-{config.level} prior, given as --prior{level}")
        with torch.device("meta"):
            expected = Prior(config).saved_state()
        what = f"level-{level} prior"
        converted = _convert(path, what, lambda: convert_prior_state_dict(state, not config.merged_decoder))
        _check_fits(path, what, converted, expected)
        sources[level] = (config, converted)
        top_hps = hps if level == 2 else top_hps
    table = _label_table(artist_ids, genre_ids, bool(top_hps.get("labels_v3", False)))
    return write_bundle(out, vq_config, vq_converted, sources, LabelEncoder([], [], table), preset=preset, dtype=dtype)


def _convert(path: Path, what: str, convert) -> dict[str, torch.Tensor]:
    try:
        return convert()
    except CheckpointError as e:
        raise CheckpointError(f"{path}: is not a {what} checkpoint ({e})") from None


def _label_table(artist_ids, genre_ids, v3: bool) -> LabelTable | None:
    if (artist_ids is None) != (genre_ids is None):
        raise ConfigError("give both artist_ids and genre_ids (--artist-ids, --genre-ids), or neither")
    if artist_ids is None:
        return None
    return load_label_table(artist_ids, genre_ids, 3 if v3 else 2)
