"""The random draws of sampling as a pure function of (seed, sample, position, code): counter-based noise.

A token is drawn as argmax(p / E) over the codes, with E a standard exponential per code: the exponential race,
which picks code i with probability p_i (it is how torch.multinomial draws one sample). Here E comes from a hash
of the seed, the sample's index in the request, the token's position in the song and the code, not from a
generator's state. So the draws of a token do not depend on how the samples are batched or split across GPUs,
how the song is cut into windows, whether the run was resumed, or whether the step was compiled or captured as a
CUDA graph (which cannot advance a host-side generator).

The hash is lowbias32 (Chris Wellons' hash-prospector), computed on 32-bit values held in int64 tensors with the
multiplications split into 16-bit halves, so that no product leaves int64's range: the same bits on every device
and backend, eager or compiled. It works on Python ints too.
"""

from __future__ import annotations

import torch

_MASK = 0xFFFFFFFF


def _mul32(x, c: int):
    """(x · c) mod 2³² for 0 ≤ x < 2³², without any intermediate reaching 2⁶³."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK


def mix32(x):
    """lowbias32: a bijection of 32-bit values whose every output bit depends on every input bit."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def sample_keys(seed: int, sample_ids: torch.Tensor) -> torch.Tensor:
    """One 32-bit key (batch,) int64 per sample of a request: its index in the request (sample_ids, (batch,) int64)
    mixed with the seed (any Python int)."""
    seed_key = mix32(mix32((seed >> 32) & _MASK) ^ (seed & _MASK))
    return mix32(mix32(sample_ids & _MASK) ^ seed_key)


def code_keys(codes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """One 32-bit key (codes,) int64 per code of the vocabulary."""
    return mix32(torch.arange(codes, device=device) ^ 0x9E3779B9)


def exponential_noise(keys: torch.Tensor, positions: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Standard exponential draws (batch, P, codes) float32 for the tokens at `positions` ((P,) int64, their
    indices in the song's codes) of each sample (keys from sample_keys), one per code (codes: code_keys)."""
    rows = mix32(keys[:, None] ^ _mul32(positions & _MASK, 0x9E3779B1)[None, :])  # (batch, P)
    bits = mix32(rows[:, :, None] ^ codes) >> 8  # 24 random bits
    uniform = (bits.float() + 0.5) * 2.0 ** -24  # in (0, 1), never 0 or 1: E is finite and positive
    return -torch.log(uniform)


def draw(probs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Codes (batch,) drawn from probs (batch, codes) with exponential noise of the same shape."""
    return (probs / noise).argmax(dim=-1)
