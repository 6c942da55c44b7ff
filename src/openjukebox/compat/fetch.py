"""The released models by name (`5b`, `5b_lyrics`, `1b_lyrics`): downloaded, converted and cached once, so that
`openjukebox sample --model 1b_lyrics --download` goes from nothing to a song.

The converted bundle lives in CACHE/converted/NAME beside the downloaded files (CACHE/5b/..., or CACHE/hf/NAME for
the Hugging Face copy where the original files cannot be reached; kept: they are the source of truth, and a newer
openjukebox may convert them again). Weights stay float32, as released: the
sampling `dtype` casts them when loading. Downloading is never implicit: it is gigabytes, so the caller must ask
(`download=True`; the CLI's `--download`, or its question on a terminal).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..download import Progress, download_model
from ..errors import CheckpointError
from ..models import MANIFEST, cache_dir
from .convert import convert_openai
from .hf import convert_hf
from .released import TOP_PRIORS

# Bytes to download for each, measured on files of the released sizes in the original format
# (benchmarks/full_size_conversion.py, docs/released-models.md).
DOWNLOAD_GB = {"5b": 16.9, "5b_lyrics": 18.0, "1b_lyrics": 10.9}


class NotDownloaded(CheckpointError):
    """A released model asked for by name that is not here yet, and downloading it was not asked for."""


def released_bundle(name: str, cache: str | os.PathLike | None = None, download: bool = False,
                    progress: Progress | None = None) -> Path:
    """The bundle of released model `name`: converted already, or (with `download`) fetched and converted now."""
    cache = Path(cache).expanduser().absolute() if cache is not None else cache_dir()
    bundle = cache / "converted" / name
    if (bundle / MANIFEST).is_file():
        return bundle
    if not download:
        raise NotDownloaded(f"{name}: a released model not downloaded here yet; add --download to fetch it (about "
                            f"{DOWNLOAD_GB[name]:.0f} GB) into {cache} and convert it")
    files = download_model(name, cache, progress)
    tmp = cache / "converted" / f".tmp-{name}-{os.getpid()}"  # converted whole, then renamed: never half a bundle
    shutil.rmtree(tmp, ignore_errors=True)
    if "config.json" in files:  # the Hugging Face copy: no source of the original files answered
        convert_hf(files["config.json"].parent, tmp)
    else:
        convert_openai(tmp, files["vqvae"], {0: files["upsampler_level_0"], 1: files["upsampler_level_1"],
                                             2: files[f"prior_{name}"]}, preset=name)
    os.replace(tmp, bundle)
    return bundle


def is_released_name(model: str | os.PathLike | None) -> bool:
    return isinstance(model, str) and model in TOP_PRIORS and not Path(model).exists()

