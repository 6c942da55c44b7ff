"""The training loop every model shares: resume, DDP, precision, periodic evaluation, checkpoints, logs.

The model-specific parts come in as plain functions: `next_batch(step)` gives this rank's batch for a step
(derived from the seed, the step and the rank, so a resumed run sees the same data), `compute_loss(model,
batch)` gives the loss and the metrics to show, and `evaluate(model)` gives evaluation metrics.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .. import distributed
from ..errors import OpenJukeboxError
from .checkpoint import latest_checkpoint, load_training_state, load_weights, read_meta, save_checkpoint
from .metrics_log import MetricsLog


@dataclass
class TrainSettings:
    steps: int
    batch_size: int
    learning_rate: float
    save_every: int = 1000
    eval_every: int | None = None  # defaults to save_every
    warmup_steps: int = 100
    # The last `cooldown_steps` before `steps` lower the learning rate linearly to 0: a small model that stops on
    # a constant rate keeps the noise of its last updates; cooled down, it settles (lower held-out loss).
    cooldown_steps: int = 0
    seed: int = 0
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "save_every"):
            if getattr(self, name) <= 0:
                raise OpenJukeboxError(f"{name} (--{name.replace('_', '-')}) must be positive, "
                                       f"got {getattr(self, name)}")
        if not 0 <= self.cooldown_steps <= self.steps:
            raise OpenJukeboxError(f"cooldown_steps (--cooldown-steps) must be between 0 and --steps ({self.steps}), "
                                   f"got {self.cooldown_steps}")
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise OpenJukeboxError(f"lr (--lr) must be a positive number, got {self.learning_rate}")


def autocast_context(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on GPU; full fp32 on CPU, where bf16 is slower and less accurate."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def train(run_dir: Path, model: nn.Module, settings: TrainSettings, kind: str, files: dict[str, str],
          next_batch: Callable[[int], Any], compute_loss: Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]],
          evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
          progress_keys: tuple[str, ...] = ("loss",),
          weights_of: Callable[[nn.Module], dict[str, torch.Tensor]] = nn.Module.state_dict,
          fsdp_units: list[nn.Module] | None = None) -> int:
    """Train until `settings.steps`, resuming from the run's latest checkpoint; returns the final step.

    `weights_of` gives what is saved (a model with tied weights leaves out the duplicate); resuming loads
    exactly those keys back. Under torchrun, `fsdp_units` (for a model too big to replicate) switches from
    DDP to FSDP, sharding each unit and then the whole model.
    """
    device = distributed.local_device()
    distributed.setup(device)
    torch.manual_seed(settings.seed + distributed.rank())
    model.to(device)
    step = 0
    ckpt = latest_checkpoint(run_dir)
    state = None
    if ckpt is not None:
        read_meta(ckpt, kind)
        weights = load_weights(ckpt)
        missing = set(weights_of(model)) - set(weights)
        if missing:
            raise OpenJukeboxError(f"{ckpt}: checkpoint lacks weights {sorted(missing)[:3]}")
        model.load_state_dict(weights, strict=False)
        state = load_training_state(ckpt)
        step = int(state["step"])
        _set_rng_state(state["rng"][min(distributed.rank(), len(state["rng"]) - 1)])
    saved_keys = set(weights_of(model))
    train_model: nn.Module = model
    if distributed.is_distributed() and fsdp_units:
        # Each unit (e.g. a transformer block) is sharded across ranks, then the rest of the model.
        for unit in fsdp_units:
            fully_shard(unit)
        fully_shard(model)
    elif distributed.is_distributed():
        # Codebook buffers are kept in sync by the codebooks' own collectives, not by DDP's broadcast.
        train_model = DistributedDataParallel(model, broadcast_buffers=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    if state is not None and all(isinstance(k, int) for k in state["optimizer"]["state"]):
        optimizer.load_state_dict(state["optimizer"])  # a run saved before sharding support: keyed by index
    elif state is not None:
        set_optimizer_state_dict(model, optimizer, optim_state_dict=state["optimizer"], options=full)
    main = distributed.is_main()
    log = MetricsLog(run_dir, step, "log", enabled=main)
    eval_log = MetricsLog(run_dir, step, "eval", enabled=main)
    eval_every = settings.eval_every or settings.save_every

    def lr_at(s: int) -> float:
        """The rate of the update that takes step s to s + 1: warm-up, constant, cool-down to 0."""
        cooldown = (settings.steps - s) / settings.cooldown_steps if settings.cooldown_steps else 1.0
        return settings.learning_rate * min(1.0, (s + 1) / max(1, settings.warmup_steps), cooldown)

    def save(s: int) -> None:
        rng_states = [None] * distributed.world_size()
        if distributed.is_distributed():
            torch.distributed.all_gather_object(rng_states, _rng_state())
        else:
            rng_states = [_rng_state()]
        # Full (unsharded) states, gathered on every rank: a checkpoint loads with or without FSDP.
        weights = {k: v for k, v in get_model_state_dict(model, options=full).items() if k in saved_keys}
        optimizer_state = get_optimizer_state_dict(model, optimizer, options=full)
        if main:
            save_checkpoint(run_dir, s, weights, {"optimizer": optimizer_state, "step": s, "rng": rng_states},
                            kind, files, settings.keep_checkpoints)
        distributed.barrier()

    if step >= settings.steps and main:
        tqdm.write(f"{run_dir}: already trained to step {step} (asked for {settings.steps}); nothing to do")
    bar = tqdm(total=settings.steps, initial=step, disable=not (main and settings.progress), dynamic_ncols=True,
               unit="step")
    last_saved = step
    try:
        while step < settings.steps:
            model.train()
            batch = next_batch(step)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            with autocast_context(device):
                loss, metrics = compute_loss(train_model, batch)
            if not torch.isfinite(loss):
                raise OpenJukeboxError(f"training diverged at step {step + 1}: loss is {loss.item()}; "
                                       f"lower --lr or resume from the last checkpoint")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            if main and (step % settings.log_every == 0 or step == settings.steps):
                log.write(step, {"loss": loss.item(), "lr": lr_at(step - 1), **metrics})
                bar.set_postfix({k: f"{metrics.get(k, loss.item()):.3g}" for k in progress_keys})
            if evaluate is not None and step % eval_every == 0:
                if main:
                    model.eval()
                    eval_log.write(step, evaluate(model))
                distributed.barrier()
            if step % settings.save_every == 0 or step == settings.steps:
                save(step)
                last_saved = step
    finally:
        bar.close()
        log.close()
        eval_log.close()
    if last_saved != step:
        save(step)
    return step
