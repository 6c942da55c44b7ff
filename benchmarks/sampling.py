"""Tokens per second of sampling each level's prior, with the KV cache vs recomputing the whole prefix per token
(the reference), and peak memory. Random weights of a preset's sizes; each case in a fresh process.

    python benchmarks/sampling.py --preset small --tokens 256 --batch 1
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(preset: str, level: int, tokens: int, batch: int, cached: bool) -> dict:
    import torch

    from openjukebox.prior.config import prior_preset
    from openjukebox.prior.model import Prior
    from openjukebox.sample.ancestral import sample_window
    from openjukebox.sample.decode import filter_logits
    from openjukebox.vqvae.config import preset as vqvae_preset

    torch.manual_seed(0)
    vq = vqvae_preset(preset)
    prior = Prior(prior_preset(preset, level, vq.codebook_size, vq.hop_lengths[level], vq.sample_rate, 1, 1)).eval()
    n = min(tokens, prior.config.n_ctx)
    from openjukebox.prior.conditioning import Labels

    labels = Labels(torch.zeros(batch, dtype=torch.long), torch.zeros(batch, 1, dtype=torch.long),
                    torch.full((batch,), 10 * vq.sample_rate), torch.zeros(batch, dtype=torch.long))
    upper = torch.randint(0, vq.codebook_size, (batch, n // 4 + 1)) if level < 2 else None
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    with torch.inference_mode():
        if cached:
            sample_window(prior, n, torch.empty(batch, 0, dtype=torch.long), labels, upper, seed=0, compile=False)
        else:
            codes = torch.empty(batch, 0, dtype=torch.long)
            for _ in range(n):
                # Teacher-forced logits of the prefix plus one placeholder; the last position predicts the next code.
                logits = prior(torch.cat([codes, codes.new_zeros(batch, 1)], 1), labels, upper)[:, -1]
                nxt = torch.multinomial(torch.softmax(filter_logits(logits), -1), 1, generator=generator)
                codes = torch.cat([codes, nxt], 1)
    seconds = time.perf_counter() - start
    return {"preset": preset, "level": level, "tokens": n, "batch": batch, "kv_cache": cached,
            "tokens_per_second": round(n * batch / seconds, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        p, level, tokens, batch, cached = args.child
        print(json.dumps(measure(p, int(level), int(tokens), int(batch), cached == "1")))
        return
    for level in (2, 1, 0):
        rows = {}
        for cached in (False, True):
            out = subprocess.run([sys.executable, __file__, "--child", args.preset, str(level), str(args.tokens),
                                  str(args.batch), "1" if cached else "0"], capture_output=True, text=True, check=True)
            rows[cached] = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(rows[cached]), flush=True)
        print(f"level {level}: KV cache {rows[True]['tokens_per_second'] / rows[False]['tokens_per_second']:.1f}x "
              f"the tokens/s of recomputing the prefix")


if __name__ == "__main__":
    main()
