"""torchrun integration: process-group set-up and the few collectives the engine and codebooks need.

Every helper is a no-op in a single process, so the same code runs with and without torchrun.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank: the process group's, or before it is joined, the one torchrun gave it (so that only
    rank 0 writes, from the first file on)."""
    return dist.get_rank() if is_distributed() else int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def setup(device: torch.device) -> None:
    """Join the process group torchrun describes in the environment: nccl on GPU, gloo on CPU."""
    if not launched_by_torchrun() or is_distributed():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timedelta(minutes=30))


def teardown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def local_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over all ranks, in place; returns it."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= world_size()
    return t


def broadcast(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite `t` on every rank with rank `src`'s value, in place; returns it."""
    if is_distributed():
        dist.broadcast(t, src)
    return t


def my_share(n: int) -> range:
    """This rank's contiguous share of n items (the first ranks take one more when n does not divide evenly)."""
    size, extra = divmod(n, world_size())
    start = rank() * size + min(rank(), extra)
    return range(start, start + size + (rank() < extra))


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's `obj` (picklable), in rank order, on every rank; [obj] in a single process."""
    if not is_distributed():
        return [obj]
    gathered: list[object] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if is_distributed():
        dist.barrier()
