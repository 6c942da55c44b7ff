"""Training a VQ-VAE on a folder of music with the shared engine; re-running the same call resumes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..data.dataset import AudioFolder, Batch
from ..config_file import ConfigSource, differences
from ..errors import ConfigError
from ..fileio import atomic_write_text, writer_lock
from ..train.checkpoint import CONFIG_FILE
from ..train.loop import TrainSettings, train
from .config import VQVAEConfig, preset as vqvae_preset, with_config_file
from .evaluation import evaluate_vqvae, flatten_metrics
from .loading import load_vqvae
from .model import VQVAE

RUN_FILE = "run.json"


def _run_config(out: Path, origin: dict, initial: VQVAE | None, source: ConfigSource | None,
                overrides: dict) -> VQVAEConfig:
    """The run's config: the preset's (or the initial model's) with the config file and overrides laid over it;
    when resuming, the saved one, refusing another origin (preset, or init and decoders) or a config file that
    asks for other values."""
    run_file = out / RUN_FILE
    if not run_file.is_file():
        base = vqvae_preset(origin["preset"]) if initial is None else initial.config
        return dataclasses.replace(with_config_file(base, source), **overrides)
    saved = json.loads(run_file.read_text())
    if "init" in saved or "init" in origin:
        if {k: saved.get(k) for k in ("init", "decoders")} != {k: origin.get(k) for k in ("init", "decoders")}:
            raise ConfigError(f"{out}: holds a run started from {saved.get('init') or 'a preset'} training decoders "
                              f"{saved.get('decoders') or 'and all'}; resume with the same --init and --decoders "
                              f"or use another --out")
    elif saved.get("preset") != origin["preset"]:
        raise ConfigError(f"{out}: holds a run of preset '{saved.get('preset')}', not '{origin['preset']}'; "
                          f"use the same --preset to resume or another --out")
    config = VQVAEConfig.load(out / CONFIG_FILE)
    requested = dataclasses.replace(with_config_file(config, source), **overrides)
    changed = differences(config.to_dict(), requested.to_dict())
    if changed:
        raise ConfigError(f"{out}: the run was trained with other settings ({'; '.join(changed)}); "
                          f"resume without them or use another --out")
    return config


def _shapes(model: nn.Module) -> dict[str, torch.Size]:
    return {name: value.shape for name, value in model.state_dict().items()}


def vqvae_loss(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch and the metrics shown while training."""
    device = next(model.parameters()).device
    out = model(batch.audio.to(device, non_blocking=True))
    metrics: dict[str, float] = {}
    for level, m in enumerate(out.levels):
        metrics[f"sc_db_{level}"] = m.spectral_convergence_db.item()
        metrics[f"usage_{level}"] = m.usage.item()
        metrics[f"recon_{level}"] = m.reconstruction.item()
        metrics[f"spectral_{level}"] = m.spectral.item()
        metrics[f"commit_{level}"] = m.commit.item()
        metrics[f"perplexity_{level}"] = m.perplexity.item()
        metrics[f"dead_{level}"] = m.dead_codes.item()
    metrics["sc_db"] = float(np.mean([metrics[f"sc_db_{l}"] for l in range(len(out.levels))]))
    metrics["usage"] = min(metrics[f"usage_{l}"] for l in range(len(out.levels)))
    return out.loss, metrics


def train_vqvae(data: str | os.PathLike, out: str | os.PathLike, preset: str | None = None, steps: int = 1000,
                batch_size: int = 8, lr: float | None = None, save_every: int = 1000, eval_every: int | None = None,
                seed: int = 0, metadata: str | os.PathLike | None = None, eval_data: str | os.PathLike | None = None,
                progress: bool = True, config: ConfigSource | None = None,
                audio_cache: str | os.PathLike | None = None, cooldown_steps: int = 0,
                init: str | os.PathLike | None = None, decoders: Sequence[int] | None = None,
                **config_overrides) -> int:
    """Train (or resume training) a VQ-VAE in run directory `out` up to `steps`; returns the step reached.

    The decoded audio is cached in `audio_cache` (default OUT/cache): several runs on the same data can share one.
    `config` (a JSON or TOML file, or a mapping of VQVAEConfig fields) is laid over the preset (default `tiny`),
    and `config_overrides` over that: a new model size without code.
    `init` (a VQ-VAE run, checkpoint or bundle's vqvae/) starts a new run from that model, its size and weights,
    instead of a preset. With `decoders` (levels) only those decoders train: every song's codes stay the same, so
    the priors trained on them still fit (e.g. `log_spectral_weight=1`, docs/training.md).
    Periodic evaluation uses `eval_data` when given, else fixed windows of the training data.
    `cooldown_steps`: the last that many steps before `steps` lower the learning rate linearly to 0.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: --out must be a directory, and this is a file")
    if init is not None and preset is not None:
        raise ConfigError(f"{init}: a run started from --init keeps that model's size; leave out --preset")
    if decoders is not None and init is None:
        raise ConfigError("--decoders fine-tunes the decoders of a trained VQ-VAE: give it with --init")
    # A fitted noise fill belongs to the decoders it was fitted on: the new run has none (refit it once trained).
    initial = None if init is None else load_vqvae(init)[0].with_noise_fill_setting(None)
    if decoders is not None:
        decoders = sorted(set(decoders))
        if not decoders or not all(0 <= level < initial.config.levels for level in decoders):
            raise ConfigError(f"--decoders {decoders}: levels of a {initial.config.levels}-level VQ-VAE, "
                              f"0 to {initial.config.levels - 1}")
    origin = {"preset": preset or "tiny"} if init is None else {"init": str(init), "decoders": decoders}
    config = _run_config(out, origin, initial, config, config_overrides)
    if initial is not None and _shapes(VQVAE(config)) != _shapes(initial):
        raise ConfigError(f"{init}: its weights do not fit the config asked (a run started from --init keeps its "
                          f"model's size)")
    settings = TrainSettings(steps=steps, batch_size=batch_size, learning_rate=config.learning_rate if lr is None else lr,
                             save_every=save_every, eval_every=eval_every, seed=seed, progress=progress,
                             cooldown_steps=cooldown_steps)
    with contextlib.ExitStack() as hold:
        if distributed.is_main():  # one writer per run directory, until training ends
            hold.enter_context(writer_lock(out))
        cache = out / "cache" if audio_cache is None else Path(audio_cache)
        dataset = AudioFolder(data, config.sample_rate, cache, metadata)
        eval_set = AudioFolder(eval_data, config.sample_rate, cache, None) if eval_data else dataset
        if distributed.is_main():
            out.mkdir(parents=True, exist_ok=True)
            config.save(out / CONFIG_FILE)
            atomic_write_text(out / RUN_FILE, json.dumps({**origin, "data": str(data)}, indent=2) + "\n")
        if dataset.lengths.max() < config.sample_length:
            warnings.warn(f"{data}: every file is shorter than one training crop "
                          f"({config.sample_length / config.sample_rate:.2f}s); crops are padded with silence",
                          stacklevel=2)
        torch.manual_seed(seed)  # the same seed gives the same initial weights, so runs are reproducible on CPU
        model = VQVAE(config)
        if initial is not None:
            model.load_state_dict(initial.state_dict())
        if decoders is not None:
            model.train_decoders_only(decoders)

        def next_batch(step: int) -> Batch:
            generator = np.random.default_rng([seed, step, distributed.rank()])
            return dataset.sample_batch(batch_size, config.sample_length, generator, train=True)

        def evaluate(m: nn.Module) -> dict[str, float]:
            return flatten_metrics(evaluate_vqvae(m, eval_set, windows_per_file=2))

        return train(out, model, settings, "vqvae", {CONFIG_FILE: config.to_json()}, next_batch, vqvae_loss, evaluate,
                     progress_keys=("loss", "sc_db", "usage"))
