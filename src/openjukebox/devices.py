"""Where models run: "auto" is the GPU when there is one, else the CPU; the same rule for the CLI and the API."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto", "cpu", "cuda", "cuda:1", … (or a torch.device) → the device, refusing CUDA where there is none."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name}: CUDA is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device '{name}' is not a device: use auto, cpu, cuda or cuda:N") from None
