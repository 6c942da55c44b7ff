"""Artist and genre names → the ids a prior's label embeddings are indexed by.

One encoder serves training (built from a dataset's names when its code cache is made) and sampling (read back
from the bundle), so a name means the same id in both. It is saved as `vocab.json` in a code cache, in a prior's
run and checkpoints, and inside a bundle's manifest (the same two keys, `artists` and `genres`).

Names match ignoring case, '_' against ' ' and runs of spaces. A name the vocabulary does not hold is refused
with the closest known ones: a typo must not silently condition on 'unknown'. No name at all means 'unknown'.
A released model's vocabulary is its id table (`label_table.LabelTable`), whose own keying the encoder defers to.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .fileio import atomic_write_text
from .label_table import LabelTable

UNKNOWN = "unknown"
VOCAB_FILE = "vocab.json"


def split_genres(text: str) -> list[str]:
    """'rock; jazz' or 'rock,jazz' → ['rock', 'jazz'] (several genres per song, summed by the prior)."""
    return [g.strip() for g in text.replace(";", ",").split(",") if g.strip()]


def _normalise(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


@dataclass
class LabelEncoder:
    """`artists[i]` and `genres[i]` are the names of embedding row i; `table` replaces both for a released model."""

    artists: list[str]
    genres: list[str]
    table: LabelTable | None = None
    _index: dict[str, dict[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = {"artist": {_normalise(n): i for i, n in enumerate(self.artists)},
                       "genre": {_normalise(n): i for i, n in enumerate(self.genres)}}

    @classmethod
    def from_names(cls, artists: Iterable[str], genres: Iterable[str]) -> LabelEncoder:
        """The vocabulary of a dataset: its distinct non-empty names, sorted, and 'unknown'."""
        return cls(sorted({a for a in artists if a} | {UNKNOWN}), sorted({g for g in genres if g} | {UNKNOWN}))

    def extended(self, artists: Iterable[str], genres: Iterable[str]) -> tuple[LabelEncoder, list[str], list[str]]:
        """This vocabulary with the names it lacks appended, so that every known name keeps its id (fine-tuning a
        model on music by new artists); also returns the artists and genres added. A released model's ids (its
        table, or none known) cannot grow: names it lacks are refused as before."""
        if self.table is not None or not self.artists or not self.genres:
            return self, [], []
        new = {}
        for kind, names in (("artist", artists), ("genre", genres)):
            seen = dict(self._index[kind])
            new[kind] = []
            for name in names:
                if name and _normalise(name) not in seen:
                    seen[_normalise(name)] = -1
                    new[kind].append(name)
        return (LabelEncoder(self.artists + new["artist"], self.genres + new["genre"]), new["artist"],
                new["genre"])

    def artist_id(self, name: str | None) -> int:
        if not name:
            return self._unknown("artist")
        return self.table.artist_id(name) if self.table is not None else self._lookup(name, "artist")

    def genre_ids(self, names: Sequence[str] | None) -> list[int]:
        """One id per genre (a released v2 table: one per word of it); ['unknown'] when none is given."""
        if not names:
            return [self._unknown("genre")]
        if self.table is not None:
            return [i for name in names for i in self.table.genre_ids(name)]
        return [self._lookup(name, "genre") for name in names]

    def ids(self, artist: str | None, genres: Sequence[str] | None, max_genres: int, where: str = ""
            ) -> tuple[int, list[int]]:
        """(artist id, genre ids padded with -1 to `max_genres`), as a prior's `Labels` hold them; errors start
        with `where` (e.g. the file whose labels these are)."""
        try:
            artist_id, genre_ids = self.artist_id(artist), self.genre_ids(genres)
        except ConfigError as e:
            raise ConfigError(f"{where}{e}") from None
        if len(genre_ids) > max_genres:
            raise ConfigError(f"{where}this model takes at most {max_genres} genre(s), got {len(genre_ids)} "
                              f"({', '.join(genres or [])})")
        return artist_id, genre_ids + [-1] * (max_genres - len(genre_ids))

    def _unknown(self, kind: str) -> int:
        return self._index[kind].get(UNKNOWN, 0) if self.table is None else 0

    def _lookup(self, name: str, kind: str) -> int:
        index, names = self._index[kind], self.artists if kind == "artist" else self.genres
        key = _normalise(name)
        if key in index:
            return index[key]
        if not names:
            raise ConfigError(f"unknown {kind} '{name}': this model knows no {kind} names (a converted released "
                              "model needs its id tables: --artist-ids/--genre-ids, or jukebox-infer installed)")
        close = difflib.get_close_matches(key, list(index), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(names[index[c]]) for c in close)}?" if close else \
            f" ({len(names)} known, e.g. {', '.join(repr(v) for v in names[:3])})"
        raise ConfigError(f"unknown {kind} '{name}'{hint}")

    def to_json(self) -> dict:
        data: dict = {"artists": self.artists, "genres": self.genres}
        if self.table is not None:
            data["label_table"] = {"version": self.table.version, "artists": self.table.artists,
                                   "genres": self.table.genres}
        return data

    @classmethod
    def from_json(cls, data: dict, where: str | os.PathLike) -> LabelEncoder:
        try:
            table = data.get("label_table")
            return cls(list(data.get("artists") or []), list(data.get("genres") or []),
                       None if table is None else LabelTable(table["version"], table["artists"], table["genres"]))
        except (AttributeError, KeyError, TypeError) as e:
            raise ConfigError(f"{where}: corrupt label vocabulary ({type(e).__name__}: {e})") from None

    @classmethod
    def for_level(cls, data: dict, level: int, where: str | os.PathLike) -> LabelEncoder:
        """The vocabulary of a bundle manifest (or a vocab.json) for its level-`level` prior: the level's own table
        where the manifest has one (upsamplers whose ids differ from the top prior's: released ones, or ones that
        learned more names), else the manifest's."""
        return cls.from_json((data.get("level_labels") or {}).get(str(level), data), where)

    def save(self, folder: str | os.PathLike) -> None:
        atomic_write_text(Path(folder) / VOCAB_FILE, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> LabelEncoder:
        path = Path(folder) / VOCAB_FILE
        try:
            return cls.from_json(json.loads(path.read_text()), path)
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the label vocabulary ({e.strerror or e})") from None
        except ValueError:
            raise ConfigError(f"{path}: corrupt label vocabulary (not JSON)") from None
