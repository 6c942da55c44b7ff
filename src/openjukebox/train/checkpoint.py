"""Checkpoints that survive kill -9 and full disks.

A checkpoint is a directory `RUN_DIR/checkpoints/step-XXXXXXXX/` holding the weights (`model.safetensors`),
the training state (`training_state.pt`, loaded with weights_only=True, never as a plain pickle), the model
config and `meta.json`. It is written under a temporary name, fsynced and renamed into place; only then does
the `latest` pointer (itself replaced atomically) move to it. So the last good checkpoint is never touched
until a newer one is complete.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..version import __version__
from ..errors import CheckpointError
from ..fileio import atomic_write_text, fsync_dir, fsync_file
from ..weights_file import write_weights

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
TRAINING_STATE = "training_state.pt"
META = "meta.json"
CONFIG_FILE = "config.json"  # the model's config beside its weights, in every run and checkpoint directory


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | os.PathLike, step: int, weights: dict[str, torch.Tensor], training_state: dict,
                    kind: str, files: dict[str, str], keep: int = 2) -> Path:
    """Write a complete checkpoint for `step`, point `latest` at it and drop all but the newest `keep`.

    `files` are extra text files (name → content) stored alongside, e.g. the model config.
    """
    root = checkpoints_dir(Path(run_dir))
    name = f"step-{step:08d}"
    final = root / name
    write_model_dir(final, weights, kind, step, files, training_state)
    try:
        atomic_write_text(root / "latest", name + "\n")
    except OSError as e:
        raise CheckpointError(f"could not save checkpoint {final} ({e.strerror or e}); the previous one is intact") from None
    for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def write_model_dir(final: Path, weights: dict[str, torch.Tensor], kind: str, step: int, files: dict[str, str],
                    training_state: dict | None = None, cast: torch.dtype | None = None) -> Path:
    """Write a self-describing model directory (weights, meta.json, extra files, optionally the training state)
    under a temporary name, fsync it and rename it into place. Floating-point weights are stored as `cast`
    when given."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        write_weights(tmp / WEIGHTS, weights, cast)
        if training_state is not None:
            torch.save(training_state, tmp / TRAINING_STATE)
        meta = {"format_version": FORMAT_VERSION, "kind": kind, "step": step, "openjukebox_version": __version__}
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
        for file_name, content in files.items():
            (tmp / file_name).write_text(content)
        for path in tmp.iterdir():
            fsync_file(path)
        fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"could not save {final} ({e.strerror or e}); the previous one is intact") from None
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint `latest` points to, or None for a run that has not saved one yet."""
    root = checkpoints_dir(Path(run_dir))
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer}: points to a missing checkpoint '{path.name}'")
    return path


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint directory from a run directory (its latest checkpoint), a checkpoint directory, or a model
    bundle (its VQ-VAE)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such model directory")
    if not path.is_dir():
        raise CheckpointError(f"{path}: expected a run or checkpoint directory, got a file")
    if (path / META).is_file():
        return path
    if (path / "manifest.json").is_file():  # a model bundle: its VQ-VAE
        if not (path / "vqvae" / META).is_file():
            raise CheckpointError(f"{path}: this bundle has no VQ-VAE; add it with "
                                  f"'openjukebox bundle add {path} --vqvae FILE'")
        return path / "vqvae"
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(f"{path}: holds no checkpoint (train a model into it first)")
    return latest


def read_meta(ckpt: Path, kind: str) -> dict:
    try:
        meta = json.loads((ckpt / META).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{ckpt}: not a checkpoint (no {META})") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{ckpt}/{META}: corrupt checkpoint metadata") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(f"{ckpt}: checkpoint format {version!r} is not the supported format {FORMAT_VERSION}")
    if meta.get("kind") != kind:
        raise CheckpointError(f"{ckpt}: holds a '{meta.get('kind')}' model, not a '{kind}' model")
    return meta


def load_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(ckpt / WEIGHTS))
    except FileNotFoundError:
        raise CheckpointError(f"{ckpt}: no {WEIGHTS}") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{ckpt / WEIGHTS}: unreadable weights, truncated or corrupt ({e})") from None


def load_training_state(ckpt: Path) -> dict:
    path = ckpt / TRAINING_STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{ckpt}: no {TRAINING_STATE}") from None
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: unsafe training state (it holds objects other than tensors and plain "
                              f"values, which openjukebox never loads)") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: unreadable or unsafe training state ({reason})") from None
