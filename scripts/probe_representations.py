"""A linear probe of `embed` features against an MFCC baseline: which soundtrack a piece of music comes from, with
the pieces held out (docs/representations.md).

    python scripts/probe_representations.py --data data/embedded [--model BUNDLE] [--clips 6] [--seconds 10]

The data is the embedded model's corpus as scripts/train_embedded.py lays it out (DATA/train and DATA/heldout, file
names prefixed by their Debian package, which is the class). Each track gives up to --clips evenly spaced clips.
Features per clip: the top prior's layers (`Jukebox.embed`, mean-pooled), the same prior with random weights (does
training matter, or only the architecture?), and MFCCs (20 coefficients, mean and standard deviation over frames).
A multinomial logistic regression on standardised features is trained and tested in 5 folds split by track, so a
piece is never in both; the table gives clip accuracy and balanced accuracy (the mean of the per-class recalls).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from openjukebox.audio import load_audio
from openjukebox.bundle import load_bundle
from openjukebox.jukebox import Jukebox
from openjukebox.models import resolve_model
from openjukebox.music_measures import mel_filterbank
from openjukebox.prior.model import Prior

SAMPLE_RATE = 22050
FOLDS = 5
PACKAGES = ("wesnoth-1.16-music", "colobot-common-sounds", "drascula-music", "asc-music", "frozen-bubble-data")


def package_of(track: Path) -> str:
    for package in PACKAGES:
        if track.name.startswith(package + "-"):
            return package
    raise SystemExit(f"{track}: not named after one of the packages {', '.join(PACKAGES)}")


def clips_of(path: Path, count: int, seconds: float) -> list[np.ndarray]:
    """Up to `count` non-overlapping clips spread evenly over the track (mono, SAMPLE_RATE)."""
    audio = load_audio(path, SAMPLE_RATE, mono=True)
    size = round(seconds * SAMPLE_RATE)
    n = min(count, audio.shape[1] // size)
    starts = np.linspace(0, audio.shape[1] - size, n).astype(int) if n > 1 else [0] * n
    return [audio[:, s:s + size] for s in starts]


def mfcc_features(clip: np.ndarray, n_mfcc: int = 20, n_mels: int = 40) -> np.ndarray:
    """Mean and standard deviation over frames of MFCCs (2048-sample Hann frames, hop 512, HTK mel scale)."""
    x = clip[0].astype(np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(x, 2048)[::512] * np.hanning(2048)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    log_mel = np.log(power @ mel_filterbank(SAMPLE_RATE, 2048, n_mels).T + 1e-10)
    k = np.arange(n_mels)
    dct = np.cos(np.pi / n_mels * (k[None] + 0.5) * np.arange(n_mfcc)[:, None])
    coefficients = log_mel @ dct.T
    return np.concatenate([coefficients.mean(0), coefficients.std(0)]).astype(np.float32)


def probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, weight_decay: float = 1e-2) -> dict:
    """Accuracy and balanced accuracy of a logistic regression over FOLDS folds split by group (track)."""
    order = np.random.default_rng(0).permutation(np.unique(groups))
    fold_of = {g: i % FOLDS for i, g in enumerate(order)}
    folds = np.array([fold_of[g] for g in groups])
    classes = np.unique(labels)
    y = np.searchsorted(classes, labels)
    predicted = np.empty_like(y)
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        mean, std = features[train].mean(0), features[train].std(0) + 1e-6
        x_train = torch.tensor((features[train] - mean) / std, dtype=torch.float64)
        x_test = torch.tensor((features[test] - mean) / std, dtype=torch.float64)
        w = torch.zeros(features.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
        b = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
        optimiser = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")
        target = torch.tensor(y[train])

        def loss():
            optimiser.zero_grad()
            value = torch.nn.functional.cross_entropy(x_train @ w + b, target) + weight_decay * (w ** 2).sum()
            value.backward()
            return value

        optimiser.step(loss)
        predicted[test] = (x_test @ w + b).argmax(1).numpy()
    recalls = [np.mean(predicted[y == c] == c) for c in range(len(classes))]
    return {"accuracy": float(np.mean(predicted == y)), "balanced_accuracy": float(np.mean(recalls))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/embedded"))
    parser.add_argument("--model", default=None, help="bundle (default: the embedded model)")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--layers", type=int, nargs="+", help="the top prior's layers to probe (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    bundle = load_bundle(resolve_model(args.model))
    if bundle.vqvae.config.sample_rate != SAMPLE_RATE:
        raise SystemExit(f"this probe reads audio at {SAMPLE_RATE} Hz; the model runs at "
                         f"{bundle.vqvae.config.sample_rate}")
    trained = Jukebox(bundle)
    torch.manual_seed(0)
    random_bundle = load_bundle(resolve_model(args.model))
    random_bundle.priors[2] = Prior(random_bundle.priors[2].config).eval()
    untrained = Jukebox(random_bundle)
    layers = args.layers or list(range(1, bundle.priors[2].config.transformer.depth + 1))

    tracks = sorted(p for split in ("train", "heldout") for p in (args.data / split).iterdir()
                    if p.suffix.lower() in (".ogg", ".mp3", ".wav", ".flac"))
    rows: dict[str, list[np.ndarray]] = {"mfcc": [], "random prior": [],
                                         **{f"layer {layer}": [] for layer in layers}}
    labels, groups = [], []
    for track in tracks:
        package = package_of(track)
        for clip in clips_of(track, args.clips, args.seconds):
            rows["mfcc"].append(mfcc_features(clip))
            rows["random prior"].append(untrained.embed(clip))
            for layer in layers:
                rows[f"layer {layer}"].append(trained.embed(clip, layer))
            labels.append(package)
            groups.append(track.name)
        print(f"{track.name}: {labels.count(package)} clips of {package} so far", flush=True)
    labels, groups = np.array(labels), np.array(groups)
    counts = {c: int((labels == c).sum()) for c in np.unique(labels)}
    report = {"clips": counts, "tracks": len(tracks), "chance (the largest class)": max(counts.values()) / len(labels),
              "probes": {name: {"dims": int(np.stack(f).shape[1]), **probe(np.stack(f), labels, groups)}
                         for name, f in rows.items()}}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
