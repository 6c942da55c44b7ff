"""A saved prior (a run's checkpoint or a bundle's prior folder): its config and weights, loaded as one model."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..train.checkpoint import CONFIG_FILE, load_weights, read_meta
from .config import prior_config_from_dict
from .model import Prior


def load_prior(path: Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> Prior:
    """A saved prior, built on the meta device and given the loaded tensors themselves: one copy in memory,
    cast tensor by tensor to `dtype` if given."""
    read_meta(path, "prior")
    try:
        config = prior_config_from_dict(json.loads((path / CONFIG_FILE).read_text()))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: missing or corrupt prior config ({e})") from None
    with torch.device("meta"):
        prior = Prior(config)
    weights = load_weights(path)
    for name, tensor in weights.items():
        if tensor.is_floating_point():
            weights[name] = tensor.to(dtype or torch.float32)
    try:
        prior.load_saved_state(weights, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the saved config ({str(e).splitlines()[0]})") from None
    return prior.to(device).eval()

