"""Spectrograms of a music excerpt and its reconstruction from each VQ-VAE level, side by side, as a PNG.

    python scripts/plot_reconstruction.py --model runs/small-wesnoth --audio data/wesnoth/heldout/frantic.ogg \
        --offset 60 --duration 6 --out docs/vqvae-spectrograms.png

Needs matplotlib (`pip install -e ".[plot]"`).
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from openjukebox.audio import load_audio  # noqa: E402
from openjukebox.vqvae.config import STFTSetting  # noqa: E402
from openjukebox.vqvae.loading import load_vqvae  # noqa: E402
from openjukebox.vqvae.losses import magnitude_spectrogram, spectral_convergence_db  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--offset", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    model, step = load_vqvae(args.model)
    rate = model.config.sample_rate
    audio = load_audio(args.audio, sample_rate=rate, mono=True)
    start = int(args.offset * rate)
    clip = torch.from_numpy(audio[:, start:start + int(args.duration * rate)])[None]
    setting = STFTSetting(1024, 256, 1024)
    panels = [("original", clip)]
    for level in range(model.config.levels):
        codes = model.encode(clip, levels=[level])[0]
        recon = model.decode(codes, level)[..., : clip.shape[-1]]
        sc = spectral_convergence_db(clip, recon, model.config.metric_stft).item()
        panels.append((f"level {level} (hop {model.hop_lengths[level]}), SC {sc:.1f} dB", recon))
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.4 * len(panels)), sharex=True)
    for ax, (title, x) in zip(axes, panels):
        spec = magnitude_spectrogram(x, setting)[0]
        db = 20 * torch.log10(spec.clamp_min(1e-5))
        ax.imshow(db.numpy(), origin="lower", aspect="auto", vmin=-80, vmax=float(db.max()), cmap="magma",
                  extent=(0, x.shape[-1] / rate, 0, rate / 2000))
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("kHz")
    axes[-1].set_xlabel("seconds")
    fig.suptitle(f"{args.audio} from {args.offset:.0f}s, model {args.model} (step {step})", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
