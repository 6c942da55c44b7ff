"""Where does a model lose the music's harmony: its VQ-VAE, or its upsamplers? Real music's own top-level codes are
upsampled at each temperature asked, beside the same clips decoded straight from their own codes at every level.

    python scripts/upsample_real_codes.py data/embedded/heldout/wesnoth*.ogg --out runs/real-codes \\
        [--model BUNDLE] [--seconds 10] [--temperatures 1 0.7 0.4] [--seed 1]
    python scripts/measure_music.py 'real=runs/real-codes/real/*.wav' \\
        'upsampled at 0.7=runs/real-codes/t0.7/*-level0.wav' ...

Each file gives two clips, centred at a third and two thirds of it. OUT/real holds the clips, OUT/recon{0,1,2} their
VQ-VAE reconstructions from each level's codes, and OUT/t{T} a sampling run (resumable, `openjukebox upsample`
finishes it) whose top level is the clips' codes and whose levels 1 and 0 the upsamplers drew at temperature T.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from openjukebox import Jukebox
from openjukebox.audio import load_audio, save_audio
from openjukebox.sample.pipeline import level_path, save_level_codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=None, help="a bundle (default: the embedded model)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.7, 0.4])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    jukebox = Jukebox.load(args.model, device="cpu")
    vq, rate = jukebox.bundle.vqvae, jukebox.bundle.vqvae.config.sample_rate
    size = round(args.seconds * rate)
    clips = []
    for path in args.files:
        audio = load_audio(path, sample_rate=rate, mono=True)[0]
        if len(audio) < 2 * size:
            raise SystemExit(f"{path}: shorter than two clips of {args.seconds} s")
        clips += [audio[int(f * len(audio)) - size // 2:][:size] for f in (1 / 3, 2 / 3)]
    batch = torch.from_numpy(np.stack(clips))[:, None]
    with torch.no_grad():
        codes = vq.encode(batch)
    for level, level_codes in enumerate(codes):
        for i, clip in enumerate(jukebox.decode(level_codes, level)):
            save_audio(args.out / f"recon{level}" / f"{i}.wav", clip[None, :size], rate)
    for i, clip in enumerate(clips):
        save_audio(args.out / "real" / f"{i}.wav", clip[None], rate)
    top_tokens = -(-size // vq.hop_lengths[2])
    for temperature in args.temperatures:
        run = args.out / f"t{temperature:g}"
        if not level_path(run, 2).is_file():
            run.mkdir(parents=True, exist_ok=True)
            save_level_codes(level_path(run, 2), codes[2][:, :top_tokens], top_tokens)
        jukebox.sample(run, duration=args.seconds, n=len(clips), seed=args.seed,
                       upsampling_temperature=temperature, progress=False)
        print(f"wrote {run}")


if __name__ == "__main__":
    main()
