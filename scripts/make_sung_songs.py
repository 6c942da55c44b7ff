"""Songs sung by festival (Debian `festival` + `festvox-kallpc16k`) with known lyrics and known word timing, for
measuring lyrics alignment.

Each word of a small vocabulary is sung once at each of a few pitches (`text2wave -mode singing`); songs are
random sequences of those notes with short rests, so every word's start time is exact. `--rest` and `--breaks` make
the timing uneven (long rests, silent breaks between lines), which moves the words away from where a linear spread of
the lyrics over the song puts them. Writes WAVs (16 kHz), `metadata.csv` (path, artist, genre, lyrics: five words a
line) and `truth.json` (each song's word start times); with `--lrc`, also each song's timed lyrics beside it (NAME.lrc,
word-level), from which training takes its lyrics windows.

    apt-get install festival festvox-kallpc16k
    python scripts/make_sung_songs.py --out data/sung --songs 60 --seconds 20
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from openjukebox.sample.alignment import WordTiming, to_lrc

WORDS = ("sun", "moon", "river", "golden", "morning", "dancing", "silver", "heart", "fire", "rain", "summer",
         "shadow", "flying", "ocean", "wonder", "light", "sweet", "winter", "dream", "mountain")
# More words for --vocabulary above 20: the more words there are, the more the lyrics tell a model about the singing.
MORE_WORDS = ("love", "night", "day", "home", "road", "sky", "star", "blue", "green", "water", "wind", "fly",
              "baby", "forever", "never", "always", "hold", "tonight", "burning", "falling", "broken", "city",
              "train", "window", "garden", "yellow", "purple", "thunder", "lightning", "whisper", "shining", "lonely",
              "happy", "tender", "wild", "free", "alive", "starlight", "evening", "candle", "flower", "apple", "honey",
              "sugar", "paper", "letter", "rocket", "planet", "island", "valley", "forest", "desert", "season",
              "memory", "promise", "kingdom", "thousand", "million", "together", "believe", "remember", "dreamer",
              "singer", "hunter", "sailor", "soldier", "mother", "father", "brother", "sister", "children",
              "diamond", "crystal", "velvet", "shadows", "hollow", "echo", "rhythm", "music", "magic")
NOTES = ("C4", "E4", "G4", "A4")
RATE = 16000


def sing(word: str, note: str, folder: Path) -> np.ndarray:
    score = folder / f"{word}-{note}.xml"
    score.write_text('<?xml version="1.0"?>\n<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
                     '"Singing.v0_1.dtd" []>\n'
                     f'<SINGING BPM="100"><PITCH NOTE="{note}"><DURATION BEATS="1.0">{word}</DURATION></PITCH>'
                     '</SINGING>\n')
    wav = score.with_suffix(".wav")
    subprocess.run(["text2wave", "-mode", "singing", str(score), "-o", str(wav)], check=True, capture_output=True)
    audio, rate = sf.read(wav, dtype="float32")
    if rate != RATE:
        raise SystemExit(f"festival wrote {rate} Hz, expected {RATE}")
    return audio


def word_level_lrc(lyrics: str, starts: list[float]) -> str:
    """The lyrics as enhanced LRC, every word with its start time, in the form `sample` writes alignments."""
    words = [WordTiming(m.group(), start, m.start(), True) for m, start in zip(re.finditer(r"\S+", lyrics), starts)]
    return to_lrc(lyrics, words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--songs", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", default="",
                        help="start each file name with this; songs of other prefixes already in --out are kept")
    parser.add_argument("--rest", type=float, nargs=2, default=(0.05, 0.4), metavar=("MIN", "MAX"),
                        help="seconds of rest after each word, drawn uniformly")
    parser.add_argument("--breaks", type=float, nargs=2, default=(0.0, 0.0), metavar=("MIN", "MAX"),
                        help="seconds of silence after each line of five words, drawn uniformly")
    parser.add_argument("--vocabulary", type=int, default=len(WORDS),
                        help=f"sing this many different words (at most {len(WORDS) + len(MORE_WORDS)})")
    parser.add_argument("--lrc", action="store_true", help="write each song's word timing beside it as NAME.lrc")
    args = parser.parse_args()
    if not 1 <= args.vocabulary <= len(WORDS) + len(MORE_WORDS):
        raise SystemExit(f"--vocabulary must be 1 to {len(WORDS) + len(MORE_WORDS)}, not {args.vocabulary}")
    sung_words = (WORDS + MORE_WORDS)[:args.vocabulary]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        notes = {(w, n): sing(w, n, Path(tmp)) for w in sung_words for n in NOTES}
    rng = np.random.default_rng(args.seed)
    truth, rows = {}, []
    if args.prefix and (out / "truth.json").is_file():
        truth = {k: v for k, v in json.loads((out / "truth.json").read_text()).items()
                 if not k.startswith(args.prefix)}
        with open(out / "metadata.csv", newline="") as f:
            rows = [row for row in csv.DictReader(f) if row["path"] in truth]
    for s in range(args.songs):
        pieces, words, starts, t = [], [], [], 0
        while True:
            word, note = sung_words[rng.integers(len(sung_words))], NOTES[rng.integers(len(NOTES))]
            seconds = rng.uniform(*args.rest)
            if args.breaks[1] > 0 and len(words) % 5 == 4:
                seconds += rng.uniform(*args.breaks)
            rest = np.zeros(int(seconds * RATE), np.float32)
            if (t + len(notes[word, note]) + len(rest)) / RATE > args.seconds:
                break
            starts.append(round(t / RATE, 4))
            words.append(word)
            pieces += [notes[word, note], rest]
            t += len(notes[word, note]) + len(rest)
        audio = np.concatenate(pieces)
        name = f"{args.prefix}sung-{s:03d}.wav"
        sf.write(out / name, audio, RATE)
        lyrics = "\n".join(" ".join(words[i: i + 5]) for i in range(0, len(words), 5))
        rows.append({"path": name, "artist": "festival", "genre": "sung", "lyrics": lyrics})
        truth[name] = {"words": words, "starts": starts, "seconds": len(audio) / RATE}
        if args.lrc:
            (out / name).with_suffix(".lrc").write_text(word_level_lrc(lyrics, starts))
    with open(out / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "artist", "genre", "lyrics"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    print(f"wrote {args.songs} songs to {out} ({len(rows)} in all)")


if __name__ == "__main__":
    main()
