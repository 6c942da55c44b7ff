"""Spectrograms of several clips stacked in one PNG, to compare generated music with real music by eye.

    python scripts/plot_spectrograms.py --out docs/embedded-model-spectrograms.png --seconds 10 \
        "sample 0=runs/embedded/samples/sample-0-level0.wav" "training: knolls.ogg at 60 s=data/embedded/train/knolls.ogg@60"

Each clip is TITLE=PATH, or TITLE=PATH@SECONDS to start later in the file. Needs matplotlib (`pip install -e ".[plot]"`).
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from openjukebox.audio import load_audio  # noqa: E402
from openjukebox.vqvae.config import STFTSetting  # noqa: E402
from openjukebox.vqvae.losses import magnitude_spectrogram  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", help="TITLE=PATH or TITLE=PATH@SECONDS")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rate, setting = args.sample_rate, STFTSetting(1024, 256, 1024)
    fig, axes = plt.subplots(len(args.clips), 1, figsize=(10, 2.2 * len(args.clips)), sharex=True, squeeze=False)
    for ax, clip in zip(axes[:, 0], args.clips):
        title, _, source = clip.partition("=")
        path, _, offset = source.partition("@")
        start = int(float(offset or 0) * rate)
        audio = load_audio(path, sample_rate=rate, mono=True)[:, start:start + int(args.seconds * rate)]
        spec = magnitude_spectrogram(torch.from_numpy(audio)[None], setting)[0]
        db = 20 * torch.log10(spec.clamp_min(1e-5))
        ax.imshow(db.numpy(), origin="lower", aspect="auto", vmin=-80, vmax=float(db.max()), cmap="magma",
                  extent=(0, audio.shape[-1] / rate, 0, rate / 2000))
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
