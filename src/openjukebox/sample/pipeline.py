"""From a bundle to songs: top level, then the upsamplers, each level saved window by window.

OUT_DIR holds `request.json` (what was asked), `level{l}.npz` (the codes so far of each level, rewritten
atomically after every window) and `sample-{i}-level{l}.wav` per finished level. Running the same request
again continues from the saved codes; since every window draws from a generator seeded by the seed, the level
and the window's start, the result equals an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import distributed
from ..audio import AUDIO_EXTENSIONS, load_audio, save_audio
from ..bundle import Bundle
from ..errors import ConfigError
from ..fileio import atomic_path, atomic_write_text, writer_lock
from ..lyrics.text import lyrics_window, vocabulary_of_size
from ..lyrics.timing import TimedLyrics, encode_timed
from ..prior.conditioning import Labels
from .alignment import lyrics_attention, write_alignment
from .ancestral import sample_level
from .request import SampleRequest, parse_schedule

REQUEST = "request.json"


def _labels_for(bundle: Bundle, request: SampleRequest, total_length: int, level: int = 2, song_start: int = 0):
    """The level's labels: fixed, or a function from a window's first sample (counted from the clip's start) to the
    labels in force there (for a schedule, and for lyrics, whose window of characters moves with the music: the
    original's linear heuristic). Their offsets count from the song's start, `song_start` samples before the clip's.
    Each level keys the names by its own tables (1b_lyrics: v3 at the top, v2 below)."""
    config = bundle.priors[level].config
    if level == 2 and request.lyrics and not config.n_tokens:
        raise ConfigError("this model does not sing: it has no lyrics conditioning; leave out the lyrics")
    if request.schedule is None and not config.n_tokens:
        labels = bundle.labels(request.artist, request.genres, total_length, request.n, level)
        return replace(labels, offset=labels.offset + song_start)
    rate = bundle.vqvae.config.sample_rate
    schedule = [(0.0, request.artist, request.genres)] if request.schedule is None else \
        parse_schedule(request.schedule, request.artist, request.genres)
    entries = [(at, bundle.labels(artist, genres, total_length, request.n, level))
               for at, artist, genres in schedule]
    tokens, timing = _lyrics_tokens(request, config.n_vocab, rate) if config.n_tokens else ([], [])

    def labels_at(offset: int) -> Labels:
        current = [labels for at, labels in entries if at * rate <= offset][-1]
        lyrics = current.lyrics
        if config.n_tokens:
            window, _ = lyrics_window(tokens, config.n_tokens, total_length, song_start + offset, config.window_samples,
                                      timing)
            lyrics = torch.tensor([window] * request.n)
        return replace(current, offset=torch.full((request.n,), song_start + offset), lyrics=lyrics)

    return labels_at


def _lyrics_tokens(request: SampleRequest, n_vocab: int, sample_rate: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The request's lyrics as the model's tokens, and their (sample, token) timing anchors when timed."""
    return encode_timed(vocabulary_of_size(n_vocab), TimedLyrics(request.lyrics, request.lyrics_timing), sample_rate)


def _align(prior, codes: torch.Tensor, labels_at, request: SampleRequest, out: Path, total_length: int,
           sample_rate: int, stems: list[str], layer: int | None = None, head: int | None = None,
           song_start: int = 0) -> list[Path]:
    """Which words are sung when, per sample: STEM.lrc, .json and .png."""
    vocabulary = vocabulary_of_size(prior.config.n_vocab)
    tokens, timing = _lyrics_tokens(request, prior.config.n_vocab, sample_rate)
    if not tokens:
        return []
    attention = lyrics_attention(prior, codes, labels_at, tokens, total_length, request.hop_fraction, layer, head,
                                 timing, song_start)
    seconds = prior.config.hop_length / sample_rate
    return [path for i, stem in enumerate(stems)
            for path in write_alignment(out, stem, vocabulary.decode(tokens), attention[i], seconds)]


def align_audio(bundle: Bundle, audio_path: str | os.PathLike, lyrics: str, out_dir: str | os.PathLike,
                artist: str | None = None, genres: list[str] | None = None, hop_fraction: float = 0.5,
                layer: int | None = None, head: int | None = None,
                lyrics_timing: tuple[tuple[float, int], ...] = ()) -> list[Path]:
    """Align the lyrics of an existing song: its top-level codes read by the lyrics prior, as when sampling.
    Writes lyrics.lrc, lyrics.json and lyrics.png into out_dir. `layer`/`head` choose another attention head
    than the model's own (the paper chose its heads by looking at them); `lyrics_timing`, a rough timing (such as
    line-level LRC), places the windows of lyrics the model reads, as when sampling."""
    bundle.require([2])
    prior = bundle.prior(2)
    if not prior.config.n_tokens:
        raise ConfigError("this model does not sing: it has no lyrics conditioning to align with")
    if not lyrics.strip():
        raise ConfigError("the lyrics are empty: nothing to align")
    vq = bundle.vqvae
    rate = vq.config.sample_rate
    audio = load_audio(audio_path, sample_rate=rate, mono=True)
    with torch.no_grad():
        codes = vq.encode(torch.from_numpy(audio)[None].to(next(vq.parameters()).device))[2]
    total_length = codes.shape[1] * vq.hop_lengths[2]
    request = SampleRequest(duration=audio.shape[1] / rate, artist=artist, genres=genres or [], lyrics=lyrics,
                            lyrics_timing=lyrics_timing, hop_fraction=hop_fraction)
    request.check()
    labels = _labels_for(bundle, request, total_length)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _align(prior, codes, labels, request, out, total_length, rate, ["lyrics"], layer, head)


MODEL = "model.json"  # which model's codes the output folder holds


def _check_model(out: Path, bundle: Bundle) -> None:
    """Record the model a run samples with, or refuse to continue it with another (its codes would mix)."""
    mine = {"fingerprint": f"{bundle.fingerprint()} {bundle.dtype or 'float32'}", "path": str(bundle.path)}
    path = out / MODEL
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{path}: corrupt; it says which model this run samples with") from None
        if saved.get("fingerprint") != mine["fingerprint"]:
            raise ConfigError(f"{out}: was sampled with another model ({saved.get('path')}); continue it with that "
                              "--model, or use another --out")
    else:
        atomic_write_text(path, json.dumps(mine, indent=2) + "\n")


def level_path(out: Path, level: int) -> Path:
    return out / f"level{level}.npz"


def save_level_codes(path: Path, codes: torch.Tensor | np.ndarray, total: int) -> None:
    """A level's codes so far (samples, tokens) of `total`, atomically: what a run continues from."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, codes=np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes),
                     total_tokens=np.array(total))


def load_level_codes(path: Path) -> torch.Tensor | None:
    """A level's saved codes (samples, tokens), or None; a damaged file is refused by name, never continued."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            codes = data["codes"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{path}: corrupt saved codes ({type(e).__name__}); use another --out") from None
    if codes.ndim != 2 or codes.dtype.kind not in "iu" or (codes.size and codes.min() < 0):
        raise ConfigError(f"{path}: corrupt saved codes (shape {codes.shape}, {codes.dtype}); use another --out")
    return torch.from_numpy(codes)


def _prompt_codes(bundle: Bundle, request: SampleRequest) -> list[torch.Tensor] | None:
    if request.prompt is None:
        return None
    vq = bundle.vqvae
    audio = load_audio(request.prompt, sample_rate=vq.config.sample_rate, mono=True)
    samples = round(request.prompt_seconds * vq.config.sample_rate)
    if audio.shape[1] < samples:
        raise ConfigError(f"{request.prompt}: is {audio.shape[1] / vq.config.sample_rate:.2f}s long, shorter than "
                          f"--prompt-seconds {request.prompt_seconds}")
    clip = torch.from_numpy(audio[:, :samples])[None].to(next(vq.parameters()).device)
    codes = vq.encode(clip)
    return [c[:, : samples // hop].repeat(request.n, 1) for c, hop in zip(codes, vq.hop_lengths)]


def sample(bundle: Bundle, out_dir: str | os.PathLike, request: SampleRequest, progress: bool = True,
           compile: bool | str = "auto") -> list[Path]:
    """Run (or continue) a sampling request into out_dir; returns the WAV files written.

    `compile`: compile the decode step (True), not (False), or where it pays for itself ("auto": see
    decode.compile_pays). Under torchrun the request's samples are split across the processes, each drawing its
    own; the first process writes every file, the same files as one process would write."""
    request.check()
    bundle.require(request.levels)
    song_seconds = request.song_seconds or bundle.song_seconds or 0.0
    # Saved as resolved, so that a resumed run keeps them.
    request = replace(request.with_top_temperature(bundle.temperature),
                      song_start=_song_start(bundle, request, song_seconds))
    share = distributed.my_share(request.n)
    if request.n < distributed.world_size():
        raise ConfigError(f"n (--n) {request.n} is fewer samples than the {distributed.world_size()} processes "
                          "sharing them")
    out = Path(out_dir)
    if out.suffix.lower() in AUDIO_EXTENSIONS or out.is_file():
        raise ConfigError(f"{out}: sampling writes a folder (request.json, level*.npz, sample-*.wav), not one file; "
                          "give --out a folder name")
    saved = out / REQUEST
    if saved.is_file():
        # Compared as saved (tuples become lists); fields added since an older run was saved take their defaults.
        try:
            recorded = json.loads(saved.read_text())
            if not isinstance(recorded, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as e:
            raise ConfigError(f"{saved}: corrupt sampling request ({e}); use another --out") from None
        # Runs saved before `song_start` existed began at the song's start.
        previous = json.loads(json.dumps({**asdict(SampleRequest(duration=request.duration)), "song_start": 0.0,
                                          **recorded}))
        mine = json.loads(json.dumps(asdict(request)))
        differing = [k for k in mine if k != "levels" and previous.get(k) != mine[k]]
        if differing:
            what = "; ".join(f"{k} was {previous.get(k)!r}, now {mine[k]!r}" for k in differing)
            raise ConfigError(f"{out}: holds a different sampling request ({what}); use another --out or the same "
                              "options")
    vq = bundle.vqvae
    rate = vq.config.sample_rate
    n_samples = round(request.duration * rate)
    top_tokens = -(-n_samples // vq.hop_lengths[2])
    song_start = round(request.song_start * rate)
    song_length = max(song_start + top_tokens * vq.hop_lengths[2], round(song_seconds * rate))
    labels = {level: _labels_for(bundle, request, song_length, level, song_start) for level in request.levels}
    prompts = _prompt_codes(bundle, request)  # every input is checked before anything is written
    main = distributed.is_main()
    with contextlib.ExitStack() as hold:
        if main:  # one writer per output folder; the codes are checked against the model that drew them
            hold.enter_context(writer_lock(out))
            _check_model(out, bundle)
            atomic_write_text(saved, json.dumps(asdict(request), indent=2) + "\n")
        rows = slice(share.start, share.stop)
        written = []
        upper = None
        for level in request.levels:
            prior = bundle.prior(level)
            device = prior.pos_emb.device
            total = top_tokens * vq.hop_lengths[2] // vq.hop_lengths[level]
            # Read by the first process alone, which may already be writing it when another gets here.
            done = distributed.all_gather_objects(load_level_codes(level_path(out, level)) if main else None)[0]
            start_codes = done if done is not None else (prompts[level] if prompts else None)
            bar = tqdm(total=total, initial=0 if start_codes is None else start_codes.shape[1], unit="tok",
                       desc=f"level {level}", disable=not (progress and main), dynamic_ncols=True)

            def save(codes: torch.Tensor, level: int = level, total: int = total, bar: tqdm = bar) -> None:
                everyone = torch.cat(distributed.all_gather_objects(codes.cpu()))
                if main:
                    save_level_codes(level_path(out, level), everyone, total)
                bar.update(min(codes.shape[1], total) - bar.n)

            if start_codes is None or start_codes.shape[1] < total:
                codes = sample_level(prior, total, _rows_of(labels[level], rows), seed=request.seed * 3 + level,
                                     prompt=None if start_codes is None else start_codes[rows],
                                     upper_codes=upper, hop_fraction=request.hop_fraction,
                                     filters=request.filters(level, bundle.upsampling_temperature),
                                     batch=len(share), sample_ids=torch.arange(share.start, share.stop),
                                     compile=compile, on_window=save)
            else:
                codes = start_codes[rows].to(device)
            bar.close()
            upper = codes
            everyone = torch.cat(distributed.all_gather_objects(codes.cpu()))
            if not main:
                continue
            with torch.no_grad():
                audio = vq.decode(everyone.to(next(vq.parameters()).device), level, dtype=bundle.dtype)
                audio = audio[..., :n_samples].cpu().numpy()
            for i in range(request.n):
                written.append(save_audio(out / f"sample-{i}-level{level}.wav", audio[i], rate))
            stems = [f"sample-{i}-lyrics" for i in range(request.n)]
            if level == 2 and request.lyrics and prior.config.n_tokens and \
                    not all((out / f"{stem}.json").is_file() for stem in stems):  # done by an earlier run: same codes
                written += _align(prior, everyone.to(device), labels[2], request, out, song_length, rate, stems,
                                  song_start=song_start)
        return written


def _song_start(bundle: Bundle, request: SampleRequest, song_seconds: float) -> float:
    """Seconds into the song (`song_seconds` long) where the clip begins: as asked; else the model's default (its
    manifest's `song_start`) moved earlier where the song would end before the clip does; else, and when continuing
    a prompt (the prompt is a song's beginning), 0."""
    if request.song_start is not None:
        return request.song_start
    if request.prompt is not None or not bundle.song_start:
        return 0.0
    return min(bundle.song_start, max(0.0, song_seconds - request.duration))


def _rows_of(labels: Labels | Callable[[int], Labels] | None, rows: slice):
    """The labels (fixed, or a function of a window's first sample) of some of the request's samples."""
    if labels is None or isinstance(labels, Labels):
        return labels if labels is None else labels.rows(rows)
    return lambda offset: labels(offset).rows(rows)
