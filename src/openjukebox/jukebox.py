"""The one-object Python API: load a bundle, then sample, continue a user's audio, or upsample codes."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from .audio import load_audio
from .bundle import Bundle, load_bundle
from .compat.fetch import is_released_name, released_bundle
from .devices import resolve_device
from .download import Progress
from .errors import ConfigError
from .models import resolve_model
from .representations import embed_files, song_features
from .sample.pipeline import align_audio, sample
from .sample.request import SampleRequest


class Jukebox:
    """`Jukebox.load("bundle").sample(duration=20, out="songs/", artist="...")`: each call is a resumable run."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str | torch.device = "auto",
             dtype: torch.dtype | None = None, download: bool = False, progress: Progress | None = None) -> Jukebox:
        """A bundle folder, a bundle's name in the cache, a released model's name ('5b', '5b_lyrics',
        '1b_lyrics'), or (None) the embedded model, on `device` ("auto": the GPU when there is one, as the CLI's
        --device). A released model not here yet is downloaded and converted only with `download=True` (gigabytes;
        `progress(file, bytes done, total)` hears of it). `dtype=torch.bfloat16` holds the priors in half the
        memory (the released 5B prior needs it on 24 GB GPUs)."""
        return cls(load_bundle(find_model(path, download, progress), resolve_device(device), dtype))

    def sample(self, out: str | os.PathLike, duration: float, progress: bool = True, compile: bool | str = "auto",
               **options) -> list[Path]:
        """New songs; options are those of `SampleRequest` (artist, genres, n, seed, temperature,
        upsampling_temperature, top_k, top_p, hop_fraction, levels, song_seconds, song_start). `compile`: compile the
        per-token step (True), not (False), or where a level is long enough to pay for compiling ("auto"); the codes
        are the same either way."""
        return sample(self.bundle, out, _request(duration=duration, **options), progress, compile)

    def continue_from(self, audio_path: str | os.PathLike, out: str | os.PathLike, duration: float,
                      prompt_seconds: float, progress: bool = True, compile: bool | str = "auto",
                      **options) -> list[Path]:
        """Continue the first `prompt_seconds` of the user's audio to `duration` seconds in total."""
        request = _request(duration=duration, prompt=str(audio_path), prompt_seconds=prompt_seconds, **options)
        return sample(self.bundle, out, request, progress, compile)

    def align(self, audio_path: str | os.PathLike, lyrics: str, out: str | os.PathLike, artist: str | None = None,
              genres: list[str] | None = None, layer: int | None = None, head: int | None = None,
              lyrics_timing: tuple[tuple[float, int], ...] = ()) -> list[Path]:
        """Which words of `lyrics` are sung when in the song at audio_path (needs a lyrics model); `layer` and
        `head` read another attention head than the model's own; `lyrics_timing` (from `read_timed_lyrics`) places
        the model's windows of lyrics."""
        return align_audio(self.bundle, audio_path, lyrics, out, artist, genres, layer=layer, head=head,
                           lyrics_timing=lyrics_timing)

    def upsample(self, out: str | os.PathLike, progress: bool = True, compile: bool | str = "auto") -> list[Path]:
        """Finish a run that stopped at a higher level (e.g. a `levels=[2]` preview) down to level 0."""
        import json

        from .sample.pipeline import REQUEST

        saved = json.loads((Path(out) / REQUEST).read_text())
        return sample(self.bundle, out, replace(SampleRequest(**saved), levels=[2, 1, 0]), progress, compile)

    def encode(self, audio_path: str | os.PathLike) -> list[np.ndarray]:
        """The codes of an audio file at each level, [(1, n/8), (1, n/32), (1, n/128)] int64 for the released hop
        lengths, by the bundle's VQ-VAE (the file is resampled to its rate and made mono)."""
        self.bundle.require([])
        vq = self.bundle.vqvae
        audio = load_audio(audio_path, sample_rate=vq.config.sample_rate, mono=True)
        with torch.no_grad():
            codes = vq.encode(torch.from_numpy(audio)[None].to(next(vq.parameters()).device))
        return [c.cpu().numpy() for c in codes]

    def decode(self, codes: np.ndarray | torch.Tensor, level: int) -> np.ndarray:
        """Audio (batch, samples) float32 at the bundle's sample rate from one level's codes (batch, tokens)."""
        self.bundle.require([])
        vq = self.bundle.vqvae
        codes = torch.as_tensor(codes, dtype=torch.long, device=next(vq.parameters()).device)
        return vq.decode(codes, level, dtype=self.bundle.dtype)[:, 0].cpu().numpy()

    def embed(self, audio: str | os.PathLike | np.ndarray, layer: int | None = None, pool: str = "mean",
              seconds: float | None = None, batch: int = 4) -> np.ndarray:
        """(width,) features of a song for music research (JukeMIR): the top prior's `layer` (1 … depth, default
        the middle one) pooled over time ("mean" or "max"). `audio` is a file, or (channels, samples) at the
        bundle's sample rate; `seconds` keeps only its start (JukeMIR used the first 24 s)."""
        if not isinstance(audio, np.ndarray):
            self.bundle.require([2])
            audio = load_audio(audio, sample_rate=self.bundle.vqvae.config.sample_rate)
        return song_features(self.bundle, np.atleast_2d(audio), layer, pool, batch, seconds)

    def embed_files(self, paths: str | os.PathLike | list[str | os.PathLike], out: str | os.PathLike,
                    layer: int | None = None, pool: str = "mean", seconds: float | None = None, batch: int = 4,
                    progress: Callable[[int, int, Path], None] | None = None) -> Path:
        """`embed` for many files and folders into one .npz (`features` (files, width), `paths`), resumably:
        a stopped run goes on where it stopped, and files already in `out` are not computed again."""
        return embed_files(self.bundle, paths, out, layer, pool, batch, seconds, progress)

    def codes(self, out: str | os.PathLike, level: int) -> np.ndarray:
        """The (n, tokens) codes of one level of a run."""
        with np.load(Path(out) / f"level{level}.npz", allow_pickle=False) as data:
            return data["codes"]


def find_model(model: str | os.PathLike | None, download: bool = False, progress: Progress | None = None) -> Path:
    """The bundle folder a user means: a released model by name (converted once into the cache), else as
    `models.resolve_model` (a folder, a bundle in the cache, or the embedded model)."""
    if is_released_name(model):
        return released_bundle(str(model), download=download, progress=progress)
    return resolve_model(model)


def _request(**options) -> SampleRequest:
    """A SampleRequest, with an unknown option named (and the CLI's spelling of it recognised) instead of a
    TypeError."""
    known = {f.name for f in fields(SampleRequest)}
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; the options are {', '.join(sorted(known))}"
            raise ConfigError(f"unknown sampling option '{name}'{hint}")
    return SampleRequest(**options)
