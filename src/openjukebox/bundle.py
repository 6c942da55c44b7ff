"""A model bundle on disk: manifest + VQ-VAE + three priors + label vocabularies, all a sampler needs.

A bundle may hold only some of them (the VQ-VAE alone serves encoding and decoding; a released model can be
converted one file at a time): what a job needs and the bundle lacks is named, with the command that adds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import CheckpointError, ConfigError
from .fileio import atomic_write_text, new_output_dir
from .labels import VOCAB_FILE, LabelEncoder
from .level_temperatures import upsampler_temperatures
from .models import MANIFEST
from .prior.conditioning import Labels
from .prior.config import PRESETS as PRIOR_PRESETS, prior_config_to_json, prior_preset
from .prior.loading import load_prior
from .prior.model import Prior, PriorConfig
from .prior.training import learned_labels, trained_on
from .train.checkpoint import CONFIG_FILE, WEIGHTS, read_meta, resolve_checkpoint, write_model_dir
from .vqvae.config import VQVAEConfig, preset as vqvae_preset
from .vqvae.loading import load_vqvae
from .vqvae.model import VQVAE

FORMAT_VERSION = 1


@dataclass
class Bundle:
    path: Path
    vqvae: VQVAE | None  # None: a bundle of priors only, so far
    priors: dict[int, Prior]  # by level; any subset of 0, 1, 2
    label_encoder: LabelEncoder  # artist and genre names → ids, as the top prior was trained with
    device: torch.device = torch.device("cpu")
    # The song length (seconds) the timing conditioning assumes when a request does not say: a clip of a few
    # seconds otherwise asks for a song that short, which the training data may only know as jingles.
    song_seconds: float | None = None
    dtype: torch.dtype | None = None  # what the priors run in, and the VQ-VAE decodes in (None: float32)
    # Levels whose prior keys names to other ids than the top prior (1b_lyrics: its upsamplers read v2 ids, its
    # top prior v3 ones); the others use `label_encoder`.
    level_labels: dict[int, LabelEncoder] = field(default_factory=dict)
    # The temperature each upsampler (level 1, 0) draws at unless a request says otherwise (a level missing: the
    # request's temperature): a small upsampler keeps more of the top level's harmony below 1
    # (docs/embedded-model.md). The manifest holds one number for both or one a level ({"1": 0.85, "0": 1}).
    upsampling_temperature: dict[int, float] = field(default_factory=dict)
    # Where (seconds) in the song a clip begins when a request does not say and the song leaves room: a clip from
    # the start is an intro, which in the training music is often quiet and sparse (docs/embedded-model.md).
    song_start: float | None = None
    # The temperature the top level draws at when a request does not say (None: 1): a small top prior's songs keep
    # more of the music's harmony a little below 1 (docs/embedded-model.md).
    temperature: float | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
             ) -> Bundle:
        """The same as load_bundle."""
        return load_bundle(path, device, dtype)

    def fingerprint(self) -> str:
        """Which model this is, cheaply: a hash of each part's config and of the start and end of its weights file
        (another training, conversion or storage type changes them), so that a run can refuse another model."""
        digest = hashlib.sha256()
        for part in sorted(p for p in self.path.iterdir() if (p / WEIGHTS).is_file()):
            weights, size = part / WEIGHTS, (part / WEIGHTS).stat().st_size
            digest.update(f"{part.name} {size}".encode() + (part / CONFIG_FILE).read_bytes())
            with open(weights, "rb") as f:
                digest.update(f.read(1 << 16))
                f.seek(max(0, size - (1 << 16)))
                digest.update(f.read(1 << 16))
        return digest.hexdigest()[:16]

    def require(self, levels: list[int], vqvae: bool = True) -> None:
        """Refuse, naming what is missing and how to add it, unless the bundle has these levels' priors (and the
        VQ-VAE, when `vqvae`)."""
        missing = {"VQ-VAE": "--vqvae FILE"} if self.vqvae is None and vqvae else {}
        missing |= {f"level-{level} prior": f"--prior{level} FILE" for level in levels if level not in self.priors}
        if missing:
            raise CheckpointError(f"{self.path}: this bundle has no {' and no '.join(missing)}; add it with "
                                  f"'openjukebox bundle add {self.path} {' '.join(missing.values())}'")

    def prior(self, level: int) -> Prior:
        """The level's prior on the bundle's device, the others moved to host memory: only the prior in use
        takes accelerator memory (a 5B top prior and two 1B upsamplers do not fit together on most GPUs)."""
        self.require([level], vqvae=False)
        for other, prior in self.priors.items():
            if other != level and prior.pos_emb.device != torch.device("cpu"):
                prior.to("cpu")
        return self.priors[level].to(self.device)

    def labels(self, artist: str | None, genres: list[str] | None, total_length: int, batch: int, level: int = 2
               ) -> Labels:
        """The level's prior's labels for `batch` songs of `total_length` samples, with its own ids for the names,
        refusing names it does not know."""
        self.require([level], vqvae=False)
        config = self.priors[level].config
        encoder = self.level_labels.get(level, self.label_encoder)
        artist_id, genre_ids = encoder.ids(artist, genres, config.max_genres, where=f"level {level}: "
                                           if level in self.level_labels else "")
        n_tokens = config.n_tokens
        # No words (the original's encoding of empty lyrics); the sampler puts each window's lyrics here.
        lyrics = torch.zeros(batch, n_tokens, dtype=torch.long) if n_tokens else None
        return Labels(artist=torch.full((batch,), artist_id), genres=torch.tensor([genre_ids] * batch),
                      total_length=torch.full((batch,), total_length), offset=torch.zeros(batch, dtype=torch.long),
                      lyrics=lyrics)


def init_bundle(preset: str, out: str | os.PathLike, seed: int = 0, artists: list[str] | None = None,
                genres: list[str] | None = None) -> Path:
    """Write a bundle of a prior preset (prior.config.PRESETS) and its VQ-VAE, with random weights (codebooks
    drawn at random): for tests and benchmarks."""
    out = new_output_dir(out)
    artists, genres = artists or ["unknown"], genres or ["unknown"]
    torch.manual_seed(seed)
    if preset not in PRIOR_PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; choose one of {', '.join(PRIOR_PRESETS)}")
    vq_config = vqvae_preset(PRIOR_PRESETS[preset].vqvae)
    vqvae = VQVAE(vq_config)
    for codebook in vqvae.codebooks:
        codebook.initialise(torch.randn(vq_config.codebook_size, vq_config.emb_width) * 0.1)
    priors = {}
    for level in range(3):
        prior = Prior(prior_preset(preset, level, vq_config.codebook_size, vq_config.hop_lengths[level],
                                   vq_config.sample_rate, len(artists), len(genres)))
        priors[level] = (prior.config, prior.saved_state())
    return write_bundle(out, vq_config, vqvae.state_dict(), priors, LabelEncoder(artists, genres), preset=preset)


def write_bundle(out: Path, vqvae_config: VQVAEConfig, vqvae_weights: dict[str, torch.Tensor] | None,
                 priors: dict[int, tuple[PriorConfig, dict[str, torch.Tensor]]], labels: LabelEncoder,
                 preset: str | None = None, steps: dict[str, int] | None = None, dtype: torch.dtype | None = None,
                 extra: dict | None = None, level_labels: dict[int, LabelEncoder] | None = None) -> Path:
    """Each model as a self-describing directory (the VQ-VAE's only when its weights are given, the priors that
    are given), then the manifest last: a bundle without one is incomplete, and adding parts to a bundle rewrites
    it after them. Weights are written one tensor at a time, cast to `dtype` if given. `extra`: more manifest
    entries (such as `song_seconds`). A new bundle is written in a temporary folder renamed into place at the
    end, so an interrupted or failed write leaves nothing behind and the retry finds the folder free."""
    steps = steps or {}
    fresh = not (out / MANIFEST).exists()
    target = out.parent / f".tmp-{out.name}-{os.getpid()}" if fresh else out
    try:
        if vqvae_weights is not None:
            write_model_dir(target / "vqvae", vqvae_weights, "vqvae", steps.get("vqvae", 0),
                            {CONFIG_FILE: vqvae_config.to_json()}, cast=dtype)
        for level, (config, weights) in priors.items():
            write_model_dir(target / f"prior_{level}", weights, "prior", steps.get(f"prior_{level}", 0),
                            {CONFIG_FILE: prior_config_to_json(config)}, cast=dtype)
        manifest = {**(extra or {}), "format_version": FORMAT_VERSION, "kind": "bundle", "preset": preset,
                    **labels.to_json()}
        if level_labels:
            manifest["level_labels"] = {str(level): encoder.to_json()
                                        for level, encoder in sorted(level_labels.items())}
        atomic_write_text(target / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        if fresh:
            if out.is_dir():
                out.rmdir()  # empty: new_output_dir refused anything else
            os.replace(target, out)
    except BaseException as e:
        if fresh:
            shutil.rmtree(target, ignore_errors=True)
            if isinstance(e, (OSError, CheckpointError)):
                reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).split("(")[-1].rstrip(")")
                raise CheckpointError(f"{out}: could not write the bundle ({reason}); nothing was left "
                                      "behind") from None
        raise
    return out


def assemble_bundle(vqvae: str | os.PathLike, priors: dict[int, str | os.PathLike], out: str | os.PathLike,
                    dtype: torch.dtype | None = None) -> Path:
    """A bundle from trained runs (or checkpoint directories, or other bundles: their prior of that level): their
    latest weights and configs, the vocabulary of the top prior's training data. Checks that the priors were trained
    on this VQ-VAE's codebook sizes. Weights are stored in `dtype` when given (float16 halves the files; loading
    computes in float32)."""
    out = new_output_dir(out)
    vq_ckpt = resolve_checkpoint(vqvae)
    vq_model, step = load_vqvae(vq_ckpt)
    sources, steps = {}, {"vqvae": step}
    for level in range(3):
        if (Path(priors[level]) / MANIFEST).is_file():  # another bundle: its prior, drawn on its own VQ-VAE's codes
            ckpt = Path(priors[level]) / f"prior_{level}"
            source = load_vqvae(Path(priors[level]) / "vqvae")[0].fingerprint()
        else:
            ckpt = resolve_checkpoint(priors[level])
            source = trained_on(ckpt) or trained_on(priors[level])
        if source not in (None, vq_model.fingerprint()):
            raise ConfigError(f"{priors[level]}: was trained on the codes of another VQ-VAE (fingerprint {source}, "
                              f"{vqvae} is {vq_model.fingerprint()})")
        prior = load_prior(ckpt)
        if prior.config.level != level or prior.config.bins != vq_model.config.codebook_size:
            raise ConfigError(f"{priors[level]}: is a level-{prior.config.level} prior over {prior.config.bins} codes, "
                              f"not a level-{level} prior for this VQ-VAE ({vq_model.config.codebook_size} codes)")
        sources[level] = (prior.config, prior.saved_state())
        steps[f"prior_{level}"] = int(read_meta(ckpt, "prior")["step"])
    # The top prior's names are the bundle's; an upsampler that learned other ids (more names) keeps its own table.
    learned = {level: learned_labels(priors[level], level) for level in range(3)}
    if learned[2] is None:
        raise CheckpointError(f"{priors[2]}: no {VOCAB_FILE} (train the prior with 'openjukebox prior train')")
    level_labels = {level: labels for level, labels in learned.items()
                    if labels is not None and labels != learned[2]}
    return write_bundle(out, vq_model.config, vq_model.state_dict(), sources, learned[2], steps=steps, dtype=dtype,
                        level_labels=level_labels)


def prior_location(model: str | os.PathLike, level: int) -> tuple[Path, Path]:
    """(prior checkpoint directory, file holding its label vocabulary) for a bundle, a prior run or a checkpoint."""
    model = Path(model)
    if (model / MANIFEST).is_file():
        return model / f"prior_{level}", model / MANIFEST
    ckpt = resolve_checkpoint(model)
    return ckpt, ckpt / VOCAB_FILE


def load_bundle(path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> Bundle:
    """A bundle whose VQ-VAE sits on `device` and whose priors wait in host memory (`Bundle.prior` moves the one
    in use); prior weights in `dtype` when given (e.g. torch.bfloat16 halves their memory), and the VQ-VAE decoding
    in it too (its weights stay float32: they are 7.5 MB)."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not a model bundle (no {MANIFEST}); make one with 'openjukebox init'") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path}/{MANIFEST}: corrupt bundle manifest") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}/{MANIFEST}: corrupt bundle manifest (not an object)")
    if manifest.get("kind") != "bundle" or manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: bundle format {manifest.get('format_version')!r} is not supported")
    vqvae = load_vqvae(path / "vqvae", device)[0] if (path / "vqvae").is_dir() else None
    priors = {level: load_prior(path / f"prior_{level}", "cpu", dtype) for level in range(3)
              if (path / f"prior_{level}").is_dir()}
    if vqvae is None and not priors:
        raise CheckpointError(f"{path}: this bundle holds no model yet; add some with 'openjukebox bundle add'")
    labels = LabelEncoder.from_json(manifest, path / MANIFEST)
    level_labels = {int(level): LabelEncoder.from_json(data, path / MANIFEST)
                    for level, data in (manifest.get("level_labels") or {}).items()}
    return Bundle(path, vqvae, priors, labels, torch.device(device),
                  _positive_number(manifest, "song_seconds", path / MANIFEST), dtype, level_labels,
                  _upsampling_temperature(manifest, path / MANIFEST),
                  _positive_number(manifest, "song_start", path / MANIFEST),
                  _positive_number(manifest, "temperature", path / MANIFEST))


def _upsampling_temperature(manifest: dict, where: Path) -> dict[int, float]:
    """The manifest's optional `upsampling_temperature` by level, refused by name unless valid."""
    try:
        return upsampler_temperatures(manifest.get("upsampling_temperature"), "upsampling_temperature")
    except ConfigError as e:
        raise CheckpointError(f"{where}: {e}") from None


def _positive_number(manifest: dict, key: str, where: Path) -> float | None:
    """The manifest's optional `key`, refused by name unless a positive finite number."""
    value = manifest.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise CheckpointError(f"{where}: {key} must be a positive number, got {value!r}")
    return float(value)
