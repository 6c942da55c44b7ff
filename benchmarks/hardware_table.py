"""What hardware each released model needs, computed from its exact structure (no GPU, no weights).

    python benchmarks/hardware_table.py            # Markdown table for docs/released-models.md

Each prior is built on the meta device from the released hyperparameters, so parameter counts and the decode
state (`DecodeState.allocate`: KV caches, encoder keys/values, x_cond, as sampling allocates them) are exact.
GPU memory of a level = its prior's weights + batch × its decode state + a prefilled half window (about six
activations of the width per token, one layer at a time) + 0.5 GiB of CUDA context; only the prior in use is on
the GPU (`Bundle.prior`). The largest batch is the one whose top level (the largest) fits in 93 % of the card.
Time is a floor, not a measurement: per token, a step reads the transformer's weights and the keys/values it
attends to (`gpu_suite.step_bytes`), at the memory bandwidth of an H100 SXM (3.35 TB/s, its datasheet); a real
step is slower (kernel launches, compute), and benchmarks/gpu_suite.py measures it when a GPU is lent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_suite import step_bytes  # noqa: E402

from openjukebox.compat.released import RELEASED, TOP_PRIORS, prior_config, vqvae_config  # noqa: E402
from openjukebox.prior.model import Prior  # noqa: E402
from openjukebox.sample.decode import DecodeState  # noqa: E402

GIB = 2**30
CONTEXT_GIB = 0.5
CARDS_GB = (16, 24, 40, 80)
BANDWIDTH = 3.35e12  # bytes/s, H100 SXM datasheet
SAMPLE_RATE, HOPS = 44100, {2: 128, 1: 32, 0: 8}


def build(name: str, dtype: torch.dtype) -> Prior:
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            return Prior(prior_config(RELEASED[name], vqvae_config(RELEASED["vqvae"])))
    finally:
        torch.set_default_dtype(default)


def level_figures(name: str, dtype: torch.dtype) -> dict:
    prior = build(name, dtype)
    config = prior.config
    weights = sum(p.numel() * p.element_size() for p in prior.parameters())
    state = sum(t.numel() * t.element_size() for t in DecodeState.allocate(prior, 1).tensors())
    prefill = 6 * (config.n_ctx // 2) * config.transformer.width * torch.finfo(dtype).bits // 8
    tokens = 60 * SAMPLE_RATE / HOPS[config.level]
    return {"params": sum(p.numel() for p in prior.parameters()), "weights": weights, "state": state,
            "prefill": prefill, "floor_s_per_minute": tokens * step_bytes(prior, 1) / BANDWIDTH}


def gib_at(figures: dict, batch: int) -> float:
    return (figures["weights"] + batch * figures["state"] + batch * figures["prefill"]) / GIB + CONTEXT_GIB


def largest_batch(figures: dict, card_gb: int) -> int:
    usable = card_gb * 1e9 / GIB * 0.93
    batch = 0
    while gib_at(figures, batch + 1) <= usable and batch < 4096:
        batch += 1
    return batch


def main() -> None:
    dtype = torch.bfloat16
    upsamplers = {level: level_figures(f"upsampler_level_{level}", dtype) for level in (1, 0)}
    vq_bytes = 4 * 1_485_763  # the VQ-VAE's parameters, float32
    rows = []
    for model, top_name in TOP_PRIORS.items():
        top = level_figures(top_name, dtype)
        levels = {2: top, **upsamplers}
        disk = {bits: (sum(f["params"] for f in levels.values()) * bits // 8 + vq_bytes) / GIB for bits in (16, 32)}
        rows.append((model, levels, disk))
    print("| model | parameters (top + 2 upsamplers) | bundle on disk, bf16 / fp32 | GPU memory at batch 1: "
          "level 2 / 1 / 0 | largest batch on 16 / 24 / 40 / 80 GB | floor per minute of music: level 2 / 1 / 0 |")
    print("|---|---|---|---|---|---|")
    for model, levels, disk in rows:
        params = " + ".join(f"{levels[level]['params'] / 1e9:.2f} B" for level in (2, 1, 0))
        memory = " / ".join(f"{gib_at(levels[level], 1):.1f}" for level in (2, 1, 0))
        batches = " / ".join(str(min(largest_batch(levels[level], gb) for level in (2, 1, 0))) for gb in CARDS_GB)
        floor = " / ".join(f"{levels[level]['floor_s_per_minute'] / 60:.1f} min" for level in (2, 1, 0))
        print(f"| {model} | {params} | {disk[16]:.1f} / {disk[32]:.1f} GiB | {memory} GiB | {batches} | {floor} |")


if __name__ == "__main__":
    main()
