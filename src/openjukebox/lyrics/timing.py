"""Timed lyrics: when each line or word of the lyrics is sung, read from an LRC file (paper section 4.2).

The paper's models first took the lyrics to run at a steady pace through each song, which fails where the pace
changes (fast rap, long instrumental breaks); it then aligned the words of its training songs to the singing
(NUS AutoLyricsAlign) and took each window's lyrics from where the alignment puts them. An LRC file is the common
way to hold such an alignment: `[mm:ss.xx]` before a line gives the time it starts, `<mm:ss.xx>` before a word
the time that word starts (enhanced LRC, as `sample` and `align` write), a stamp before an empty line the start of
a break. Music players find `song.lrc` beside `song.mp3`; so does openjukebox.

Times are anchors for the window of lyrics (`text.lyrics_window`, `text.sung_position`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from ..errors import DataError
from ..fileio import read_utf8
from .text import LyricsVocabulary, read_lyrics_file

_STAMP = r"(\d+):(\d{1,2}(?:[.:]\d{1,3})?)"
_LINE_STAMP = re.compile(r"\[" + _STAMP + r"\]")
_WORD_STAMP = re.compile(r"<" + _STAMP + r">")
_TAG = re.compile(r"^\[([A-Za-z#][^:\]]*):?([^\]]*)\]\s*$")


@dataclass(frozen=True)
class TimedLyrics:
    text: str
    anchors: tuple[tuple[float, int], ...] = ()  # (seconds, index in `text` of the character sung from then on)

    def anchors_json(self) -> str:
        """The anchors as a JSON string, to keep with the lyrics in a dataset's labels ("" when untimed)."""
        return json.dumps([list(anchor) for anchor in self.anchors]) if self.anchors else ""


def anchors_from_json(text: str) -> tuple[tuple[float, int], ...]:
    return tuple((float(seconds), int(index)) for seconds, index in json.loads(text)) if text else ()


def parse_lrc(text: str, source: str = "LRC") -> TimedLyrics:
    """The lyrics of an LRC file (stamps and tags taken out, lines in order of time) and their anchors; a blank
    file is an instrumental, as a blank lyrics file is."""
    if not text.strip():
        return TimedLyrics("")
    offset = 0.0
    lines: list[tuple[float, int, str]] = []  # (seconds, line number, text with word stamps)
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        stamps = []
        while match := _LINE_STAMP.match(line):
            stamps.append(_seconds(*match.groups()))
            line = line[match.end():]
        if stamps:
            lines += [(seconds, number, line.strip()) for seconds in stamps]
            continue
        tag = _TAG.match(line)
        if tag:
            if tag.group(1).strip().lower() == "offset":
                try:
                    offset = int(tag.group(2).strip()) / 1000.0
                except ValueError:
                    raise DataError(f"{source}: line {number}: [offset:{tag.group(2)}] is not whole milliseconds"
                                    ) from None
            continue
        raise DataError(f"{source}: line {number} has no [mm:ss.xx] time stamp: '{line[:40]}'")
    if not lines:
        raise DataError(f"{source}: no timed lines ([mm:ss.xx] before a line of lyrics)")
    lines.sort(key=lambda entry: entry[0])
    sung: list[str] = []
    anchors: list[tuple[float, int]] = []
    last, start = 0.0, 0
    for seconds, number, line in lines:
        plain, timed = _words_and_stamps(line)
        for at, index in [(seconds, 0), *timed]:
            if at < last:
                raise DataError(f"{source}: line {number}: time {lrc_stamp(at)} comes before {lrc_stamp(last)}")
            last = at
            anchors.append((max(at - offset, 0.0), start + index))
        if plain:
            sung.append(plain)
            start += len(plain) + 1
    text = "\n".join(sung)
    return TimedLyrics(text, tuple((at, min(index, len(text))) for at, index in anchors))


def _words_and_stamps(line: str) -> tuple[str, list[tuple[float, int]]]:
    """A line's text without its word stamps, and each stamp with the index of the character it times (the word
    after it, past any spaces)."""
    pieces = _WORD_STAMP.split(line)  # text, minutes, seconds, text, ...
    plain, positions = pieces[0], []
    for i in range(1, len(pieces), 3):
        positions.append((_seconds(pieces[i], pieces[i + 1]), len(plain)))
        plain += pieces[i + 2]
    stripped = plain.strip()
    lead = len(plain) - len(plain.lstrip())
    timed = []
    for at, index in positions:
        index += len(plain[index:]) - len(plain[index:].lstrip())  # to the word's first character
        timed.append((at, min(max(index - lead, 0), len(stripped))))
    return stripped, timed


def read_lrc(path: str | os.PathLike) -> TimedLyrics:
    return parse_lrc(read_utf8(path, "LRC file"), str(path))


def read_timed_lyrics(path: str | os.PathLike) -> TimedLyrics:
    """A lyrics file: timed if it is LRC (by its .lrc suffix), plain text otherwise."""
    if str(path).lower().endswith(".lrc"):
        return read_lrc(path)
    return TimedLyrics(read_lyrics_file(path))


def encode_timed(vocabulary: LyricsVocabulary, timed: TimedLyrics,
                 sample_rate: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The lyrics as the model's tokens, and the anchors as (sample, token index): cleaning drops and expands
    characters one by one, so a character's token index is the cleaned length of the text before it."""
    cleaned = [0]
    for char in timed.text:
        cleaned.append(cleaned[-1] + len(vocabulary.clean(char)))
    timing = [(round(seconds * sample_rate), cleaned[index]) for seconds, index in timed.anchors]
    return vocabulary.encode(timed.text), timing


def _seconds(minutes: str, seconds: str) -> float:
    whole, _, fraction = seconds.replace(":", ".").partition(".")
    return int(minutes) * 60 + int(whole) + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def lrc_stamp(seconds: float) -> str:
    """mm:ss.xx, as LRC writes times."""
    minutes, centiseconds = divmod(round(seconds * 100), 6000)
    return f"{minutes:02d}:{centiseconds / 100:05.2f}"
