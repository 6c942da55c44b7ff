"""Artist and genre ids of the released Jukebox models, read from their id tables (which we do not ship).

The tables are UTF-8 lines of `name;id`, several names may share an id, and names are lowercased on load.
Two versions key names differently (facts of the released models):

- v2 (`5b`, `5b_lyrics`): an artist is keyed by norm(name), which keeps a-z and 0-9 and turns every other run
  into one '_' (stripped at the ends); a genre is the bag of the '_'-separated words of norm(genre), at most 5.
- v3 (`1b_lyrics`): an artist or a genre is keyed by name.lower().

A name the original keying finds gets the same id as in the original. Beyond that, names are also matched
ignoring case and accents, so 'Beyonce' finds 'beyoncé'. Where the original quietly falls back to id 0 for a
name it does not know, we refuse with the closest known names: a typo should not condition on 'unknown' unseen.
Asking for 'unknown' by name is fine (it is a real key, id 0); the empty key (v2's `;0`, which the original
reaches for names with no a-z or 0-9 at all, such as '周杰伦') is left out, as it is that same silent fallback.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import ConfigError
from .fileio import read_utf8

Kind = Literal["artist", "genre"]
VERSIONS = (2, 3)
MAX_BOW_GENRE_SIZE = 5  # v2 genre words the released models condition on

_NOT_KEY_CHARS = re.compile(r"[^a-z0-9]+")


@dataclass
class LabelTable:
    """Name-to-id tables of one label version, with what is needed to match names loosely and list them.

    Keys no name can reach under the version's keying (such as v2 keys ending in '_' or v2 genre keys of several
    words) and the empty key are left out of `artists` and `genres`; a later line overrides an earlier
    one for the same name, as in the original.
    """

    version: int
    artists: dict[str, int]
    genres: dict[str, int]
    artist_names: dict[int, str] = field(init=False, repr=False)
    genre_names: dict[int, str] = field(init=False, repr=False)
    _loose: dict[str, dict[str, list[str]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ConfigError(f"label table version must be 2 (5b, 5b_lyrics) or 3 (1b_lyrics), not {self.version!r}")
        self.artists = {k: i for k, i in self.artists.items() if k and self._key(k) == k}
        self.genres = {k: i for k, i in self.genres.items() if k and self._words(k) == [k]}
        self.artist_names, self.genre_names = _display_names(self.artists), _display_names(self.genres)
        self._loose = {"artist": self._loose_index(self.artists), "genre": self._loose_index(self.genres)}

    def artist_id(self, name: str) -> int:
        """The original's id where its keying finds the name, else the one key equal to it without case or accents."""
        return self._resolve("artist", self._key(name), self._key(_fold(name)), f"artist '{name}'")

    def genre_ids(self, name: str) -> list[int]:
        """One id for v3; for v2 one id per word, refusing more words than the models take."""
        words = self._words(name)
        if not all(word in self.genres for word in words):
            words = self._words(_fold(name))
        if len(words) > MAX_BOW_GENRE_SIZE:
            raise ConfigError(f"genre '{name}' has {len(words)} words ({', '.join(words)}); "
                              f"the v2 models take at most {MAX_BOW_GENRE_SIZE}")
        return [self._resolve("genre", word, word, f"genre word '{word}' in '{name}'" if len(words) > 1
                              else f"genre '{name}'") for word in words]

    def names(self, kind: Kind) -> list[str]:
        """One entry per id, in id order: the names that select it, joined with ' | '."""
        return list(self._ids_and_names(kind)[1].values())

    def _ids_and_names(self, kind: str) -> tuple[dict[str, int], dict[int, str]]:
        if kind == "artist":
            return self.artists, self.artist_names
        if kind == "genre":
            return self.genres, self.genre_names
        raise ConfigError(f"unknown label kind '{kind}'; expected 'artist' or 'genre'")

    def _key(self, name: str) -> str:
        """The original's key for an artist or (before v2 splits it into words) a genre."""
        return _norm(name) if self.version == 2 else name.lower()

    def _words(self, genre: str) -> list[str]:
        key = self._key(genre)
        return key.split("_") if self.version == 2 else [key]

    def _loose_index(self, ids: dict[str, int]) -> dict[str, list[str]]:
        """Keys grouped by their case- and accent-free form, so distinct keys that fold together are noticed."""
        index: dict[str, list[str]] = {}
        for key in ids:
            index.setdefault(self._key(_fold(key)), []).append(key)
        return index

    def _resolve(self, kind: Kind, key: str, loose: str, what: str) -> int:
        ids = self._ids_and_names(kind)[0]
        if key in ids:
            return ids[key]
        matches = self._loose[kind].get(loose, [])
        found = sorted({ids[k] for k in matches})
        if len(found) == 1:
            return found[0]
        if found:
            options = ", ".join(f"{k!r} (id {ids[k]})" for k in sorted(matches))
            raise ConfigError(f"ambiguous {what}: it matches {options}; give one exactly")
        close = difflib.get_close_matches(loose, list(self._loose[kind]), n=3, cutoff=0.5)
        suggestions = [k for c in close for k in sorted(self._loose[kind][c])][:3]
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else \
            f" ({len(ids)} known, e.g. {', '.join(repr(k) for k in list(ids)[:3])})"
        raise ConfigError(f"unknown {what}{hint}")


def load_label_table(artist_file: str | os.PathLike, genre_file: str | os.PathLike, version: int) -> LabelTable:
    """The tables of a released model: v2_*_ids.txt for 5b and 5b_lyrics (version 2), v3_*_ids.txt for 1b_lyrics."""
    return LabelTable(version, _read_ids(Path(artist_file)), _read_ids(Path(genre_file)))


def _read_ids(path: Path) -> dict[str, int]:
    text = read_utf8(path, "id table")
    ids: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), 1):
        entry = line.strip()
        if not entry:
            continue
        name, sep, id_text = entry.rpartition(";")
        if not sep:
            raise ConfigError(f"{path}, line {number}: expected 'name;id', got {entry[:60]!r}")
        try:
            label_id = int(id_text)
        except ValueError:
            raise ConfigError(f"{path}, line {number}: id {id_text[:20]!r} is not an integer") from None
        if label_id < 0:
            raise ConfigError(f"{path}, line {number}: id {label_id} is negative")
        ids[name.lower()] = label_id
    return ids


def _norm(name: str) -> str:
    return _NOT_KEY_CHARS.sub("_", name.lower()).strip("_")


def _fold(name: str) -> str:
    """Without case or accents: NFKD splits 'é' into 'e' and a combining mark, which is dropped."""
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).casefold()


def _display_names(ids: dict[str, int]) -> dict[int, str]:
    """Each id with the names that share it, for listings."""
    names: dict[int, list[str]] = {}
    for name, label_id in ids.items():
        names.setdefault(label_id, []).append(name)
    return {label_id: " | ".join(sorted(names[label_id])) for label_id in sorted(names)}
