"""How much of which word is sung a VQ-VAE's codes keep: classify each sung word of songs with known timing
(scripts/make_sung_songs.py) from the histogram of the codes over its first 0.6 s, by the nearest word centroid
(cosine) learned on another set of songs. Chance is 1 in the number of words (5 % for 20 words).

    python scripts/probe_word_codes.py --vqvae VQVAE_DIR --fit data/sung/validation --test data/sung/heldout
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from openjukebox.audio import load_audio
from openjukebox.vqvae.loading import load_vqvae

WORD_SECONDS = 0.6  # one beat at 100 BPM, the length of every sung note


def code_histograms(vqvae, data: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Per level, the (words, codebook_size) unit-norm histograms of the codes under each word; and the words.
    Each song is encoded once, for all levels."""
    truth = json.loads((data / "truth.json").read_text())
    rate, size = vqvae.config.sample_rate, vqvae.config.codebook_size
    features, words = [[] for _ in vqvae.hop_lengths], []
    for name, known in truth.items():
        audio = load_audio(data / name, sample_rate=rate, mono=True)
        with torch.no_grad():
            codes = [c[0].numpy() for c in vqvae.encode(torch.from_numpy(audio)[None])]
        for word, start in zip(known["words"], known["starts"]):
            words.append(word)
            for level, hop in enumerate(vqvae.hop_lengths):
                under = codes[level][int(start * rate / hop): int((start + WORD_SECONDS) * rate / hop)]
                counts = np.bincount(under, minlength=size).astype(np.float64)
                features[level].append(counts / np.linalg.norm(counts))
    return [np.array(f) for f in features], np.array(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vqvae", required=True)
    parser.add_argument("--fit", required=True, help="songs whose words give the centroids")
    parser.add_argument("--test", required=True, help="songs whose words are classified")
    args = parser.parse_args()
    vqvae, _ = load_vqvae(args.vqvae)
    vqvae.eval()
    fit_levels, fit_words = code_histograms(vqvae, Path(args.fit))
    test_levels, test_words = code_histograms(vqvae, Path(args.test))
    vocabulary = np.unique(fit_words)
    report = {}
    for level, (fit, test) in enumerate(zip(fit_levels, test_levels)):
        centroids = np.stack([fit[fit_words == w].mean(0) for w in vocabulary])
        predicted = vocabulary[np.argmax(test @ centroids.T, axis=1)]
        report[f"level {level}"] = round(float((predicted == test_words).mean()), 3)
    report["chance"] = round(1 / len(vocabulary), 3)
    report["words tested"] = len(test_words)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
