"""Lyrics text as the released lyrics models read it: one token per character of a small ASCII vocabulary.

Facts of the released models:

- v2 (`5b_lyrics`): tokens 1..79 are the characters of `_V2_CHARS` in order, 0 is padding (and what a character
  outside the vocabulary would be), so n_vocab is 80. v3 (`1b_lyrics`) is the same without '+': 78 characters,
  n_vocab 79.
- Cleaning transliterates to ASCII, reads a backslash as a line break and deletes every other character outside
  the vocabulary.
- A window of n_tokens lyric tokens goes with each stretch of audio; see `lyrics_window`.

The original transliterates with `unidecode`, which is GPL; we use the permissively licensed `anyascii` for letters
and digits, after NFKD (which strips accents and unfolds ligatures, fullwidth forms and the like) and after a small
table of common characters on which `anyascii` differs from the original: quotes, dashes, casing of 'Æ'. Latin-script
lyrics with the usual punctuation clean exactly as in the original (rare letters such as 'ĸ' and 'Ŋ' aside).
Cyrillic, Greek, Han, kana and Hangul are romanised too, with some letters spelt otherwise ('я' 'ya' for 'ia', 'η'
'i' for 'e', about one Han character in eight). Symbols and emoji are dropped; the original drops nearly all of them.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from anyascii import anyascii

from ..errors import ConfigError
from ..fileio import read_utf8

VERSIONS = (2, 3)
_V2_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:;!?-+'\"()[] \t\n"

# The original's ASCII for common characters that neither NFKD nor `anyascii` turn into it: the models learnt
# lyrics as the original cleaned them, so an em dash is '--' and 'Æ' is 'AE' here too.
_ASCII_FOR = {
    **dict.fromkeys("‐‑‒–", "-"), **dict.fromkeys("—―", "--"), **dict.fromkeys("‘’‛′´", "'"),
    **dict.fromkeys("“”‟", '"'), "‚": ",", "„": ",,", "\u2028": "\n", "\u2029": "\n\n", "\u200b": " ",
    "¡": "!", "¿": "?", "×": "x", "±": "+-", "°": "deg", "€": "EUR", "©": "(c)", "®": "(r)", "™": "(tm)",
    "№": "No. ", "¼": " 1/4", "½": " 1/2", "¾": " 3/4", "Æ": "AE", "Œ": "OE", "ẞ": "SS",
    "、": ", ", "。": ". ", "「": "[", "」": "] ",
}


@dataclass(frozen=True)
class LyricsVocabulary:
    """The characters of one vocabulary version: token i >= 1 is `chars[i - 1]`."""

    version: int
    chars: str = field(init=False, repr=False)
    _tokens: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ConfigError(f"lyrics vocabulary version must be 2 (5b_lyrics) or 3 (1b_lyrics), not {self.version!r}")
        chars = _V2_CHARS if self.version == 2 else _V2_CHARS.replace("+", "")
        object.__setattr__(self, "chars", chars)
        object.__setattr__(self, "_tokens", {char: token for token, char in enumerate(chars, 1)})

    @property
    def n_vocab(self) -> int:
        """The models' lyric embedding rows: every character and the padding token 0."""
        return len(self.chars) + 1

    def clean(self, text: str) -> str:
        """The text the models would see: only vocabulary characters remain, so none is unknown."""
        text = _to_ascii(text).replace("\\", "\n")
        return "".join(char for char in text if char in self._tokens)

    def encode(self, text: str) -> list[int]:
        return [self._tokens[char] for char in self.clean(text)]

    def decode(self, tokens: list[int]) -> str:
        """The text of tokens, padding (0) left out, so a window decodes to the lyrics it holds."""
        bad = [token for token in tokens if not 0 <= token < self.n_vocab]
        if bad:
            raise ConfigError(f"lyric token {bad[0]} is outside 0..{self.n_vocab - 1} of vocabulary v{self.version}")
        return "".join(self.chars[token - 1] for token in tokens if token)


@cache
def vocabulary(version: int) -> LyricsVocabulary:
    """Vocabulary 2 for `5b_lyrics`, 3 for `1b_lyrics`."""
    return LyricsVocabulary(version)


def vocabulary_of_size(n_vocab: int) -> LyricsVocabulary:
    """The released vocabulary a lyrics model with n_vocab characters was trained on: v2 (80) or v3 (79)."""
    for version in (2, 3):
        if vocabulary(version).n_vocab == n_vocab:
            return vocabulary(version)
    raise ConfigError(f"a lyrics vocabulary of {n_vocab} tokens is unknown; openjukebox knows 80 (v2) and 79 (v3)")


def lyrics_window(tokens: list[int], n_tokens: int, total_length: int, offset: int, duration: int,
                  timing: Sequence[tuple[int, int]] = (), shift: int = 0) -> tuple[list[int], list[int]]:
    """The n_tokens lyric tokens the models condition on for audio [offset, offset + duration) of a song.

    As in the original, lyrics are taken to run at a steady pace through the song: the window is centred on the
    token as far through the lyrics as the middle of the audio is through the song, moved to lie within them;
    shorter lyrics are left-padded with 0. With `timing`, (sample, token index) anchors from timed lyrics
    (`openjukebox.lyrics.timing`), the steady pace holds only between anchors, so the window follows the singing.
    `shift` moves the window by that many tokens before it is held within the lyrics (training jitter). The second
    list holds each window token's index in `tokens` (-1 for padding), which is what lyric-to-audio alignment is
    reported in. Lengths are in samples.
    """
    if n_tokens <= 0 or n_tokens % 2:
        raise ConfigError(f"lyrics window of {n_tokens} tokens: it must be a positive even number")
    if not 0 <= offset < total_length:
        raise ConfigError(f"lyrics window offset {offset} is outside the song of {total_length} samples")
    if len(tokens) < n_tokens:
        padding = n_tokens - len(tokens)
        return [0] * padding + list(tokens), [-1] * padding + list(range(len(tokens)))
    half = n_tokens // 2
    if timing:
        middle = int(sung_position(timing, offset + duration / 2.0, total_length, len(tokens)))
    else:
        middle = int(len(tokens) * (offset + duration / 2.0) / total_length)
    middle = min(max(middle + shift, half), len(tokens) - half)
    return list(tokens[middle - half:middle + half]), list(range(middle - half, middle + half))


def sung_position(timing: Sequence[tuple[int, int]], sample: float, total_length: int, n_tokens: int) -> float:
    """How far through the lyrics (in tokens) the singing is at `sample`: a steady pace between the (sample, token)
    anchors of `timing`, and from the song's start and to its end before the first and after the last."""
    points = [(0, 0), *timing, (max(total_length, timing[-1][0]), n_tokens)]
    for (start, first), (end, last) in zip(points, points[1:]):
        if sample <= end:
            return float(last) if end == start else first + (last - first) * (sample - start) / (end - start)
    return float(n_tokens)


def read_lyrics_file(path: str | os.PathLike) -> str:
    """The lyrics in a UTF-8 text file; a blank file is "", an instrumental, rather than spaces to sing."""
    text = read_utf8(path, "lyrics file")
    return text if text.strip() else ""


def _to_ascii(text: str) -> str:
    return text if text.isascii() else "".join(map(_char_to_ascii, text))


def _char_to_ascii(char: str) -> str:
    """One character's ASCII, shaped like the original's where it romanises a script: 'Zhou ' for a Han character
    (so a line of them splits into words) and lower case for Hangul."""
    if char.isascii():
        return char
    if char in _ASCII_FOR:
        return _ASCII_FOR[char]
    decomposed = "".join(part for part in unicodedata.normalize("NFKD", char) if part.isascii())
    if decomposed:
        return decomposed
    if not unicodedata.category(char).startswith(("L", "N")):
        return ""
    name = unicodedata.name(char, "")
    if name.startswith("CJK"):
        return anyascii(char) + " "
    if name.startswith("HANGUL"):
        return anyascii(char).lower()
    return anyascii(char)
