"""How close a lyrics model's alignment is to the truth, on songs whose word timing is known
(scripts/make_sung_songs.py): `openjukebox align`'s word start times against the true ones, beside the linear
baseline (a word starts at its character's fraction of the song).

    python scripts/measure_alignment.py --model BUNDLE --data data/sung/heldout --out runs/alignment
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from openjukebox.bundle import load_bundle
from openjukebox.sample.pipeline import align_audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    truth = json.loads((data / "truth.json").read_text())
    with open(data / "metadata.csv", newline="") as f:
        rows = {row["path"]: row for row in csv.DictReader(f)}
    bundle = load_bundle(args.model)
    errors, baseline = [], []
    for name, known in truth.items():
        row = rows[name]
        align_audio(bundle, data / name, row["lyrics"], out / Path(name).stem, row["artist"], [row["genre"]])
        words = json.loads((out / Path(name).stem / "lyrics.json").read_text())
        assert [w["word"] for w in words["words"]] == known["words"]
        predicted = np.array([w["start"] for w in words["words"]])
        true = np.array(known["starts"])
        chars = np.array([w["character"] for w in words["words"]])
        linear = chars / len(words["lyrics"]) * known["seconds"]
        errors.append(np.abs(predicted - true))
        baseline.append(np.abs(linear - true))
    errors, baseline = np.concatenate(errors), np.concatenate(baseline)
    report = {"songs": len(truth), "words": int(errors.size)}
    for label, e in (("model", errors), ("linear_baseline", baseline)):
        report[label] = {"mean_abs_error_s": round(float(e.mean()), 3), "median_abs_error_s": round(float(np.median(e)), 3),
                         "within_0.25s": round(float((e <= 0.25).mean()), 3),
                         "within_0.5s": round(float((e <= 0.5).mean()), 3)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
