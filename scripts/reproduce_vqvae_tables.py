"""The paper's VQ-VAE ablations (section 5.4: Tables 1-3, Figure 4) at small scale, on freely licensed real music.

    python scripts/train_embedded.py --stage data      # the music, laid out as the embedded model's recipe does
    python scripts/reproduce_vqvae_tables.py --work runs/tables [--steps 1000] [--out docs/paper-tables.md]

Every variant is the `small` preset with one file of configs/ablations laid over it (the baseline: none), trained
on DATA/train and measured on DATA/heldout: spectral convergence per level, the paper's measure, pooled over the
held-out windows. Each variant is a resumable training run, and its measures are kept in WORK/VARIANT/eval.json, so
the script can be stopped and run again, in several sittings. It writes the tables beside the paper's numbers, the
orderings the paper reports with whether they hold here, and the Figure 4 grid of mel spectrograms (needs
matplotlib: `pip install -e ".[plot]"`).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from openjukebox.data.dataset import AudioFolder
from openjukebox.fileio import atomic_write_text
from openjukebox.music_measures import mel_filterbank
from openjukebox.vqvae.evaluation import evaluate_vqvae
from openjukebox.vqvae.loading import load_vqvae
from openjukebox.vqvae.training import train_vqvae

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = ROOT / "configs" / "ablations"
VARIANTS = {  # name → config file (None: the baseline, the small preset: 512 codes, restarts, spectral loss)
    "baseline": None, "no-restarts": "no-restarts", "codebook-256": "codebook-256",
    "codebook-2048": "codebook-2048", "no-quantisation": "no-quantisation", "no-spectral-loss": "no-spectral-loss",
    "single-autoencoder": "single-autoencoder",
}
PAPER = {  # spectral convergence (dB) as printed in the paper
    "table1": {"without restart": (-21.1, -12.4, -8.3), "with restart": (-23.0, -12.4, -8.3)},
    "table2": {"256": -15.9, "2048": -23.0, "no quantisation": -40.5},
    "table3": {"none (full model)": -8.3, "without spectral loss": -6.3, "with single autoencoder": 2.9},
}


def train_and_measure(name: str, data: Path, work: Path, steps: int, windows: int) -> list[float]:
    """Spectral convergence (dB) per level of one variant, training it first (or resuming) if needed."""
    run, result = work / name, work / name / "eval.json"
    if result.is_file() and json.loads(result.read_text())["steps"] == steps:
        return json.loads(result.read_text())["sc_db"]
    config = None if VARIANTS[name] is None else ABLATIONS / f"{VARIANTS[name]}.toml"
    train_vqvae(data / "train", run, "small", steps=steps, batch_size=8, save_every=250, config=config,
                audio_cache=work / "audio-cache")  # the music is decoded once for all variants
    model, _ = load_vqvae(run)
    heldout = AudioFolder(data / "heldout", model.config.sample_rate, work / "audio-cache", None)
    report = evaluate_vqvae(model, heldout, windows_per_file=windows)
    sc = [entry["spectral_convergence_db"] for entry in report["levels"]]
    atomic_write_text(result, json.dumps({"steps": steps, "sc_db": sc, "report": report}, indent=2) + "\n")
    return sc


def holds(values: list[float]) -> str:
    """✓ when the values rise strictly (lower spectral convergence is better), else ✗."""
    return "✓" if all(a < b for a, b in zip(values, values[1:])) else "✗"


def figure4(data: Path, work: Path, out: Path, seconds: float = 3.0) -> None:
    """Rows: ground truth, the full model, without spectral loss, a single autoencoder; columns: levels 0, 1, 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {"ground truth": None, "VQ-VAE (baseline)": "baseline", "without spectral loss": "no-spectral-loss",
            "single autoencoder": "single-autoencoder"}
    models = {name: load_vqvae(work / name)[0] for name in rows.values() if name}
    rate = next(iter(models.values())).config.sample_rate
    folder = AudioFolder(data / "heldout", rate, work / "audio-cache", None)
    length = round(seconds * rate) // 128 * 128
    audio = torch.from_numpy(np.asarray(folder.crop(0, folder.files[0].length // 2, length)).mean(0)[None, None])
    mel = torch.tensor(mel_filterbank(rate, 2048, 80), dtype=torch.float32)
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 2.2 * len(rows)), sharex=True, sharey=True)
    for r, (title, name) in enumerate(rows.items()):
        with torch.no_grad():
            recons = [audio] * 3 if name is None else models[name].eval()(audio).reconstructions
        for level in range(3):
            spec = torch.stft(recons[level].reshape(1, -1), 2048, 256, window=torch.hann_window(2048),
                              return_complex=True).abs()[0] ** 2
            db = 10 * torch.log10(mel @ spec + 1e-10)
            axes[r, level].imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma",
                                  vmin=float(db.max()) - 80, vmax=float(db.max()))
            axes[r, level].set_title(f"{title}, level {level}" if name else f"{title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def write_tables(sc: dict[str, list[float]], steps: int, out: Path, figure: Path | None) -> None:
    f = lambda v: "—" if v is None or math.isnan(v) else f"{v:.1f}"  # noqa: E731
    base, lines = sc["baseline"], []
    lines += ["# The paper's VQ-VAE tables, reproduced at small scale", "",
              f"Written by `python scripts/reproduce_vqvae_tables.py --steps {steps}`: every variant is the `small` "
              f"preset (22.05 kHz, 512 codes, width 32) with one file of `configs/ablations/` over it, trained "
              f"{steps} steps at batch 8 on the embedded model's training music and measured on its held-out "
              "pieces. The paper's models are far larger (44.1 kHz, 2048 codes, batch 32, hundreds of thousands of "
              "steps), so the numbers differ; the orderings are what can be compared.", "",
              "## Table 1: hop length and restarts", "",
              "| level | hop | without restart | with restart | paper: without | paper: with |",
              "|---|---:|---:|---:|---:|---:|"]
    for level, hop in enumerate((8, 32, 128)):
        lines.append(f"| {('bottom', 'middle', 'top')[level]} | {hop} | {f(sc['no-restarts'][level])} | "
                     f"{f(base[level])} | {PAPER['table1']['without restart'][level]} | "
                     f"{PAPER['table1']['with restart'][level]} |")
    lines += ["", f"- Hop 8 < 32 < 128 (with restarts): {holds(base)}",
              f"- Restarts better or equal at the bottom level: {'✓' if base[0] <= sc['no-restarts'][0] else '✗'}",
              "", "## Table 2: codebook size (bottom level)", "", "| codebook | here | paper |", "|---|---:|---:|",
              f"| 256 | {f(sc['codebook-256'][0])} | {PAPER['table2']['256']} |",
              f"| 512 (baseline) | {f(base[0])} | — |",
              f"| 2048 | {f(sc['codebook-2048'][0])} | {PAPER['table2']['2048']} |",
              f"| no quantisation | {f(sc['no-quantisation'][0])} | {PAPER['table2']['no quantisation']} |", "",
              f"- No quantisation < 2048 < 256: "
              f"{holds([sc['no-quantisation'][0], sc['codebook-2048'][0], sc['codebook-256'][0]])}",
              "", "## Table 3: the top level", "", "| ablation | here | paper |", "|---|---:|---:|",
              f"| none (the baseline) | {f(base[2])} | {PAPER['table3']['none (full model)']} |",
              f"| without spectral loss | {f(sc['no-spectral-loss'][2])} | "
              f"{PAPER['table3']['without spectral loss']} |",
              f"| with a single autoencoder | {f(sc['single-autoencoder'][2])} | "
              f"{PAPER['table3']['with single autoencoder']} |", "",
              f"- Full < without spectral loss < single autoencoder: "
              f"{holds([base[2], sc['no-spectral-loss'][2], sc['single-autoencoder'][2]])}", "",
              "## Every variant, every level (spectral convergence, dB)", "",
              "| variant | level 0 | level 1 | level 2 |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | " + " | ".join(f(v) for v in values) + " |" for name, values in sc.items()]
    if figure is not None:
        lines += ["", "## Figure 4", "", f"![mel spectrograms per level and variant]({figure.name})", "",
                  "Rows: a held-out clip, the baseline, without spectral loss, a single autoencoder; columns: levels "
                  "0, 1 and 2 (hop 8, 32, 128)."]
    atomic_write_text(out, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/embedded"))
    parser.add_argument("--work", type=Path, default=Path("runs/tables"))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--windows", type=int, default=20, help="held-out windows per file")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "paper-tables.md")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="train and measure only these now (the tables need all of them)")
    args = parser.parse_args()
    sc = {name: train_and_measure(name, args.data, args.work, args.steps, args.windows) for name in args.variants}
    if set(sc) != set(VARIANTS):
        print(json.dumps(sc, indent=2))
        return
    figure = args.out.with_name("paper-figure4.png")
    figure4(args.data, args.work, figure)
    write_tables({name: sc[name] for name in VARIANTS}, args.steps, args.out, figure)
    print(f"wrote {args.out} and {figure}")


if __name__ == "__main__":
    main()
