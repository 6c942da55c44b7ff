"""Reproduce the embedded model from scratch: data, VQ-VAE, code caches, three priors, fp16 bundle, metrics.

Every stage is resumable: re-running the script skips what is finished and continues a training run from its
last checkpoint, so it survives being stopped. On a 2-core CPU the whole recipe takes about 2 hours.

    python scripts/train_embedded.py --work runs/embedded            # everything
    python scripts/train_embedded.py --work runs/embedded --install  # then copy the bundle into the package

Data: Debian's wesnoth-1.16-music (GPL-2+, see /usr/share/doc/wesnoth-1.16-music/copyright), installed with apt
if missing. Each track's composer (its OGG `artist` tag) is the artist label and its `genre` tag the genre.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
from pathlib import Path

import soundfile
import torch

from openjukebox.bundle import MANIFEST, assemble_bundle, prior_location
from openjukebox.prior.loading import load_prior
from openjukebox.vqvae.code_cache import CODES, build_code_cache
from openjukebox.data.dataset import AudioFolder
from openjukebox.fileio import atomic_write_text
from openjukebox.prior.evaluation import evaluate_prior, load_evaluation_codes
from openjukebox.prior.training import train_prior
from openjukebox.vqvae.evaluation import evaluate_vqvae
from openjukebox.vqvae.loading import load_vqvae
from openjukebox.vqvae.training import train_vqvae

MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
HELDOUT = ("frantic", "traveling_minstrels")  # two composers' pieces never seen by any model
VQVAE_TRACKS = ("battle", "knolls", "wanderer", "heroes_rite", "the_deep_path", "northerners")  # docs/vqvae-results.md
SKIP = ("silence",)  # ten seconds of nothing
PRIOR_STEPS = {2: 6000, 1: 3000, 0: 3000}
# A clip samples as the start of a song this long unless asked otherwise: the training tracks last minutes, and
# the only ones under 19 s (the shortest timing bin) are victory and defeat jingles that end in silence.
SONG_SECONDS = 180.0
PACKAGE_MODEL = Path(__file__).resolve().parents[1] / "src" / "openjukebox" / "embedded"


def prepare_data(data: Path) -> None:
    """Links the tracks into DATA/{train,heldout,vqvae} and writes each split's metadata.csv from the OGG tags."""
    if not MUSIC.is_dir():
        subprocess.run(["apt-get", "install", "-y", "-qq", "wesnoth-1.16-music"], check=True)
    tracks = sorted(p for p in MUSIC.glob("*.ogg") if p.stem not in SKIP)
    splits = {"heldout": [t for t in tracks if t.stem in HELDOUT],
              "train": [t for t in tracks if t.stem not in HELDOUT],
              "vqvae": [t for t in tracks if t.stem in VQVAE_TRACKS]}
    for split, members in splits.items():
        folder = data / split
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for track in members:
            link = folder / track.name
            if not link.exists():
                link.symlink_to(track)
            tags = soundfile.SoundFile(track).copy_metadata()
            rows.append({"path": track.name, "artist": tags.get("artist", ""), "genre": tags.get("genre", "").lower(),
                         "lyrics": ""})
        with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["path", "artist", "genre", "lyrics"])
            writer.writeheader()
            writer.writerows(rows)
        print(f"{folder}: {len(rows)} tracks")


def write_model_licence(bundle: Path, data: Path) -> None:
    """The weights are trained on GPL-2+ music, so they are offered under the same licence, crediting its composers."""
    with open(data / "train" / "metadata.csv", newline="", encoding="utf-8") as f:
        composers = sorted({row["artist"] for row in csv.DictReader(f) if row["artist"]})
    (bundle / "LICENSE.md").write_text(
        "# The embedded model's licence\n\n"
        "These weights were trained on tracks of The Battle for Wesnoth's soundtrack (Debian package "
        "wesnoth-1.16-music), licensed under the GNU General Public License, version 2 or later. The weights are "
        "offered under the same licence, GPL-2.0-or-later. The openjukebox code that uses them is MIT.\n\n"
        "Music by: " + ", ".join(composers) + ".\n\n"
        "How the model was made, and how well it does: docs/embedded-model.md in the openjukebox repository.\n")


def build_caches(work: Path, data: Path) -> None:
    for split in ("train", "heldout"):
        out = work / f"codes-{split}"
        if not (out / CODES).is_file():
            build_code_cache(work / "vqvae", data / split, out, data / split / "metadata.csv")
            shutil.rmtree(out / "audio-cache", ignore_errors=True)  # decoded audio, only needed while encoding


def evaluate(work: Path, data: Path, bundle: Path) -> dict:
    """Held-out metrics of the model card: VQ-VAE reconstruction per level, each prior against the unigram."""
    vqvae, _ = load_vqvae(bundle / "vqvae")
    heldout = AudioFolder(data / "heldout", vqvae.config.sample_rate, work / "eval-audio-cache", None)
    report = {"vqvae": evaluate_vqvae(vqvae, heldout, windows_per_file=40), "priors": {}}
    for level in range(3):
        path, vocab = prior_location(bundle, level)
        prior = load_prior(path)
        report["priors"][level] = {split: evaluate_prior(prior, load_evaluation_codes(work / f"codes-{split}", prior,
                                                                                      vocab), windows=64)
                                   for split in ("heldout", "train")}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/embedded"))
    parser.add_argument("--data", type=Path, default=Path("data/embedded"))
    parser.add_argument("--install", action="store_true", help=f"copy the bundle to {PACKAGE_MODEL}")
    args = parser.parse_args()

    prepare_data(args.data)
    train_vqvae(args.data / "vqvae", args.work / "vqvae", "small", steps=2000, batch_size=8, save_every=250,
                eval_every=500, eval_data=args.data / "heldout")
    build_caches(args.work, args.data)
    for level, steps in PRIOR_STEPS.items():
        train_prior(args.work / "codes-train", level, args.work / f"prior{level}", "small", steps=steps,
                    batch_size=16, lr=1e-3, save_every=500)
    bundle = args.work / "bundle"
    if not (bundle / MANIFEST).is_file():
        shutil.rmtree(bundle, ignore_errors=True)  # an interrupted write
        assemble_bundle(args.work / "vqvae", {level: args.work / f"prior{level}" for level in range(3)}, bundle,
                        dtype=torch.float16)
    manifest = json.loads((bundle / MANIFEST).read_text())
    atomic_write_text(bundle / MANIFEST, json.dumps({**manifest, "song_seconds": SONG_SECONDS}, indent=2) + "\n")
    write_model_licence(bundle, args.data)
    metrics = args.work / "metrics.json"
    if not metrics.is_file():
        atomic_write_text(metrics, json.dumps(evaluate(args.work, args.data, bundle), indent=2) + "\n")
    print(f"bundle: {bundle}; held-out metrics: {metrics}")
    if args.install:
        shutil.rmtree(PACKAGE_MODEL, ignore_errors=True)
        shutil.copytree(bundle, PACKAGE_MODEL)
        print(f"installed into {PACKAGE_MODEL}")


if __name__ == "__main__":
    main()
