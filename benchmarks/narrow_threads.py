"""Tokens per second of the embedded model's level-0 upsampler on CPU, sampled on one thread (what openjukebox does
for a prior narrower than `ONE_THREAD_BELOW_WIDTH`) against all of `--threads` (the reference: what it did before),
alternating runs, on an idle machine and with `--busy N` other processes keeping N cores busy.

    OMP_NUM_THREADS=2 python benchmarks/narrow_threads.py --threads 2 --tokens 2048 --runs 3 --busy 0
    OMP_NUM_THREADS=2 python benchmarks/narrow_threads.py --threads 2 --tokens 2048 --runs 3 --busy 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import time


def spin() -> None:
    """Keeps one core busy, as another job on a shared machine does."""
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="processes that keep a core busy meanwhile")
    args = parser.parse_args()

    import torch

    from openjukebox.bundle import load_bundle
    from openjukebox.sample import ancestral

    torch.set_num_threads(args.threads)
    bundle = load_bundle(ancestral.__file__.rsplit("/sample/", 1)[0] + "/embedded")
    prior = bundle.priors[0]
    labels = bundle.labels(None, [], 180 * bundle.vqvae.config.sample_rate, 1, 0)
    upper = torch.randint(0, prior.config.upper_bins, (1, args.tokens // 4))
    policy = ancestral.ONE_THREAD_BELOW_WIDTH
    busy = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for process in busy:
        process.start()
    rates: dict[str, list[float]] = {"one thread (openjukebox)": [], f"{args.threads} threads (before)": []}
    try:
        for _ in range(args.runs):
            for name, threshold in zip(rates, (policy, 0)):
                ancestral.ONE_THREAD_BELOW_WIDTH = threshold
                start = time.perf_counter()
                ancestral.sample_level(prior, args.tokens, labels, seed=1, upper_codes=upper, compile=False)
                rates[name].append(args.tokens / (time.perf_counter() - start))
    finally:
        ancestral.ONE_THREAD_BELOW_WIDTH = policy
        for process in busy:
            process.kill()
    print(f"embedded level 0, width {prior.config.transformer.width}, {args.tokens} tokens, --busy {args.busy}")
    for name, values in rates.items():
        print(f"{name}: {', '.join(f'{v:.0f}' for v in values)} tok/s (median {sorted(values)[len(values) // 2]:.0f})")
    one, many = (sorted(v)[len(v) // 2] for v in rates.values())
    print(f"one thread / {args.threads} threads: {one / many:.2f}x")


if __name__ == "__main__":
    main()
