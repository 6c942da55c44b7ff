"""How close a lyrics model's alignment is to the truth, on songs whose word timing is known
(scripts/make_sung_songs.py): `openjukebox align`'s word start times against the true ones, beside the linear
baseline (a word starts at its character's fraction of the song).

    python scripts/measure_alignment.py --model BUNDLE --data data/sung/heldout --out runs/alignment \
        [--layer L --head H | --scan] [--line-timing]

With --line-timing the model is told when each line starts (a line-level LRC, as lyrics sites give) and places the
words within the lines; the baseline then spreads each line's words at a steady pace up to the next line.

Choose a head with --scan on one set of songs (data/sung/validation), then measure it on another (heldout).
The report is printed and written to OUT/report.json. Besides all words, it scores apart the words among the first
and last half lyrics window of characters (`ends`), where the window stops moving with the song (it is held within
the lyrics), and the rest (`middle`); short songs have many such words, long ones few. --existing scores the
alignments already in OUT again instead of aligning.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from openjukebox.bundle import load_bundle
from openjukebox.lyrics.text import sung_position
from openjukebox.sample.pipeline import align_audio


def summary(e: np.ndarray) -> dict:
    return {"mean_abs_error_s": round(float(e.mean()), 3), "median_abs_error_s": round(float(np.median(e)), 3),
            "within_0.25s": round(float((e <= 0.25).mean()), 3), "within_0.5s": round(float((e <= 0.5).mean()), 3)}


def line_timing(lyrics: str, words: list[str], starts: list[float]) -> tuple[tuple[float, int], ...]:
    """(seconds, character) anchors of each line's start, from the true word starts."""
    anchors, word, position = [], 0, 0
    for line in lyrics.split("\n"):
        anchors.append((starts[word], position))
        word += len(line.split())
        position += len(line) + 1
    return tuple(anchors)


def steady_pace_starts(characters: np.ndarray, n_chars: int, seconds: float,
                       timing: tuple[tuple[float, int], ...]) -> np.ndarray:
    """When a steady pace between the anchors (the windows' own rule, `sung_position`) moves on from each
    character's start: the last moment the position has not passed it, so a line held until its stamp starts there."""
    rate = 1000
    grid = np.arange(int(seconds * rate) + 1)
    samples = [(round(at * rate), index) for at, index in timing]
    position = np.array([sung_position(samples, t, len(grid) - 1, n_chars) for t in grid])
    return (np.searchsorted(position, characters, side="right") - 1) / rate


def word_errors(bundle, data: Path, out: Path, layer: int | None, head: int | None,
                lines_timed: bool = False, align: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|predicted - true| word start times of every song in data, for the model and for the baseline, and whether
    each word lies within half a lyrics window of the lyrics' start or end."""
    half_window = bundle.priors[2].config.n_tokens // 2
    truth = json.loads((data / "truth.json").read_text())
    with open(data / "metadata.csv", newline="") as f:
        rows = {row["path"]: row for row in csv.DictReader(f)}
    errors, baseline, at_ends = [], [], []
    for name, known in truth.items():
        row = rows[name]
        timing = line_timing(row["lyrics"], known["words"], known["starts"]) if lines_timed else ()
        if align:
            align_audio(bundle, data / name, row["lyrics"], out / Path(name).stem, row["artist"], [row["genre"]],
                        layer=layer, head=head, lyrics_timing=timing)
        words = json.loads((out / Path(name).stem / "lyrics.json").read_text())
        assert [w["word"] for w in words["words"]] == known["words"]
        predicted = np.array([w["start"] for w in words["words"]])
        true = np.array(known["starts"])
        chars = np.array([w["character"] for w in words["words"]])
        if lines_timed:
            linear = steady_pace_starts(chars, len(words["lyrics"]), known["seconds"], timing)
        else:
            linear = chars / len(words["lyrics"]) * known["seconds"]
        errors.append(np.abs(predicted - true))
        baseline.append(np.abs(linear - true))
        at_ends.append((chars < half_window) | (chars >= len(words["lyrics"]) - half_window))
    return np.concatenate(errors), np.concatenate(baseline), np.concatenate(at_ends)


def summary_by_place(e: np.ndarray, at_ends: np.ndarray) -> dict:
    parts = {"all": summary(e), "middle": summary(e[~at_ends]) | {"words": int((~at_ends).sum())}}
    return parts | ({"ends": summary(e[at_ends]) | {"words": int(at_ends.sum())}} if at_ends.any() else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--layer", type=int, default=None, help="attention layer to read (default: the model's)")
    parser.add_argument("--head", type=int, default=None, help="attention head to read (default: the model's)")
    parser.add_argument("--scan", action="store_true", help="every layer and head that reads the lyrics, in turn")
    parser.add_argument("--line-timing", action="store_true", help="tell the model when each line starts")
    parser.add_argument("--existing", action="store_true", help="score the alignments already in OUT")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    bundle = load_bundle(args.model)
    config = bundle.priors[2].config
    if args.scan:
        heads = [(layer, head) for layer in config.lyrics_layers() for head in range(config.transformer.heads)]
    else:
        heads = [(args.layer, args.head)]
    report = {}
    for layer, head in heads:
        errors, baseline, at_ends = word_errors(bundle, data, out / f"layer{layer}-head{head}", layer, head,
                                                args.line_timing, align=not args.existing)
        report[f"layer {layer} head {head}"] = summary_by_place(errors, at_ends)
    baseline_name = "steady_pace_between_lines_baseline" if args.line_timing else "linear_baseline"
    report[baseline_name] = summary_by_place(baseline, at_ends)
    report["songs"], report["words"] = len(json.loads((data / "truth.json").read_text())), int(baseline.size)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
