"""When compiling the decode step pays for itself on this machine: the compile="auto" threshold.

For each level of a bundle (default: the embedded model) it samples one window with compile=True (the first call
traces and compiles), then windows eager and compiled alternately, and prints the compile time, ms per token of
each, and after how many steps the compilation has paid for itself.

    OMP_NUM_THREADS=2 python benchmarks/compile_payoff.py [--model BUNDLE]
"""

import argparse
import time
from collections.abc import Callable

import torch

from openjukebox.bundle import load_bundle
from openjukebox.models import resolve_model
from openjukebox.sample.ancestral import sample_window


def one_window(bundle, level: int) -> tuple[Callable[..., torch.Tensor], int]:
    """(draw, n): draw(compile=...) samples one whole window of the level's prior at batch 1, n tokens, unlabelled;
    `draw_window` is the function it calls (sample_window, or its undecorated form)."""
    prior = bundle.prior(level)
    labels = bundle.labels(None, None, 180 * bundle.vqvae.config.sample_rate, 1)
    upper = torch.zeros(1, prior.config.n_ctx // 4 + 1, dtype=torch.long) if level < 2 else None
    empty, n = torch.empty(1, 0, dtype=torch.long), prior.config.n_ctx

    def draw(compile: bool = False, draw_window: Callable[..., torch.Tensor] = sample_window) -> torch.Tensor:
        return draw_window(prior, n, empty, labels, upper, seed=0, compile=compile)

    return draw, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    bundle = load_bundle(resolve_model(args.model))
    print("| level | compile | eager ms/token | compiled ms/token | compiling pays after |\n|---|---|---|---|---|")
    for level in (2, 1, 0):
        draw, n = one_window(bundle, level)

        def seconds(compile: bool) -> float:
            start = time.perf_counter()
            draw(compile)
            return time.perf_counter() - start

        first = seconds(True)
        eager = min(seconds(False), seconds(False)) / n
        compiled = min(seconds(True), seconds(True)) / n
        compile = first - compiled * n
        print(f"| {level} | {compile:.1f} s | {eager * 1000:.3f} | {compiled * 1000:.3f} | "
              f"{compile / (eager - compiled):,.0f} steps |", flush=True)


if __name__ == "__main__":
    main()
