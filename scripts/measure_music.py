"""Objective music measures (openjukebox.music_measures) for groups of audio files, as a markdown table of
mean ± std per group: for a model card, to show that samples sit nearer the training music than noise does.

    python scripts/measure_music.py 'samples=runs/x/*.wav' 'training=data/embedded/train/*.ogg' --noise \\
        [--seconds 10] [--json measures.json]

Each argument is NAME=GLOB (quote it so that the shell leaves the pattern alone; ** works). Every file gives
clips of --seconds: the start of a short file, or up to 3 evenly spaced excerpts away from the ends of one at
least twice as long, so that intros and fade-outs do not stand for the whole song. Statistics are over clips.
--noise adds a reference group of white noise clips at -20 dBFS (fixed seed), as many as the largest group.
--distance-to NAME adds a column: each group's distance to group NAME (music_measures.distance: the five means'
differences, each in units of NAME's spread over its clips, summed).
--bands 66,500,2000 adds a second table: each group's mean power per frequency bin in each band (dB, the mean over
clips), from 0 Hz to the Nyquist frequency split at those edges, to see which bands move a measure.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np

from openjukebox.audio import load_audio
from openjukebox.errors import OpenJukeboxError
from openjukebox.music_measures import band_levels, distance, music_measures

SAMPLE_RATE = 22050
COLUMNS = {"spectral_flatness": ("flatness", "{:.4f}"), "spectral_centroid": ("centroid Hz", "{:.0f}"),
           "onset_rate": ("onsets/s", "{:.2f}"),
           "pitch_salience": ("pitch salience", "{:.3f}"), "rms_db": ("RMS dBFS", "{:.1f}")}


def excerpt_starts(length: int, size: int) -> list[int]:
    """Where the clips of one file start: its beginning when it is short, else up to 3 evenly spaced excerpts
    whose centres split the file into equal parts (so they never overlap and never touch the ends)."""
    count = min(3, length // size - 1)
    if count < 1:
        return [0]
    return [round((i + 1) * length / (count + 1) - size / 2) for i in range(count)]


def clip_measures(clip: np.ndarray, edges: list[float] | None) -> dict:
    """The five measures of one clip, and its band levels when `edges` are given."""
    bands = {"band_db": band_levels(clip, SAMPLE_RATE, edges)} if edges else {}
    return {**music_measures(clip, SAMPLE_RATE), **bands}


def measure_group(pattern: str, seconds: float, edges: list[float] | None = None) -> list[dict]:
    paths = sorted(glob.glob(pattern, recursive=True))
    if not paths:
        raise OpenJukeboxError(f"{pattern}: matches no files")
    size, clips = round(seconds * SAMPLE_RATE), []
    for path in paths:
        audio = load_audio(path, sample_rate=SAMPLE_RATE, mono=True)[0]
        for start in excerpt_starts(len(audio), size):
            clips.append({"file": path, "start_s": round(start / SAMPLE_RATE, 2),
                          **clip_measures(audio[start:start + size], edges)})
    return clips


def noise_group(count: int, seconds: float, edges: list[float] | None = None) -> list[dict]:
    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        noise = 0.1 * rng.standard_normal(round(seconds * SAMPLE_RATE))
        clips.append({"file": f"white noise {i}", "start_s": 0.0, **clip_measures(noise, edges)})
    return clips


def summarise(clips: list[dict]) -> dict:
    summary = {"files": len({c["file"] for c in clips}), "clips": len(clips)}
    for key in COLUMNS:
        values = np.array([c[key] for c in clips], dtype=np.float64)
        values = values[np.isfinite(values)]  # silent clips have no flatness or salience
        summary[key] = {"mean": float(values.mean()) if values.size else None,
                        "std": float(values.std()) if values.size else None}
    return summary


def _finite(clips: list[dict]) -> list[dict]:
    """NaN (a silent clip's flatness) as null, since JSON has no NaN."""
    def finite(v):
        if isinstance(v, list):
            return [finite(x) for x in v]
        return None if isinstance(v, float) and not np.isfinite(v) else v
    return [{k: finite(v) for k, v in c.items()} for c in clips]


def band_table(clips: dict[str, list[dict]], edges: list[float]) -> str:
    names = [f"{low:g}–{min(high, SAMPLE_RATE / 2):g} Hz" for low, high in zip(edges[:-1], edges[1:])]
    lines = ["| group | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name, group in clips.items():
        levels = np.array([c["band_db"] for c in group], dtype=np.float64)
        means = [np.nanmean(column) if np.isfinite(column).any() else np.nan for column in levels.T]
        lines.append(f"| {name} | " + " | ".join("n/a" if np.isnan(m) else f"{m:.1f}" for m in means) + " |")
    return "\n".join(lines)


def group_distance(summary: dict, reference: dict) -> float | None:
    """music_measures.distance between two summaries; None when a mean is missing (a group of silent clips)."""
    if any(summary[key]["mean"] is None or reference[key]["mean"] is None for key in COLUMNS):
        return None
    return distance({key: summary[key]["mean"] for key in COLUMNS}, {key: reference[key]["mean"] for key in COLUMNS},
                    {key: reference[key]["std"] for key in COLUMNS})


def markdown_table(summaries: dict[str, dict], distance_to: str | None = None) -> str:
    extra = [f"distance to {distance_to}"] if distance_to else []
    lines = ["| group | files | clips | " + " | ".join([title for title, _ in COLUMNS.values()] + extra) + " |",
             "|---|---:|---:|" + "---:|" * (len(COLUMNS) + len(extra))]
    for name, s in summaries.items():
        cells = []
        for key, (_, fmt) in COLUMNS.items():
            m = s[key]
            cells.append("n/a" if m["mean"] is None else f"{fmt.format(m['mean'])} ± {fmt.format(m['std'])}")
        if distance_to:
            d = group_distance(s, summaries[distance_to])
            cells.append("n/a" if d is None else f"{d:.2f}")
        lines.append(f"| {name} | {s['files']} | {s['clips']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="+", metavar="NAME=GLOB")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each clip (default 10)")
    parser.add_argument("--noise", action="store_true", help="add a white noise group at -20 dBFS as a reference")
    parser.add_argument("--json", type=Path, help="also write the summaries and per-clip numbers here")
    parser.add_argument("--distance-to", metavar="NAME", help="add each group's distance to group NAME (the music)")
    parser.add_argument("--bands", metavar="HZ,HZ,...", help="also a table of each group's mean power per band, "
                        "the bands split at these frequencies")
    args = parser.parse_args()
    if not args.seconds > 0:
        parser.error("--seconds must be positive")
    edges = None
    if args.bands:
        try:
            inner = [float(x) for x in args.bands.split(",")]
        except ValueError:
            parser.error(f"--bands {args.bands!r}: give frequencies in Hz separated by commas")
        if not all(a < b for a, b in zip([0.0, *inner], [*inner, SAMPLE_RATE / 2])):
            parser.error(f"--bands {args.bands!r}: frequencies must rise, above 0 and under {SAMPLE_RATE / 2:g} Hz")
        edges = [0.0, *inner, SAMPLE_RATE / 2 + 1]  # + 1: the Nyquist bin belongs to the top band
    groups = {}
    for arg in args.groups:
        name, sep, pattern = arg.partition("=")
        if not sep or not name or not pattern:
            parser.error(f"{arg!r}: each group must be NAME=GLOB")
        if name in groups:
            parser.error(f"{name!r}: the group is named twice")
        groups[name] = pattern
    if args.distance_to is not None and args.distance_to not in groups:
        parser.error(f"--distance-to {args.distance_to!r}: not one of the groups ({', '.join(groups)})")
    try:
        clips = {name: measure_group(pattern, args.seconds, edges) for name, pattern in groups.items()}
    except OpenJukeboxError as e:
        sys.exit(f"error: {e}")
    if args.noise:
        clips["white noise"] = noise_group(max(len(c) for c in clips.values()), args.seconds, edges)
    summaries = {name: summarise(c) for name, c in clips.items()}
    print(markdown_table(summaries, args.distance_to))
    if edges:
        print()
        print(band_table(clips, edges))
    if args.json:
        args.json.write_text(json.dumps({"seconds": args.seconds, "sample_rate": SAMPLE_RATE,
                                         "groups": {name: {**summaries[name], "per_clip": _finite(clips[name])}
                                                    for name in clips}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
