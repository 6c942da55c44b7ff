"""Loading a trained VQ-VAE from a run or checkpoint directory."""

from __future__ import annotations

import os

import torch

from ..errors import CheckpointError
from ..train.checkpoint import CONFIG_FILE, load_weights, read_meta, resolve_checkpoint
from .config import VQVAEConfig
from .model import VQVAE


def load_vqvae(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[VQVAE, int]:
    """The model in `path` (a run directory: its latest checkpoint; or one checkpoint directory), in eval
    mode, and the training step it was saved at."""
    ckpt = resolve_checkpoint(path)
    meta = read_meta(ckpt, "vqvae")
    model = VQVAE(VQVAEConfig.load(ckpt / CONFIG_FILE))
    weights = load_weights(ckpt)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{ckpt}: weights do not fit the saved config ({first[1].strip() if len(first) > 1 else first[0]})") from None
    if not all(bool(c.initialised) for c in model.codebooks):
        raise CheckpointError(f"{ckpt}: the codebooks were never trained (checkpoint from before the first step?)")
    return model.to(device).eval(), int(meta["step"])
