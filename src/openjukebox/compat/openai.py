"""Converting the released OpenAI Jukebox state dicts to openjukebox's module layout.

Names are facts of the released checkpoints (the original code's module names): the VQ-VAE's
`encoders.{l}.level_blocks.{i}.model...`, `decoders.{l}.level_blocks.{i}.model...`, `decoders.{l}.out` and the
codebook buffers `bottleneck.level_blocks.{l}.k`. Residual blocks are `model.{d}.model.{1,3}` (the two convs
between ReLUs). The EMA state is not in the released state dict; it starts from the codebook.

Priors: the transformer is `prior.transformer._attn_mods.{d}`, the lyrics encoder `prime_prior` (+
`prime_state_proj`, `prime_state_ln`, `prime_x_out`), labels and timing `y_emb`, the upsampler conditioner
`conditioner_blocks.0` (residual blocks under `...blocks.{d}.model.{1,3}`). The transformer's `Conv1D` layers
store `w` as (in, out): they become `nn.Linear` weights by a transpose, which is a view, so converting copies
nothing; released fp16 weights (5b, 5b_lyrics) keep their fp16-rounded values.
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


_PRIOR_RULES = [
    (re.compile(r"^prior\.pos_emb\.pos_emb$"), "pos_emb"),
    (re.compile(r"^prior\.transformer\._attn_mods\."), "transformer.blocks."),
    (re.compile(r"^prior\."), ""),
    (re.compile(r"^prime_prior\.pos_emb\.pos_emb$"), "lyrics_encoder.pos_emb"),
    (re.compile(r"^prime_prior\.transformer\._attn_mods\."), "lyrics_encoder.transformer.blocks."),
    (re.compile(r"^prime_prior\."), "lyrics_encoder."),
    (re.compile(r"^prime_state_proj\."), "lyrics_encoder.proj."),
    (re.compile(r"^prime_state_ln\."), "lyrics_encoder.ln."),
    (re.compile(r"^prime_x_out\."), "lyrics_encoder.x_out."),
    (re.compile(r"^y_emb\.artist_emb\.emb\."), "labels.artist_emb."),
    (re.compile(r"^y_emb\.bow_genre_emb\.emb\."), "labels.genre_emb."),
    (re.compile(r"^y_emb\.(total_length_emb|absolute_pos_emb|relative_pos_emb)\."), r"timing.\1."),
    (re.compile(r"^conditioner_blocks\.0\.cond\.model\.0\."), "conditioner.layers.0."),
    # `blocks.{d}` when trained with cond_c_res=1 (the released upsamplers), `model.{d}` otherwise
    (re.compile(r"^conditioner_blocks\.0\.cond\.model\.(\d+)\.0\.(?:blocks|model)\.(\d+)\.model\.1\."),
     lambda m: f"conditioner.layers.{2 * int(m.group(1)) - 1}.{m.group(2)}.conv."),
    (re.compile(r"^conditioner_blocks\.0\.cond\.model\.(\d+)\.0\.(?:blocks|model)\.(\d+)\.model\.3\."),
     lambda m: f"conditioner.layers.{2 * int(m.group(1)) - 1}.{m.group(2)}.proj."),
    (re.compile(r"^conditioner_blocks\.0\.cond\.model\.(\d+)\.1\."),
     lambda m: f"conditioner.layers.{2 * int(m.group(1))}."),
    (re.compile(r"^conditioner_blocks\.0\.(x_emb|ln)\."), r"conditioner.\1."),
]
_CONV1D = re.compile(r"\.(w|b)$")


def convert_prior_state_dict(released: dict[str, torch.Tensor], tied_output: bool) -> dict[str, torch.Tensor]:
    """A released prior's state dict under openjukebox's names. With `tied_output` (not merged_decoder) the
    output layer is the code embedding, so the original's duplicate `x_out.weight` is dropped."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in released.items():
        name = name.removeprefix("module.")
        if tied_output and name == "prior.x_out.weight":
            continue
        new = name
        for pattern, replacement in _PRIOR_RULES:
            new, found = pattern.subn(replacement, new)
            if found:
                break
        else:
            raise CheckpointError(f"released prior: unexpected weight '{name}'")
        conv1d = _CONV1D.search(new) if new.startswith(("transformer.", "lyrics_encoder.")) else None
        if conv1d:
            new = new[: conv1d.start()] + (".weight" if conv1d.group(1) == "w" else ".bias")
            tensor = tensor.t() if conv1d.group(1) == "w" else tensor
        out[new] = tensor
    return out


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
