"""Encoder and decoder stacks of one VQ-VAE level (layer order as in the released checkpoints).

Tensors are channels-first: audio (batch, 1, samples), latents (batch, emb_width, tokens).
"""

from __future__ import annotations

import torch
from torch import nn

from ..resnet1d import ResNet1D


class EncoderBlock(nn.Sequential):
    """`downs` × [Conv1d(k4, s2) → ResNet1D], then Conv1d(width → emb_width, k3): downsamples by 2**downs."""

    def __init__(self, in_channels: int, emb_width: int, width: int, depth: int, downs: int, growth: int,
                 cycle: int | None) -> None:
        layers: list[nn.Module] = []
        for i in range(downs):
            layers.append(nn.Sequential(
                nn.Conv1d(in_channels if i == 0 else width, width, kernel_size=4, stride=2, padding=1),
                ResNet1D(width, depth, growth, cycle),
            ))
        layers.append(nn.Conv1d(width, emb_width, kernel_size=3, padding=1))
        super().__init__(*layers)


class DecoderBlock(nn.Sequential):
    """Conv1d(emb_width → width, k3), then `downs` × [ResNet1D → ConvTranspose1d(k4, s2)]; the last one
    outputs emb_width channels (as released), so blocks can be chained."""

    def __init__(self, emb_width: int, width: int, depth: int, downs: int, growth: int, cycle: int | None,
                 reverse_dilation: bool) -> None:
        layers: list[nn.Module] = [nn.Conv1d(emb_width, width, kernel_size=3, padding=1)]
        for i in range(downs):
            out = emb_width if i == downs - 1 else width
            layers.append(nn.Sequential(
                ResNet1D(width, depth, growth, cycle, reverse=reverse_dilation),
                nn.ConvTranspose1d(width, out, kernel_size=4, stride=2, padding=1),
            ))
        super().__init__(*layers)


class Encoder(nn.Sequential):
    """Level l's encoder: blocks 0..l applied to raw audio, each a further downsampling."""

    def __init__(self, level: int, downs: tuple[int, ...], emb_width: int, width: int, depth: int, growth: int,
                 cycle: int | None) -> None:
        super().__init__(*(
            EncoderBlock(1 if i == 0 else emb_width, emb_width, width, depth, downs[i], growth, cycle)
            for i in range(level + 1)
        ))


class Decoder(nn.Module):
    """Level l's decoder: blocks l..0 (reverse order), then Conv1d(emb_width → 1, k3). No output squashing."""

    def __init__(self, level: int, downs: tuple[int, ...], emb_width: int, width: int, depth: int, growth: int,
                 cycle: int | None, reverse_dilation: bool) -> None:
        super().__init__()
        # Stored in index order (block i undoes encoder block i), run from the top down.
        self.blocks = nn.ModuleList(
            DecoderBlock(emb_width, width, depth, downs[i], growth, cycle, reverse_dilation) for i in range(level + 1)
        )
        self.out = nn.Conv1d(emb_width, 1, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for block in reversed(self.blocks):
            z = block(z)
        return self.out(z)
