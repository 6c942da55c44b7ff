"""Where models run: "auto" is the GPU when there is one, else the CPU (the same rule for the CLI and the API), and
on how many CPU threads."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

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


def choose_threads(requested: int | None = None) -> int:
    """CPU threads for PyTorch, set and returned: `requested`, else OMP_NUM_THREADS when the user set it, else the
    cores not busy with other work (this process's cores minus the 1-minute load average, at least 1).

    PyTorch's default, every core, is slow on a shared machine: its threads wait on each other while the cores run
    other jobs. With two busy jobs on 2 cores, 3 s of the embedded model took 24.4 s on 2 threads and 10.1 s on 1
    (docs/sampling.md). Where the load makes it use fewer threads than cores, one warning says so."""
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"threads must be at least 1, got {requested}")
        torch.set_num_threads(requested)
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads = max(1, min(cores, cores - int(load + 0.5)))
    if threads < cores:
        warnings.warn(f"the machine is busy (load {load:.1f} on {cores} cores): using {threads} thread(s); "
                      "--threads N to choose", stacklevel=2)
    torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """PyTorch's CPU threads set to `n` inside the block, and back to what they were after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
