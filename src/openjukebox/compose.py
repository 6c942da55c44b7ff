"""Co-composition (paper section 7): the top level proposes candidates, a person picks one, the model continues it,
and only the chosen path is upsampled.

A composition is a folder:

    composition.json          the model, the labels, the tree: nodes {id: parent, extension, row, seconds, seed}
    extensions/eK/            one resumable sampling run per extension (sample.pipeline, levels [2] only):
        request.json, level2.npz  the candidates' codes, each the whole path from the start (row i = candidate i)
        sample-I-level2.wav       the rough preview: the top level decoded by the VQ-VAE
    finished/NODE/            the upsampling run of a chosen node (levels 1 and 0), and its exported song

An extension is a sampling run primed with its parent's codes (written as the run's saved level-2 codes, from
which the pipeline continues), so a killed extension resumes where it stopped when asked again, and its
candidates are the same as if it had never stopped. Each extension draws with its own seed, recorded in its nodes:
asking again with that seed regenerates them identically. composition.json is rewritten atomically after each
step, and a node enters it only when its extension is complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .audio import SAVED_FORMATS, load_audio, save_audio
from .bundle import Bundle, load_bundle
from .errors import ConfigError
from .fileio import atomic_write_text, writer_lock
from .devices import resolve_device
from .jukebox import find_model
from .sample.pipeline import REQUEST, level_path, load_level_codes, sample, save_level_codes
from .sample.request import SampleRequest

COMPOSITION = "composition.json"
FORMAT_VERSION = 1
_SEPARATORS = ",;:="  # characters the label schedule of a path cannot hold in names


@dataclass
class Node:
    """One candidate: row `row` of extension `extension`, `seconds` long from the start of the song."""

    id: str
    parent: str | None
    extension: str
    row: int
    seconds: float
    seed: int
    artist: str | None  # the labels in force from the parent's end on
    genres: list[str]
    lyrics: str


@dataclass
class CompositionState:
    model: str
    artist: str | None
    genres: list[str]
    lyrics: str
    song_seconds: float | None
    seed: int
    prompt: str | None
    prompt_seconds: float
    nodes: dict[str, Node] = field(default_factory=dict)
    extensions: dict[str, str | None] = field(default_factory=dict)  # each started extension's parent
    chosen: str | None = None


class Composition:
    """`Composition.create(folder, model=..., artist=..., genres=[...])`, then `.extend(None, 10, 3)` for three
    10-second starts, `.extend(node, 10, 3)` to continue one, `.pick(node)`, `.upsample(node)`, `.export(...)`."""

    def __init__(self, folder: Path, state: CompositionState, bundle: Bundle) -> None:
        self.folder, self.state, self.bundle = folder, state, bundle

    @classmethod
    def create(cls, folder: str | os.PathLike, model: str | os.PathLike | None = None, artist: str | None = None,
               genres: list[str] | None = None, lyrics: str = "", song_seconds: float | None = None, seed: int = 0,
               prompt: str | os.PathLike | None = None, prompt_seconds: float = 0.0, device: str = "auto"
               ) -> Composition:
        """A new composition in an empty `folder`: the model (a bundle folder, a cached bundle's or released
        model's name, None for the embedded one), the labels and lyrics to start with, the song's length for the
        timing conditioning, and optionally the first `prompt_seconds` of the user's audio to start from."""
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ConfigError(f"{folder}: exists and is not an empty folder; choose a new composition folder")
        path = find_model(model)
        bundle = load_bundle(path, resolve_device(device))
        bundle.require([2])
        if prompt is not None:
            prompt = Path(prompt).absolute()
            load_audio(prompt)  # readable audio, checked before anything is written
            if not prompt_seconds > 0:
                raise ConfigError("prompt_seconds (--prompt-seconds) must be positive when starting from audio")
        state = CompositionState(str(path.absolute()), artist, list(genres or []), lyrics, song_seconds, seed,
                                 None if prompt is None else str(prompt), prompt_seconds)
        composition = cls(folder, state, bundle)
        # The labels known to the model, the lengths possible: checked before anything is written.
        composition._request(None, prompt_seconds + 1.0, 1, seed, artist, state.genres, lyrics)
        folder.mkdir(parents=True, exist_ok=True)
        if prompt is not None:  # kept inside: the composition needs it as long as it lives
            state.prompt = str((folder / f"prompt{prompt.suffix.lower()}").absolute())
            shutil.copyfile(prompt, state.prompt)
        composition._save()
        return composition

    @classmethod
    def open(cls, folder: str | os.PathLike, device: str = "auto") -> Composition:
        folder = Path(folder)
        try:
            data = json.loads((folder / COMPOSITION).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{folder}: not a composition (no {COMPOSITION}); start one with 'compose new'") from None
        except (OSError, ValueError) as e:
            raise ConfigError(f"{folder / COMPOSITION}: unreadable composition ({e})") from None
        if data.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"{folder / COMPOSITION}: composition format {data.get('format_version')!r} is not "
                              "supported")
        nodes = {key: Node(**value) for key, value in data.pop("nodes").items()}
        data.pop("format_version")
        state = CompositionState(**data, nodes=nodes)
        return cls(folder, state, load_bundle(Path(state.model), resolve_device(device)))

    # ---- the tree ----------------------------------------------------------------------------------------------

    def node(self, node: str) -> Node:
        if node not in self.state.nodes:
            known = ", ".join(self.state.nodes) or "none yet"
            raise ConfigError(f"no node '{node}' in {self.folder} (nodes: {known})")
        return self.state.nodes[node]

    def path(self, node: str | None) -> list[Node]:
        """The nodes from the start to `node`, in order."""
        out = []
        while node is not None:
            out.append(self.node(node))
            node = out[-1].parent
        return out[::-1]

    def tree(self) -> dict[str | None, list[str]]:
        """Children of each node (None: the start), in the order they were made."""
        children: dict[str | None, list[str]] = {None: []}
        for node in self.state.nodes.values():
            children.setdefault(node.parent, []).append(node.id)
            children.setdefault(node.id, [])
        return children

    def codes(self, node: str) -> np.ndarray:
        """The top-level codes (tokens,) of the whole path to `node`."""
        n = self.node(node)
        return load_level_codes(level_path(self.folder / "extensions" / n.extension, 2))[n.row].numpy()

    def preview(self, node: str) -> Path:
        """The rough preview of `node`: its path's top level, decoded."""
        n = self.node(node)
        return self.folder / "extensions" / n.extension / f"sample-{n.row}-level2.wav"

    # ---- steps -------------------------------------------------------------------------------------------------

    def extend(self, node: str | None, seconds: float, n: int = 3, seed: int | None = None,
               artist: str | None = None, genres: list[str] | None = None, lyrics: str | None = None,
               progress: bool = True, compile: bool | str = "auto") -> list[str]:
        """`n` candidates continuing `node` (None: the start) by `seconds`; returns their node ids. `artist`,
        `genres` and `lyrics` change the labels from here on (a new verse, a duet). An extension that was killed
        is continued when asked again with the same arguments; `seed` (default: a new one) regenerates the
        candidates of the extension that used it."""
        parent, artist, genres, lyrics, start = self.plan(node, seconds, n, artist, genres, lyrics)
        with writer_lock(self.folder):  # one writer per composition
            pending, seed = self._pending(node, start + seconds, n, seed, artist, genres, lyrics)
            name = pending or f"e{len(self.state.extensions) + 1}"
            seed = seed if seed is not None else self.state.seed + len(self.state.extensions) + 1
            request = self._request(node, start + seconds, n, seed, artist, genres, lyrics)
            run = self.folder / "extensions" / name
            if pending is None:
                self.state.extensions[name] = node
                self._save()  # the name is taken before the run starts: a killed run is continued, not numbered again
                shutil.rmtree(run, ignore_errors=True)
                run.mkdir(parents=True)
                atomic_write_text(run / REQUEST, json.dumps(asdict(request), indent=2) + "\n")
                if parent is not None:  # primed with the parent's codes, which the pipeline continues
                    total = -(-round(request.duration * self.rate) // self.bundle.vqvae.hop_lengths[2])
                    save_level_codes(level_path(run, 2), np.repeat(self.codes(parent.id)[None], n, axis=0), total)
            sample(self.bundle, run, request, progress, compile)
            made = []
            for row in range(n):
                key = f"n{len(self.state.nodes) + 1}"
                self.state.nodes[key] = Node(key, node, run.name, row, request.duration, seed, artist, genres, lyrics)
                made.append(key)
            self._save()
            return made

    def plan(self, node: str | None, seconds: float, n: int, artist: str | None = None,
             genres: list[str] | None = None, lyrics: str | None = None
             ) -> tuple[Node | None, str | None, list[str], str, float]:
        """Check an extension before it runs: (parent, the labels and lyrics it will use, where it starts in
        seconds). Labels not given stay as they were on the path."""
        if not seconds > 0:
            raise ConfigError(f"seconds (--seconds) must be positive, got {seconds}")
        if n < 1:
            raise ConfigError(f"n (--n) must be at least 1, got {n}")
        parent = None if node is None else self.node(node)
        artist = artist if artist is not None else (parent.artist if parent else self.state.artist)
        genres = list(genres) if genres is not None else (parent.genres if parent else self.state.genres)
        lyrics = lyrics if lyrics is not None else (parent.lyrics if parent else self.state.lyrics)
        start = parent.seconds if parent is not None else (self.state.prompt_seconds if self.state.prompt else 0.0)
        self._request(node, start + seconds, n, 0, artist, genres, lyrics)
        return parent, artist, genres, lyrics, start

    def pick(self, node: str) -> None:
        """Mark `node` as the chosen path's end (what `upsample` and `export` use by default)."""
        self.node(node)
        self.state.chosen = node
        self._save()

    def upsample(self, node: str | None = None, progress: bool = True, compile: bool | str = "auto") -> list[Path]:
        """Levels 1 and 0 of the path to `node` (default: the chosen one); resumable. Returns the files written."""
        with writer_lock(self.folder):  # one writer per composition
            n = self.node(self._chosen(node))
            out = self.folder / "finished" / n.id
            request = self._request(n.parent, n.seconds, 1, n.seed, n.artist, n.genres, n.lyrics, levels=[2, 1, 0])
            if not (out / REQUEST).is_file():
                out.mkdir(parents=True, exist_ok=True)
                codes = self.codes(n.id)[None]
                save_level_codes(level_path(out, 2), codes, codes.shape[1])
                atomic_write_text(out / REQUEST, json.dumps(asdict(request), indent=2) + "\n")
            return sample(self.bundle, out, request, progress, compile)

    def export(self, path: str | os.PathLike, node: str | None = None) -> Path:
        """The finished song of `node` (default: the chosen one) at `path`: .wav, .flac, .ogg or .mp3; where the
        model sings, its lyrics alignment beside it (the same name, .lrc)."""
        n = self.node(self._chosen(node))
        path = Path(path)
        if path.suffix.lower() not in (".wav", *SAVED_FORMATS):
            raise ConfigError(f"{path}: export writes .wav, {', '.join(SAVED_FORMATS)}")
        finished = self.folder / "finished" / n.id
        if not (finished / "sample-0-level0.wav").is_file():
            raise ConfigError(f"node {n.id} is not upsampled yet; run 'compose upsample' first")
        audio = load_audio(finished / "sample-0-level0.wav", sample_rate=self.rate)
        save_audio(path, audio, self.rate)
        if (finished / "sample-0-lyrics.lrc").is_file():
            shutil.copyfile(finished / "sample-0-lyrics.lrc", path.with_suffix(".lrc"))
        return path

    # ---- inside ------------------------------------------------------------------------------------------------

    @property
    def rate(self) -> int:
        return self.bundle.vqvae.config.sample_rate

    def _chosen(self, node: str | None) -> str:
        node = node or self.state.chosen
        if node is None:
            raise ConfigError("no node given and none picked; pick one with 'compose pick NODE'")
        return node

    def _request(self, parent: str | None, duration: float, n: int, seed: int, artist: str | None,
                 genres: list[str], lyrics: str, levels: list[int] | None = None) -> SampleRequest:
        """The sampling request of a path ending with these labels: a schedule where the labels changed on the
        way; checked (names known to the model, lengths possible) before anything runs."""
        changes, start = [], 0.0
        for node in self.path(parent):  # each node's labels hold from its parent's end on
            changes.append((start, node.artist, node.genres))
            start = node.seconds
        changes.append((start, artist, genres))
        entries = [changes[0]] + [c for prev, c in zip(changes, changes[1:]) if c[1:] != prev[1:]]
        schedule = None
        if len(entries) > 1:
            for _, a, g in entries:
                if any(ch in name for name in [a or "", *g] for ch in _SEPARATORS):
                    raise ConfigError(f"labels that change along a composition cannot contain any of "
                                      f"'{_SEPARATORS}' ({a!r}, {g!r})")
            schedule = ";".join(f"{at:g}:" + ",".join([*([f"artist={a}"] if a else []), *(f"genre={x}" for x in g)])
                                for at, a, g in entries)
        request = SampleRequest(duration=duration, n=n, seed=seed, artist=entries[0][1], genres=list(entries[0][2]),
                                lyrics=lyrics,
                                levels=levels or [2], schedule=schedule, song_seconds=self.state.song_seconds,
                                song_start=0.0,  # a composition is a whole song, from its start
                                prompt=self.state.prompt, prompt_seconds=self.state.prompt_seconds)
        request.check()
        # Resolved as `sample` resolves it, so that the request.json written here is the one `sample` keeps.
        request = request.with_top_temperature(self.bundle.temperature)
        song = max(duration, request.song_seconds or self.bundle.song_seconds or 0.0)
        self.bundle.labels(artist, genres, round(song * self.rate), 1)  # names known to the model
        return request

    def _pending(self, node: str | None, duration: float, n: int, seed: int | None, artist: str | None,
                 genres: list[str], lyrics: str) -> tuple[str | None, int | None]:
        """(name, seed) of a started, unfinished extension of the same node with the same request, to continue;
        (None, `seed`) when there is none."""
        done = {node.extension for node in self.state.nodes.values()}
        for name, parent in reversed(self.state.extensions.items()):
            run = self.folder / "extensions" / name
            if name in done or parent != node or not (run / REQUEST).is_file():
                continue
            saved = json.loads((run / REQUEST).read_text())
            wanted = self._request(node, duration, n, saved["seed"] if seed is None else seed, artist, genres,
                                   lyrics)
            if json.loads(json.dumps(asdict(wanted))) == saved:
                return name, saved["seed"]
        return None, seed

    def _save(self) -> None:
        data = {"format_version": FORMAT_VERSION, **asdict(self.state)}
        atomic_write_text(self.folder / COMPOSITION, json.dumps(data, indent=2) + "\n")

