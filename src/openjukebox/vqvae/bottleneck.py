"""Vector quantisation with an EMA-updated codebook and random restarts (paper section 3.1 and B.1).

The codebook is a buffer, not a parameter: it moves only by the exponential moving average of the encoder
outputs assigned to each code, as in the released model. Under torchrun every rank sums its counts and sums
with the others and takes restart candidates from rank 0, so the codebook stays identical on all ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import distributed


@dataclass
class QuantiseResult:
    quantised: torch.Tensor  # (batch, emb_width, tokens), straight-through: gradients flow to the encoder
    codes: torch.Tensor  # (batch, tokens) int64
    commit_loss: torch.Tensor  # scalar, mean squared distance of encoder outputs to their codes
    usage: torch.Tensor  # fraction of codes used by this batch
    perplexity: torch.Tensor  # exp(entropy) of this batch's code distribution
    dead_codes: torch.Tensor  # codes restarted by this update (0 when not updating)


class Codebook(nn.Module):
    def __init__(self, codebook_size: int, emb_width: int, ema_decay: float, restart_threshold: float) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.emb_width = emb_width
        self.ema_decay = ema_decay
        self.restart_threshold = restart_threshold
        self.register_buffer("codebook", torch.zeros(codebook_size, emb_width))
        self.register_buffer("ema_sum", torch.zeros(codebook_size, emb_width))
        self.register_buffer("ema_count", torch.zeros(codebook_size))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of x (N, D): argmin |x|² − 2x·kᵀ + |k|²."""
        k = self.codebook
        distance = (x * x).sum(1, keepdim=True) - 2 * x @ k.T + (k * k).sum(1)[None]
        return distance.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, tokens) codes → (batch, emb_width, tokens) vectors."""
        return self.codebook[codes].transpose(1, 2)

    @torch.no_grad()
    def _random_rows(self, x: torch.Tensor) -> torch.Tensor:
        """K rows drawn from x on rank 0 (with a little noise when x has fewer rows than K), same on all ranks."""
        n = x.shape[0]
        if n < self.codebook_size:
            repeats = -(-self.codebook_size // n)
            std = 0.01 / self.emb_width**0.5
            x = x.repeat(repeats, 1) + torch.randn(n * repeats, x.shape[1], device=x.device) * std
        rows = x[torch.randperm(x.shape[0], device=x.device)[: self.codebook_size]].contiguous()
        return distributed.broadcast(rows, src=0)

    @torch.no_grad()
    def initialise(self, x: torch.Tensor) -> None:
        rows = self._random_rows(x)
        self.codebook.copy_(rows)
        self.ema_sum.copy_(rows)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """One EMA step from encoder outputs x (N, D) and their codes (N,); returns the number of restarts.

        count ← γ·count + (1−γ)·n_k, sum ← γ·sum + (1−γ)·Σ x assigned to k, code = sum / count; a code whose
        count falls below the threshold is replaced by a random encoder output and its state reset (sum = that
        vector, count = 1).
        """
        onehot = torch.zeros(x.shape[0], self.codebook_size, device=x.device, dtype=x.dtype)
        onehot.scatter_(1, codes[:, None], 1.0)
        counts = distributed.all_reduce_sum(onehot.sum(0))
        sums = distributed.all_reduce_sum(onehot.T @ x)
        candidates = self._random_rows(x)
        g = self.ema_decay
        self.ema_count.mul_(g).add_(counts, alpha=1 - g)
        self.ema_sum.mul_(g).add_(sums, alpha=1 - g)
        alive = (self.ema_count >= self.restart_threshold)[:, None].to(x.dtype)
        self.ema_sum.copy_(alive * self.ema_sum + (1 - alive) * candidates)
        self.ema_count.copy_(alive[:, 0] * self.ema_count + (1 - alive[:, 0]))
        self.codebook.copy_(self.ema_sum / self.ema_count[:, None])
        return (1 - alive).sum()

    def forward(self, z: torch.Tensor, update: bool) -> QuantiseResult:
        """Quantise encoder output z (batch, emb_width, tokens); `update` runs the EMA/restart step."""
        with torch.autocast(device_type=z.device.type, enabled=False):  # distances need fp32, not bf16
            return self._quantise(z, update)

    def _quantise(self, z: torch.Tensor, update: bool) -> QuantiseResult:
        b, d, t = z.shape
        x = z.transpose(1, 2).reshape(-1, d).float()
        if update and not bool(self.initialised):
            self.initialise(x.detach())
        codes = self.nearest(x.detach())
        dead = torch.zeros((), device=z.device)
        if update:
            dead = self.ema_update(x.detach(), codes)
        vectors = self.codebook[codes]
        commit = ((x - vectors) ** 2).mean()
        quantised = x + (vectors - x).detach()
        with torch.no_grad():
            counts = torch.bincount(codes, minlength=self.codebook_size).float()
            probs = counts / counts.sum()
            perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
            usage = (counts > 0).float().mean()
        return QuantiseResult(
            quantised=quantised.reshape(b, t, d).transpose(1, 2).to(z.dtype),
            codes=codes.reshape(b, t),
            commit_loss=commit,
            usage=usage,
            perplexity=perplexity,
            dead_codes=dead,
        )
