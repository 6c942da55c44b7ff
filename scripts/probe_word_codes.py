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


def code_histograms(vqvae, data: Path, level: int) -> tuple[np.ndarray, np.ndarray]:
    """(words, codebook_size) unit-norm histograms of the codes under each word, and the words."""
    truth = json.loads((data / "truth.json").read_text())
    rate, hop, size = vqvae.config.sample_rate, vqvae.hop_lengths[level], vqvae.config.codebook_size
    features, words = [], []
    for name, known in truth.items():
        audio = load_audio(data / name, sample_rate=rate, mono=True)
        with torch.no_grad():
            codes = vqvae.encode(torch.from_numpy(audio)[None])[level][0].numpy()
        for word, start in zip(known["words"], known["starts"]):
            counts = np.bincount(codes[int(start * rate / hop): int((start + WORD_SECONDS) * rate / hop)],
                                 minlength=size).astype(np.float64)
            features.append(counts / np.linalg.norm(counts))
            words.append(word)
    return np.array(features), np.array(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vqvae", required=True)
    parser.add_argument("--fit", required=True, help="songs whose words give the centroids")
    parser.add_argument("--test", required=True, help="songs whose words are classified")
    args = parser.parse_args()
    vqvae, _ = load_vqvae(args.vqvae)
    vqvae.eval()
    report = {}
    for level in range(vqvae.config.levels):
        fit, fit_words = code_histograms(vqvae, Path(args.fit), level)
        test, test_words = code_histograms(vqvae, Path(args.test), level)
        vocabulary = np.unique(fit_words)
        centroids = np.stack([fit[fit_words == w].mean(0) for w in vocabulary])
        predicted = vocabulary[np.argmax(test @ centroids.T, axis=1)]
        report[f"level {level}"] = round(float((predicted == test_words).mean()), 3)
    report["chance"] = round(1 / len(vocabulary), 3)
    report["words tested"] = len(test_words)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
