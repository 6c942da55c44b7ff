"""How far a prior's samples drift from its training codes: the codes they over-draw, and how often, by quarter.

    python scripts/code_drift.py --codes CACHE SAMPLES [--level 2] [--top 30] [--windows 20]

SAMPLES is a `sample` output folder (its levelL.npz). The TOP codes whose share in the samples most exceeds their
share in the codes cache (CACHE, the prior's training codes) are picked, and their share printed: in the cache, in
three draws of WINDOWS random windows of the cache as long as the samples (what real music of that length gives),
and in each quarter of the samples. A prior that drew as the music goes would keep it near the cache's. The set is
picked on the samples themselves, so compare other samples with `--against` a folder that picked it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from openjukebox.errors import OpenJukeboxError
from openjukebox.sample.pipeline import level_path, load_level_codes
from openjukebox.vqvae.code_cache import load_code_cache


def shares(codes: np.ndarray, chosen: np.ndarray) -> float:
    return float(np.isin(codes, chosen).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", help="a sample output folder")
    parser.add_argument("--codes", required=True, help="the prior's training codes cache")
    parser.add_argument("--level", type=int, default=2)
    parser.add_argument("--top", type=int, default=30, help="how many over-drawn codes to follow")
    parser.add_argument("--windows", type=int, default=20, help="random windows of the cache per draw")
    parser.add_argument("--against", help="pick the codes on this sample folder instead")
    args = parser.parse_args()
    try:
        cache = load_code_cache(args.codes).codes
        drawn = load_level_codes(level_path(Path(args.samples), args.level))
        picker = drawn if args.against is None else load_level_codes(
            level_path(Path(args.against), args.level))
    except OpenJukeboxError as e:
        sys.exit(f"error: {e}")
    if drawn is None or picker is None:
        sys.exit(f"error: no level-{args.level} codes in {args.samples if drawn is None else args.against}")
    drawn, picker = drawn.numpy(), picker.numpy()
    clips = [cache.codes(i, args.level) for i in range(len(cache.clips))]
    music = np.concatenate(clips)
    bins = cache.codebook_size
    music_share = np.bincount(music, minlength=bins) / music.size
    picked_share = np.bincount(picker.ravel(), minlength=bins) / picker.size
    chosen = np.argsort(-(picked_share + 1e-4) / (music_share + 1e-4))[: args.top]
    length = drawn.shape[1]
    long_enough = [c for c in clips if len(c) > length]
    if not long_enough:
        sys.exit(f"error: no clip of {args.codes} is as long as the samples ({length} codes)")
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(3):
        picks = rng.integers(len(long_enough), size=args.windows)
        windows = [long_enough[i][s:s + length] for i in picks
                   for s in [rng.integers(len(long_enough[i]) - length + 1)]]
        draws.append(shares(np.stack(windows), chosen))
    quarter = length // 4
    print(f"the {args.top} codes most over-drawn: {' '.join(map(str, sorted(chosen)))}")
    print(f"their share in the training codes: {100 * shares(music, chosen):.1f} %")
    print(f"in {args.windows} random windows of the training codes, three draws: "
          + ", ".join(f"{100 * d:.1f}" for d in draws) + " %")
    print("in the samples, by quarter: " + ", ".join(
        f"{100 * shares(drawn[:, q * quarter:(q + 1) * quarter], chosen):.0f}" for q in range(4)) + " %")


if __name__ == "__main__":
    main()
