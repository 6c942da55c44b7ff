"""What a user asks of sampling: `SampleRequest` (and the `Filters` it holds), checked before anything runs.

Each field declares its command-line option beside it (`cli` metadata: flags, help), so that `openjukebox sample`
is generated from this class and the API and the CLI cannot drift apart. Nothing here needs torch, so the CLI's
help stays fast.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from ..level_temperatures import upsampler_temperatures


MAX_LYRICS = 20_000  # characters: ten minutes of fast singing, and what keeps alignment's memory bounded


def option(help: str, default: Any = None, *, factory: Any = None, **cli: Any) -> Any:
    """A dataclass field with its command-line option: `help`, and argparse settings (flags, type, action)."""
    metadata = {"cli": {"help": help, **cli}}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Filters:
    """How logits become a distribution: temperature, then top-k, then nucleus (top-p); 0 turns a filter off."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature (--temperature) must be positive, got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"top_k (--top-k) must be 0 (off) or positive, got {self.top_k}")
        if not 0 <= self.top_p <= 1:
            raise ConfigError(f"top_p (--top-p) must be in [0, 1], got {self.top_p}")


def parse_upsampling_temperature(text: str) -> float | dict[int, float]:
    """'0.9' → 0.9 (levels 1 and 0); '1=0.85,0=1' → {1: 0.85, 0: 1.0}: the --upsampling-temperature option."""
    name = "upsampling_temperature (--upsampling-temperature)"
    try:
        if "=" not in text:
            return float(text)
        pairs = [part.split("=") for part in text.split(",")]
        return {int(level): float(temperature) for level, temperature in pairs}
    except ValueError:
        raise ConfigError(f"{name} must be a number, or LEVEL=T pairs such as 1=0.85,0=1, got {text!r}") from None


def parse_levels(text: str) -> list[int]:
    """'2,1' → [2, 1]: the --levels option."""
    try:
        return [int(level) for level in text.split(",")]
    except ValueError:
        raise ConfigError(f"levels (--levels) must be 2, 2,1 or 2,1,0, got {text}") from None


@dataclass
class SampleRequest:
    duration: float = field(metadata={"cli": {"help": "seconds of music", "type": float, "required": True}})
    n: int = option("samples, generated together as one batch (under torchrun, split across the processes: "
                    "spell it --n-samples there, since torchrun takes --n for its own --nnodes)", 1,
                    flags=("--n", "--n-samples"))
    seed: int = option("the same seed and options give the same songs", 0)
    artist: str | None = option("an artist the model knows ('openjukebox models' lists them)", type=str)
    genres: list[str] = option("a genre the model knows; repeat for several", factory=list, flags=("--genre",),
                               action="append", metavar="GENRE")
    # The top level's temperature; None: the model's own (its manifest's `temperature`), else 1.
    temperature: float | None = option("above 1: more surprising, below 1: safer (default: the model's own, else 1)",
                                       type=float)
    # The upsamplers' own temperature, one for both or one a level ({1: 0.85, 0: 1.0}): below 1 they keep more of
    # the top level's harmony, and mostly at level 1, where a small upsampler loses most of it. A level not given
    # takes the model's own (its manifest's `upsampling_temperature`), else the top level's.
    upsampling_temperature: float | dict[int, float] | None = option(
        "temperature of the upsamplers: one for levels 1 and 0, or one a level, e.g. 1=0.85,0=1 (default: the "
        "model's own, else --temperature)", type=parse_upsampling_temperature, metavar="T")
    top_k: int = option("draw only from the k likeliest codes (0: all)", 0)
    top_p: float = option("draw only from the likeliest codes that make up this probability (0: all)", 0.0)
    hop_fraction: float = option("how far each window of a long song moves, as a fraction of the window", 0.5)
    levels: list[int] = field(default_factory=lambda: [2, 1, 0], metadata={"cli": {
        "help": "2 (top only, fast preview), 2,1 or 2,1,0", "type": parse_levels, "default": "2,1,0"}})
    prompt: str | None = option("audio to continue (its first --prompt-seconds)", type=str)
    prompt_seconds: float = option("seconds of --prompt to keep and continue", 0.0)
    # Labels changing mid-song: "0:artist=A,genre=G;30:artist=B" (seconds; unnamed fields carry over).
    schedule: str | None = option("labels changing mid-song: '0:artist=A,genre=G;30:artist=B'", type=str)
    lyrics: str = ""  # what the song sings, for a lyrics model ("" = instrumental); the CLI's --lyrics-file
    # When it is sung: (seconds, index in `lyrics` of the character sung from then on), as from an LRC file
    # (openjukebox.lyrics.timing); empty for the original's steady pace through the song.
    lyrics_timing: tuple[tuple[float, int], ...] = ()
    # The length of the song this clip begins, for the timing conditioning and the lyrics' pace (the original's
    # total_sample_length_in_seconds). None: the bundle's own default, else `duration`.
    song_seconds: float | None = option("length of the song this clip begins, for the timing conditioning "
                                        "(default: the model's own, else --duration)", type=float)
    # Where in that song the clip begins (the timing conditioning's offset, the original's `offset`), so that a
    # short clip can be the body of a song rather than its intro. None: the model's own default where the song
    # leaves room for the clip after it and nothing is continued (no prompt), else 0.
    song_start: float | None = option("seconds into the song where this clip begins, for the timing conditioning "
                                      "(default: the model's own, else 0; 0 with --prompt)", type=float)

    def __post_init__(self) -> None:
        if self.prompt is not None:  # kept absolute in request.json, so that a run continues from any folder
            self.prompt = os.path.abspath(self.prompt)

    def check(self) -> None:
        """Every value in range (NaN and infinity refused by name), before anything is written."""
        for name in ("duration", "prompt_seconds", "hop_fraction", "temperature", "top_p", "song_seconds",
                     "song_start"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{name} (--{name.replace('_', '-')}) must be a finite number, got {value}")
        if not self.duration > 0:
            raise ConfigError(f"duration (--duration) must be positive, got {self.duration}")
        if len(self.lyrics) > MAX_LYRICS:
            raise ConfigError(f"lyrics (--lyrics-file) of {len(self.lyrics):,} characters: a song sings at most "
                              f"{MAX_LYRICS:,} (the released models read 384 or 512 at a time)")
        if not 0 < self.hop_fraction <= 1:
            raise ConfigError(f"hop_fraction (--hop-fraction) must be in (0, 1], got {self.hop_fraction}")
        if self.n <= 0:
            raise ConfigError(f"n (--n) must be positive, got {self.n}")
        if not self.levels or self.levels != list(range(2, 2 - len(self.levels), -1)):
            raise ConfigError(f"levels (--levels) must be 2, 2,1 or 2,1,0, got {','.join(map(str, self.levels))}")
        if self.song_seconds is not None and not self.song_seconds >= self.duration:
            raise ConfigError(f"song_seconds (--song-seconds) ({self.song_seconds}) must be at least duration "
                              f"(--duration) ({self.duration})")
        if self.song_start is not None:
            if not self.song_start >= 0:
                raise ConfigError(f"song_start (--song-start) must be 0 or more seconds, got {self.song_start}")
            if self.song_seconds is not None and not self.song_start + self.duration <= self.song_seconds:
                raise ConfigError(f"song_start (--song-start) ({self.song_start}) + duration (--duration) "
                                  f"({self.duration}) runs past the end of the song, song_seconds (--song-seconds) "
                                  f"({self.song_seconds})")
        if self.prompt is not None and not 0 < self.prompt_seconds < self.duration:
            raise ConfigError("prompt_seconds (--prompt-seconds) must be positive and shorter than duration "
                              "(--duration)")
        self.filters(2)
        self.filters(1)

    def with_top_temperature(self, model_temperature: float | None) -> SampleRequest:
        """This request with the top level's temperature resolved as `filters` resolves it (asked, else the
        model's own, else 1): what a run saves in request.json, so that a resumed run keeps it."""
        return replace(self, temperature=self.filters(2, model_temperature=model_temperature).temperature)

    def filters(self, level: int, model_temperatures: dict[int, float] | None = None,
                model_temperature: float | None = None) -> Filters:
        """The filters of one level: the top level draws at the temperature asked for, else the model's own
        (`Bundle.temperature`), else 1; an upsampler (level 1 or 0) at the upsampling temperature asked for that
        level, else the model's own for it (`Bundle.upsampling_temperature`), else the top level's."""
        top = next((t for t in (self.temperature, model_temperature) if t is not None), 1.0)
        asked = upsampler_temperatures(self.upsampling_temperature, "upsampling_temperature (--upsampling-temperature)")
        choices = [] if level == 2 else [asked.get(level), (model_temperatures or {}).get(level)]
        temperature = next((t for t in choices if t is not None), top)
        return Filters(temperature, self.top_k, self.top_p)


def parse_schedule(text: str, artist: str | None, genres: list[str]) -> list[tuple[float, str | None, list[str]]]:
    """'0:artist=A,genre=G;30:artist=B' → [(0.0, 'A', ['G']), (30.0, 'B', ['G'])], sorted by time."""
    entries = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        time_text, _, fields = part.partition(":")
        try:
            at = float(time_text)
        except ValueError:
            raise ConfigError(f"schedule (--schedule) entry '{part}': must start with seconds, "
                              "like '30:artist=B'") from None
        new_genres: list[str] = []
        for field_text in filter(None, (f.strip() for f in fields.split(","))):
            key, _, value = field_text.partition("=")
            if key.strip() == "artist" and value.strip():
                artist = value.strip()
            elif key.strip() == "genre" and value.strip():
                new_genres.append(value.strip())
            else:
                raise ConfigError(f"schedule (--schedule) entry '{part}': expected artist=NAME or genre=NAME, "
                                  f"got '{field_text}'")
        genres = new_genres or genres
        entries.append((at, artist, list(genres)))
    if not entries or min(e[0] for e in entries) != 0:
        raise ConfigError("schedule (--schedule) must have an entry at 0 seconds")
    return sorted(entries)
