"""Converting the released OpenAI Jukebox state dicts to openjukebox's module layout.

Names are facts of the released checkpoints (released-architecture.md): the VQ-VAE's
`encoders.{l}.level_blocks.{i}.model...`, `decoders.{l}.level_blocks.{i}.model...`, `decoders.{l}.out` and the
codebook buffers `bottleneck.level_blocks.{l}.k`. Residual blocks are `model.{d}.model.{1,3}` (the two convs
between ReLUs). The EMA state is not in the released state dict; it starts from the codebook.
"""

from __future__ import annotations

import re

import torch

from ..errors import CheckpointError

_RULES = [
    (re.compile(r"^encoders\.(\d+)\.level_blocks\.(\d+)\.model\."), r"encoders.\1.\2."),
    (re.compile(r"^decoders\.(\d+)\.level_blocks\.(\d+)\.model\."), r"decoders.\1.blocks.\2."),
    (re.compile(r"\.model\.(\d+)\.model\.1\."), r".\1.conv."),
    (re.compile(r"\.model\.(\d+)\.model\.3\."), r".\1.proj."),
]
_CODEBOOK = re.compile(r"^bottleneck\.level_blocks\.(\d+)\.k$")


def convert_vqvae_state_dict(released: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The released VQ-VAE's state dict under openjukebox's names, with EMA state initialised from the codebooks."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in released.items():
        codebook = _CODEBOOK.match(name)
        if codebook:
            level = codebook.group(1)
            k = tensor.float()
            out[f"codebooks.{level}.codebook"] = k
            out[f"codebooks.{level}.ema_sum"] = k.clone()
            out[f"codebooks.{level}.ema_count"] = torch.ones(k.shape[0])
            out[f"codebooks.{level}.initialised"] = torch.tensor(True)
            continue
        if not name.startswith(("encoders.", "decoders.")):
            raise CheckpointError(f"released VQ-VAE: unexpected weight '{name}'")
        new = name
        for pattern, replacement in _RULES:
            new = pattern.sub(replacement, new)
        out[new] = tensor.float()
    return out
