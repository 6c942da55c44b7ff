"""Dilated 1-D residual stacks: the building block of the VQ-VAE's encoders and decoders and of the
upsampler priors' conditioner (which is why it sits below both)."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """x + res_scale · Conv1x1(ReLU(Conv_k3_dilated(ReLU(x)))): pre-activation, non-causal, length-preserving.
    (batch, width, T) → (batch, width, T). The upsamplers' conditioner scales the branch by 1/sqrt(depth)."""

    def __init__(self, width: int, dilation: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel_size=3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(width, width, kernel_size=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.proj(torch.relu(self.conv(torch.relu(x))))


def dilations(depth: int, growth: int, cycle: int | None, reverse: bool) -> list[int]:
    """growth**(d % cycle) for d < depth; reversed in the decoder so the widest context comes first."""
    out = [growth ** (d if cycle is None else d % cycle) for d in range(depth)]
    return out[::-1] if reverse else out


class ResNet1D(nn.Sequential):
    """`depth` residual blocks of growing dilation: (batch, width, T) → (batch, width, T)."""

    def __init__(self, width: int, depth: int, growth: int, cycle: int | None, reverse: bool = False,
                 res_scale: float = 1.0) -> None:
        super().__init__(*(ResidualBlock(width, d, res_scale) for d in dilations(depth, growth, cycle, reverse)))
