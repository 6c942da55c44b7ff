"""What sampling under torch.inference_mode saves over torch.no_grad, per level of a bundle (default: the embedded
model): eager windows of each level at batch 1, one thread, the two modes alternately; ms per token and the ratio.

Inference mode skips the version counters and view tracking that no_grad still keeps on every tensor, which at the
embedded model's size is a share of each of a token's ~200 small operations.

    OMP_NUM_THREADS=1 python benchmarks/grad_mode.py [--model BUNDLE] [--rounds 3]
"""

import argparse
import time

import torch

from compile_payoff import one_window
from openjukebox.bundle import load_bundle
from openjukebox.models import resolve_model
from openjukebox.sample.ancestral import sample_window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bundle = load_bundle(resolve_model(args.model))
    print("| level | no_grad ms/token | inference_mode ms/token | ratio |\n|---|---|---|---|")
    for level in (2, 1, 0):
        draw, n = one_window(bundle, level)

        def ms_per_token(mode) -> float:
            with mode():
                start = time.perf_counter()
                # Without sample_window's own grad mode, so that each is the one set here.
                draw(draw_window=sample_window.__wrapped__)
                return (time.perf_counter() - start) / n * 1e3

        ms_per_token(torch.inference_mode)  # warm-up
        times = {torch.no_grad: [], torch.inference_mode: []}
        for _ in range(args.rounds):
            for mode in times:
                times[mode].append(ms_per_token(mode))
        plain, inference = (min(t) for t in times.values())
        print(f"| {level} | {plain:.3f} | {inference:.3f} | {inference / plain:.2f} |")


if __name__ == "__main__":
    main()
