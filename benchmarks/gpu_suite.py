"""Sampling speed and memory at the released sizes, random weights: one prepared script for a lent GPU.

    python benchmarks/gpu_suite.py --out gpu.json                   # H100/H200: about 8 minutes, bf16
    python benchmarks/gpu_suite.py --sizes tiny --device cpu        # the same steps at tiny sizes (tests run this)

For the 5b top prior and a 1b upsampler (levels 1 and 0 share its structure) it measures, at each batch size: ms
per token of the eager step, of the captured CUDA graph and of torch.compile (inductor, reduce-overhead), each
with its set-up time (capture or compilation); the prefill of half a window; peak device memory; and the
memory-bandwidth floor, the bytes a step must read (weights, and the KV cache it attends to) over the bandwidth
measured here by a device copy. Then the VQ-VAE decoding a minute of level-0 codes, and the peak memory of the
5b_lyrics prior sampling at batch 1. From these: minutes of compute per minute of music through all three levels
at batch 1, beside the floor. Prints a Markdown table and writes every figure to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from openjukebox.compat.released import RELEASED, prior_config, vqvae_config
from openjukebox.prior.attention import COLUMN
from openjukebox.prior.conditioning import Labels
from openjukebox.prior.model import Prior, PriorConfig
from openjukebox.sample import decode
from openjukebox.sample.decode import DecodeState, Decoder, Filters
from openjukebox.vqvae.model import VQVAE

PRIORS = {"top": "prior_5b", "upsampler": "upsampler_level_1", "lyrics": "prior_5b_lyrics"}
_SMALL = dict(n_ctx=256, prior_width=64, prior_depth=6, blocks=16)
TINY = {"prior_5b": _SMALL, "upsampler_level_1": dict(_SMALL, cond_width=32, cond_depth=2),
        # 19 layers: the first encoder-decoder layer of attention order 10 is layer 18
        "prior_5b_lyrics": dict(_SMALL, prior_depth=19, n_tokens=32, prime_width=32, prime_depth=2, prime_blocks=4,
                                alignment_layer=18, alignment_head=0)}


def configs(sizes: str) -> dict[str, PriorConfig]:
    """The released 5b top prior, level-1 upsampler and 5b_lyrics prior, or tiny ones of the same structure."""
    vq = vqvae_config(RELEASED["vqvae"])
    return {key: prior_config({**RELEASED[name], **(TINY[name] if sizes == "tiny" else {})}, vq)
            for key, name in PRIORS.items()}


def now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # the process's peak RSS on CPU


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def bandwidth_gbs(device: torch.device, megabytes: int) -> float:
    """Device memory bandwidth, GB/s, from copying a buffer (read + write)."""
    a = torch.empty(megabytes * 2**20 // 4, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    start = now(device)
    for _ in range(5):
        b.copy_(a)
    seconds = (now(device) - start) / 5
    return 2 * a.numel() * 4 / seconds / 1e9


def build(config: PriorConfig, device: torch.device, dtype: torch.dtype) -> Prior:
    """Random weights made in `dtype` on the device: no float32 copy of 5 billion parameters on the way."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            prior = Prior(config)
    finally:
        torch.set_default_dtype(default)
    return prior.to(dtype).eval()


def inputs(prior: Prior, batch: int, device: torch.device):
    config = prior.config
    labels = Labels(torch.zeros(batch, dtype=torch.long, device=device),
                    torch.zeros(batch, config.max_genres, dtype=torch.long, device=device),
                    torch.full((batch,), 180 * config.sample_rate, device=device),
                    torch.zeros(batch, dtype=torch.long, device=device),
                    torch.ones(batch, config.n_tokens, dtype=torch.long, device=device) if config.n_tokens else None)
    upper = torch.randint(0, config.upper_bins, (batch, config.n_ctx // 4), device=device) \
        if config.upper_bins else None
    return labels, upper


def step_bytes(prior: Prior, batch: int) -> int:
    """What one step must read (prior: built on the meta device): the transformer's and output layer's weights,
    and the keys/values it attends to (whole caches of row and previous-row layers, one column of a column
    layer's; dense layers read everything)."""
    weights = sum(p.numel() * p.element_size() for p in prior.transformer.parameters())
    weights += prior.x_out.weight.numel() * prior.x_out.weight.element_size()
    config = prior.config.transformer
    cache = 0
    for block, kv in zip(prior.transformer.blocks, DecodeState.allocate(prior, batch).caches):
        size = kv.keys.numel() * kv.keys.element_size() * 2
        cache += size // config.block_len if getattr(block.attn, "pattern", None) == COLUMN else size
    return weights + cache


def time_mode(prior: Prior, batch: int, mode: str, tokens: int, device: torch.device) -> dict:
    """Set-up seconds (first call: capture or compile, plus 2 tokens) and steady ms per token of one mode."""
    default, decode.CUDA_COMPILED_STEP = decode.CUDA_COMPILED_STEP, mode
    try:
        decoder = Decoder(prior, batch, Filters(), compile=mode != "eager")
    finally:
        decode.CUDA_COMPILED_STEP = default
    labels, upper = inputs(prior, batch, device)
    n = prior.config.n_ctx
    with torch.no_grad():
        first, last = decoder.load_window(torch.empty(batch, 0, dtype=torch.long, device=device), n, labels, upper, 0)
        start = now(device)
        decoder.run(first, first + 2)
        setup = now(device) - start
        start = now(device)
        decoder.run(first + 2, first + 2 + tokens)
        ms = (now(device) - start) / tokens * 1000
    return {"mode": decoder.mode, "setup_s": round(setup, 2), "ms_per_token": round(ms, 3)}


def prefill_seconds(prior: Prior, device: torch.device) -> float:
    """Feeding half a window (the overlap each later window starts from) in one pass, batch 1."""
    decoder = Decoder(prior, 1, Filters(), compile=False)
    labels, upper = inputs(prior, 1, device)
    half = torch.zeros(1, prior.config.n_ctx // 2, dtype=torch.long, device=device)
    with torch.no_grad():
        decoder.load_window(half, prior.config.n_ctx, labels, upper, 0)
        start = now(device)
        decoder.load_window(half, prior.config.n_ctx, labels, upper, 0)
        return now(device) - start


def guarded(measure, **label) -> dict:
    """A measurement, or what stopped it: device time is scarce, so one failure must not lose the other figures."""
    try:
        return measure()
    except Exception as e:  # noqa: BLE001 -- reported in the results, never hidden
        line = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        return {**label, "error": f"{type(e).__name__}: {line}"}


def measure_prior(name: str, config: PriorConfig, args, device: torch.device, dtype: torch.dtype) -> dict:
    start = now(device)
    prior = build(config, device, dtype)
    row = {"prior": name, "parameters": sum(p.numel() for p in prior.parameters()),
           "build_s": round(now(device) - start, 1), "batches": {}}
    reset_peak(device)
    modes = ["eager", "cuda-graph", "inductor"] if device.type == "cuda" else ["eager", "inductor"]
    for batch in args.batch:
        row["batches"][batch] = [guarded(lambda: time_mode(prior, batch, mode, args.tokens, device), mode=mode)
                                 for mode in modes if mode != "inductor" or batch in args.inductor_batch]
        row["batches"][batch][0]["floor_ms"] = round(step_bytes(build(config, torch.device("meta"), dtype), batch)
                                                     / (args.bandwidth * 1e9) * 1000, 3)
    row["prefill_half_window_s"] = guarded(lambda: round(prefill_seconds(prior, device), 3))
    row["peak_gib"] = round(peak_memory_gib(device), 2)
    del prior
    return row


def vqvae_minute(args, device: torch.device) -> dict:
    """Seconds to decode `--music-seconds` of level-0 codes, scaled to a minute, and peak memory."""
    reset_peak(device)
    vq = VQVAE(vqvae_config(RELEASED["vqvae"])).to(device).eval()
    codes = torch.randint(0, 2048, (1, int(args.music_seconds * 44100) // 8), device=device)
    with torch.no_grad():
        vq.decode(codes[:, :4096], 0)
        start = now(device)
        vq.decode(codes, 0)
        seconds = now(device) - start
    return {"decode_s_per_minute": round(seconds * 60 / args.music_seconds, 2),
            "peak_gib": round(peak_memory_gib(device), 2)}


def lyrics_memory(config: PriorConfig, device: torch.device, dtype: torch.dtype, tokens: int) -> dict:
    """Peak memory of the 5b_lyrics prior at batch 1: weights, caches, a prefilled half window, then steps (on
    CPU, the process's peak RSS so far, which says little)."""
    prior = build(config, device, dtype)
    weights = sum(p.numel() * p.element_size() for p in prior.parameters()) / 2**30
    reset_peak(device)
    decoder = Decoder(prior, 1, Filters(), compile=False)
    labels, _ = inputs(prior, 1, device)
    with torch.no_grad():
        half = torch.zeros(1, config.n_ctx // 2, dtype=torch.long, device=device)
        first, _ = decoder.load_window(half, config.n_ctx, labels, None, 0)
        decoder.run(first, first + tokens)
    out = {"weights_gib": round(weights, 2), "peak_gib": round(peak_memory_gib(device), 2)}
    del prior, decoder
    return out


def minutes_per_minute(rows: dict, vqvae: dict, hop_fraction: float = 0.5) -> dict:
    """Compute minutes for one minute of music at batch 1, levels 2, 1, 0 (hops 128, 32, 8 at 44.1 kHz)."""
    total = floor = 0.0
    for level, hop in ((2, 128), (1, 32), (0, 8)):
        row = rows["top" if level == 2 else "upsampler"]
        timings = row["batches"][1]
        best = min(t["ms_per_token"] for t in timings if "ms_per_token" in t)
        tokens = 60 * 44100 / hop
        windows = tokens / (row["n_ctx"] * hop_fraction)
        total += tokens * best / 1000 + windows * row["prefill_half_window_s"]
        floor += tokens * timings[0]["floor_ms"] / 1000
    total += vqvae["decode_s_per_minute"] * 3  # each level's audio is decoded
    return {"compute_minutes": round(total / 60, 2), "floor_minutes": round(floor / 60, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", choices=["released", "tiny"], default="released")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--inductor-batch", type=int, nargs="*", default=[1],
                        help="batch sizes at which to time torch.compile too (its compilation takes minutes)")
    parser.add_argument("--tokens", type=int, default=256, help="tokens timed per measurement")
    parser.add_argument("--music-seconds", type=float, default=60.0, help="audio the VQ-VAE decodes")
    parser.add_argument("--out", default=None, help="JSON file for every figure")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "torch": torch.__version__, "sizes": args.sizes, "dtype": args.dtype,
               "threads": torch.get_num_threads()}
    args.bandwidth = results["bandwidth_gbs"] = round(bandwidth_gbs(device, 2048 if device.type == "cuda" else 64), 1)
    found = configs(args.sizes)
    results["priors"] = {}
    for key in ("top", "upsampler"):
        results["priors"][key] = guarded(lambda: {**measure_prior(key, found[key], args, device, dtype),
                                                  "n_ctx": found[key].n_ctx}, prior=key)
        print(json.dumps(results["priors"][key]), flush=True)
        save(results, args.out)
    results["vqvae"] = guarded(lambda: vqvae_minute(args, device))
    results["lyrics_5b_batch_1"] = guarded(lambda: lyrics_memory(found["lyrics"], device, dtype, 8))
    results["one_minute"] = guarded(lambda: minutes_per_minute(results["priors"], results["vqvae"]))
    print(json.dumps({k: results[k] for k in ("vqvae", "lyrics_5b_batch_1", "one_minute")}), flush=True)
    save(results, args.out)
    print(markdown(results))


def save(results: dict, path: str | None) -> None:
    """Written after every part, so that a run stopped by its time limit keeps what it measured."""
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2)


def markdown(results: dict) -> str:
    lines = [f"{results['device']}, torch {results['torch']}, {results['sizes']} sizes, {results['dtype']}, "
             f"measured bandwidth {results['bandwidth_gbs']} GB/s", "",
             "| prior | batch | mode | set-up (s) | ms/token | floor ms/token | peak GiB |",
             "|---|---|---|---|---|---|---|"]
    for key, row in results["priors"].items():
        for batch, timings in row.get("batches", {"-": [{"mode": "-", "error": row.get("error")}]}).items():
            for t in timings:
                lines.append(f"| {key} ({row.get('parameters', 0) / 1e6:,.0f} M) | {batch} | {t['mode']} | "
                             f"{t.get('setup_s', t.get('error'))} | {t.get('ms_per_token', '')} | "
                             f"{timings[0].get('floor_ms', '')} | {row.get('peak_gib', '')} |")
    vqvae, lyrics, one = (results[k] for k in ("vqvae", "lyrics_5b_batch_1", "one_minute"))
    lines += ["", f"VQ-VAE decode: {vqvae.get('decode_s_per_minute', vqvae.get('error'))} s per minute of audio; "
              f"5b_lyrics at batch 1: weights {lyrics.get('weights_gib', lyrics.get('error'))} GiB, peak "
              f"{lyrics.get('peak_gib')} GiB; one minute of music through all three levels at batch 1: "
              f"{one.get('compute_minutes', one.get('error'))} min of compute (bandwidth floor "
              f"{one.get('floor_minutes')} min)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
