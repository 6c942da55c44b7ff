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

import importlib.util
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..bundle import write_bundle
from ..models import MANIFEST, cache_dir
from ..prior.config import prior_config_from_dict
from ..train.checkpoint import CONFIG_FILE
from ..vqvae.config import VQVAEConfig
from ..errors import CheckpointError, ConfigError
from ..fileio import new_output_dir
from ..label_table import LabelTable, load_label_table
from ..labels import LabelEncoder
from ..prior.model import Prior, PriorConfig
from ..vqvae.model import VQVAE
from .openai import convert_prior_state_dict, convert_vqvae_state_dict
from .released import RELEASED, TOP_PRIORS, prior_config, vqvae_config

PRIOR_PRESETS = {0: "upsampler_level_0", 1: "upsampler_level_1"}


def load_pickled(path: Path, what: str) -> Any:
    """A torch pickle holding tensors and plain data only (anything else is refused, so no code from it can run),
    memory-mapped when it is a zip file; one-line errors naming `what` it should be."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) format
    except pickle.UnpicklingError as e:
        reason = str(e).split("\n")[0].removeprefix("Weights only load failed. ")
        raise CheckpointError(f"{path}: holds objects other than weights, refused so that no code from it can run "
                              f"({reason[:200]})") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt {what} ({str(e).splitlines()[0][:200]})") from None


def read_original_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(state dict, the original hyperparameters if saved) of an original checkpoint file, loading no code."""
    path = Path(path)
    checkpoint = load_pickled(path, "checkpoint")
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


def convert_openai(out: str | os.PathLike, vqvae: str | os.PathLike | None = None,
                   priors: dict[int, str | os.PathLike] | None = None, preset: str | None = None,
                   hparams: dict[str, dict] | None = None, artist_ids: str | os.PathLike | None = None,
                   genre_ids: str | os.PathLike | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write a bundle from original checkpoint files: any of the VQ-VAE and the priors of levels 0, 1 and 2 (the
    rest can be added later with `add_to_bundle`; the VQ-VAE alone serves encoding and decoding).

    `preset` names the released model ('5b', '5b_lyrics', '1b_lyrics'); `hparams` gives original hyperparameter
    dicts instead. `artist_ids`/`genre_ids` are the original id tables (name;id per line) for artist and genre
    names at sampling time; without them the released tables are looked for (`find_label_tables`). `dtype` stores
    the weights in that floating-point type (e.g. torch.bfloat16).
    """
    priors = dict(priors or {})
    _check_request(vqvae, priors, preset)
    out = new_output_dir(out)
    vq_config, vq_weights = _vqvae_part(vqvae, preset, hparams or {})
    sources, hps = _prior_parts(priors, vq_config, preset, hparams or {})
    table = _label_table(artist_ids, genre_ids, hps.get(2, {}), priors.get(2), sources)
    level_labels = _upsampler_labels(hps, priors, sources, _version(hps[2]) if 2 in hps else None)
    return write_bundle(out, vq_config, vq_weights, sources, LabelEncoder([], [], table), preset=preset,
                        dtype=dtype, level_labels=level_labels)


def add_to_bundle(bundle: str | os.PathLike, vqvae: str | os.PathLike | None = None,
                  priors: dict[int, str | os.PathLike] | None = None, preset: str | None = None,
                  hparams: dict[str, dict] | None = None, artist_ids: str | os.PathLike | None = None,
                  genre_ids: str | os.PathLike | None = None, dtype: torch.dtype | None = None) -> Path:
    """Complete a bundle with parts it lacks, from original checkpoint files (as `convert_openai`). A part it has
    is refused (make a new bundle to replace one), and so is a part that does not fit the others (another
    codebook size or hop length). Each part is written whole before the manifest names it."""
    path = Path(bundle)
    priors = dict(priors or {})
    _check_request(vqvae, priors, preset)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        raise CheckpointError(f"{path}: not a model bundle (no readable {MANIFEST})") from None
    have = [name for name in ("vqvae", *(f"prior_{level}" for level in priors)) if (path / name).is_dir()
            and (name != "vqvae" or vqvae is not None)]
    if have:
        raise ConfigError(f"{path}: already has {', '.join(have)}; convert into a new bundle to replace it")
    if (path / "vqvae").is_dir():
        vq_config, vq_weights = VQVAEConfig.load(path / "vqvae" / CONFIG_FILE), None
    else:
        vq_config, vq_weights = _vqvae_part(vqvae, preset or manifest.get("preset"), hparams or {})
    for level in range(3):  # the parts already there must fit the VQ-VAE given now
        if (path / f"prior_{level}").is_dir():
            _check_level(path / f"prior_{level}", level, _saved_prior_config(path / f"prior_{level}"), vq_config)
    sources, hps = _prior_parts(priors, vq_config, preset or manifest.get("preset"), hparams or {})
    labels = LabelEncoder.from_json(manifest, path / MANIFEST)
    if 2 in priors:
        labels = LabelEncoder([], [], _label_table(artist_ids, genre_ids, hps[2], priors[2], sources))
    level_labels = {int(level): LabelEncoder.from_json(data, path / MANIFEST)
                    for level, data in (manifest.get("level_labels") or {}).items()}
    top_version = _version(hps[2]) if 2 in hps else labels.table.version if labels.table is not None else None
    level_labels |= _upsampler_labels(hps, priors, sources, top_version)
    kept = {k: v for k, v in manifest.items() if k not in ("artists", "genres", "label_table")}
    return write_bundle(path, vq_config, vq_weights, sources, labels, preset=manifest.get("preset") or preset,
                        dtype=dtype, extra={k: v for k, v in kept.items() if k != "level_labels"},
                        level_labels=level_labels)


def _check_request(vqvae: str | os.PathLike | None, priors: dict[int, str | os.PathLike], preset: str | None) -> None:
    if preset is not None and preset not in TOP_PRIORS:
        raise ConfigError(f"unknown preset '{preset}'; choose one of {', '.join(TOP_PRIORS)}")
    if not set(priors) <= {0, 1, 2}:
        raise ConfigError(f"prior levels are 0, 1 and 2, not {sorted(set(priors) - {0, 1, 2})}")
    if vqvae is None and not priors:
        raise ConfigError("give at least one checkpoint file: --vqvae, --prior0, --prior1 or --prior2")


def _vqvae_part(vqvae: str | os.PathLike | None, preset: str | None, hparams: dict[str, dict]
                ) -> tuple[VQVAEConfig, dict[str, torch.Tensor] | None]:
    """The VQ-VAE's config and converted weights; without a file, the config alone (the one every released model
    shares, or --hparams'), which the priors' shapes are checked against."""
    if vqvae is None:
        return vqvae_config(hparams.get("vqvae") or RELEASED["vqvae"]), None
    vq_path = Path(vqvae)
    vq_state, vq_saved = read_original_checkpoint(vq_path)
    vq_config = vqvae_config(_hparams("vqvae", vq_path, vq_saved, preset, hparams.get("vqvae")))
    with torch.device("meta"):
        vq_expected = VQVAE(vq_config).state_dict()
    vq_converted = _convert(vq_path, "VQ-VAE", lambda: convert_vqvae_state_dict(vq_state))
    _check_fits(vq_path, "VQ-VAE", vq_converted, vq_expected)
    return vq_config, vq_converted


def _prior_parts(priors: dict[int, str | os.PathLike], vq_config: VQVAEConfig, preset: str | None,
                 hparams: dict[str, dict]) -> tuple[dict, dict[int, dict[str, Any]]]:
    """({level: (config, converted weights)}, {level: its original hyperparameters})."""
    sources, hps_by_level = {}, {}
    for level in sorted(priors, reverse=True):
        path = Path(priors[level])
        state, saved = read_original_checkpoint(path)
        name = TOP_PRIORS[preset] if preset is not None and level == 2 else PRIOR_PRESETS.get(level, "")
        hps = _hparams(name, path, saved, preset, hparams.get(f"prior{level}"))
        config = prior_config(hps, vq_config)
        _check_level(path, level, config, vq_config)
        with torch.device("meta"):
            expected = Prior(config).saved_state()
        what = f"level-{level} prior"
        converted = _convert(path, what, lambda: convert_prior_state_dict(state, not config.merged_decoder))
        _check_fits(path, what, converted, expected)
        sources[level] = (config, converted)
        hps_by_level[level] = hps
    return sources, hps_by_level


def _check_level(path: Path, level: int, config: PriorConfig, vq_config: VQVAEConfig) -> None:
    if config.level != level:
        raise CheckpointError(f"{path}: is a level-{config.level} prior, given as --prior{level}")
    if config.bins != vq_config.codebook_size or config.hop_length != vq_config.hop_lengths[level]:
        raise CheckpointError(f"{path}: models {config.bins} codes at hop {config.hop_length}; the VQ-VAE's "
                              f"level {level} has {vq_config.codebook_size} codes at hop "
                              f"{vq_config.hop_lengths[level]}")


def _saved_prior_config(path: Path) -> PriorConfig:
    return prior_config_from_dict(json.loads((path / CONFIG_FILE).read_text()), str(path / CONFIG_FILE))


def _convert(path: Path, what: str, convert) -> dict[str, torch.Tensor]:
    try:
        return convert()
    except CheckpointError as e:
        raise CheckpointError(f"{path}: is not a {what} checkpoint ({e})") from None


def _label_table(artist_ids: str | os.PathLike | None, genre_ids: str | os.PathLike | None,
                 top_hps: dict[str, Any], top_path: str | os.PathLike | None, sources: dict) -> LabelTable | None:
    """The top prior's id tables: the files given (refused if the prior has no embedding for their ids), else
    the released ones found beside the checkpoint, in the download cache or in an installed jukebox-infer (left
    out if they do not fit); None for a bundle without a top prior or labels."""
    if (artist_ids is None) != (genre_ids is None):
        raise ConfigError("give both artist_ids and genre_ids (--artist-ids, --genre-ids), or neither")
    if top_path is None or not top_hps.get("labels", True) or not top_hps.get("y_bins"):
        return None
    version = _version(top_hps)
    if artist_ids is None:
        found = find_label_tables(version, [Path(top_path).parent])
        table = None if found is None else load_label_table(*found, version)
        return table if _misfit(table, sources[2][0]) is None else None
    table = load_label_table(artist_ids, genre_ids, version)
    problem = _misfit(table, sources[2][0])
    if problem is not None:
        raise ConfigError(f"{artist_ids}, {genre_ids}: {problem}")
    return table


def _version(hps: dict[str, Any]) -> int:
    return 3 if hps.get("labels_v3") else 2


def _upsampler_labels(hps: dict[int, dict[str, Any]], paths: dict[int, str | os.PathLike], sources: dict,
                      top_version: int | None) -> dict[int, LabelEncoder]:
    """The id tables of converted upsamplers that key names by another version than the top prior (1b_lyrics: v3
    at the top, v2 below, as in the original), found as `find_label_tables` finds them; none found: that level
    knows no names, and sampling with names says so. The others share the top prior's."""
    encoders = {}
    for level in (0, 1):
        if level in hps and hps[level].get("labels", True) and hps[level].get("y_bins") \
                and _version(hps[level]) != top_version:
            version = _version(hps[level])
            found = find_label_tables(version, [Path(paths[level]).parent])
            table = None if found is None else load_label_table(*found, version)
            encoders[level] = LabelEncoder([], [], table if _misfit(table, sources[level][0]) is None else None)
    return encoders


def _misfit(table: LabelTable | None, config: PriorConfig) -> str | None:
    """Why `table` cannot serve a prior of `config` (ids it has no embedding for: another model's table), or None."""
    if table is None:
        return None
    for kind, ids, size in (("artist", table.artists, config.n_artists), ("genre", table.genres, config.n_genres)):
        if ids and max(ids.values()) >= size:
            return f"the v{table.version} {kind} ids run to {max(ids.values())}, but the prior has {size} {kind} " \
                   "embeddings: the id table of another model?"
    return None


def find_label_tables(version: int, folders: list[Path]) -> tuple[Path, Path] | None:
    """(artist ids, genre ids) files `v{version}_artist_ids.txt` and `v{version}_genre_ids.txt`, looked for in
    `folders`, the download cache and the id tables an installed jukebox-infer ships."""
    places = [*folders, cache_dir(), cache_dir() / "ids"]
    infer = importlib.util.find_spec("jukebox_infer")
    if infer is not None and infer.origin is not None:
        places.append(Path(infer.origin).parent / "data" / "ids")
    for folder in places:
        artist, genre = folder / f"v{version}_artist_ids.txt", folder / f"v{version}_genre_ids.txt"
        if artist.is_file() and genre.is_file():
            return artist, genre
    return None
