"""Which models this installation can use: the embedded one shipped inside the package, and bundles in the
cache, so that sampling needs no path, no download and no GPU on the first try."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CheckpointError

EMBEDDED = "embedded"
EMBEDDED_PATH = Path(__file__).parent / "embedded"
MANIFEST = "manifest.json"  # every bundle's manifest; defined here (not in bundle.py) so that listing needs no torch
CACHE_ENV = "OPENJUKEBOX_CACHE"


@dataclass(frozen=True)
class ReleasedFile:
    path: str  # relative to the base URL, and to the cache directory
    size: int | None = None  # bytes, when known
    sha256: str | None = None  # hex digest, when known


# OpenAI published neither sizes nor digests for these files and they are not known here, so both are None:
# such files are checked only against the length the server announces.
FILES: dict[str, ReleasedFile] = {
    "vqvae": ReleasedFile("5b/vqvae.pth.tar"),
    "upsampler_level_0": ReleasedFile("5b/prior_level_0.pth.tar"),
    "upsampler_level_1": ReleasedFile("5b/prior_level_1.pth.tar"),
    "prior_5b": ReleasedFile("5b/prior_level_2.pth.tar"),
    "prior_5b_lyrics": ReleasedFile("5b_lyrics/prior_level_2.pth.tar"),
    "prior_1b_lyrics": ReleasedFile("1b_lyrics/prior_level_2.pth.tar"),
}

# The three released models share the VQ-VAE and the two upsamplers; only the top prior differs.
MODELS: dict[str, tuple[str, ...]] = {
    model: ("vqvae", "upsampler_level_0", "upsampler_level_1", f"prior_{model}")
    for model in ("5b", "5b_lyrics", "1b_lyrics")
}


def cache_dir() -> Path:
    """$OPENJUKEBOX_CACHE, else the XDG cache folder, so the gigabytes land where users expect caches to be."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser().absolute() / "openjukebox"


@dataclass
class ModelInfo:
    name: str
    path: Path
    kind: str  # "embedded", "bundle", or "original checkpoint" (downloaded, to be converted with convert-openai)
    artists: list[str] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)
    megabytes: float = 0.0


def _size(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def _bundle_info(name: str, path: Path, kind: str) -> ModelInfo:
    """A bundle's entry; a broken one is listed as broken, with why, rather than hiding the others."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        table = manifest.get("label_table") or {}
        artists = [str(a) for a in manifest.get("artists") or sorted(table.get("artists", {}))]
        genres = [str(g) for g in manifest.get("genres") or sorted(table.get("genres", {}))]
    except (OSError, ValueError, AttributeError, TypeError) as e:
        return ModelInfo(name, path, f"broken: unreadable {MANIFEST} ({type(e).__name__})", megabytes=_size(path))
    return ModelInfo(name, path, kind, artists, genres, _size(path))


def embedded_model() -> Path:
    """The bundle shipped in the package: the default of `sample`."""
    if not (EMBEDDED_PATH / MANIFEST).is_file():
        raise CheckpointError(f"{EMBEDDED_PATH}: the embedded model is missing from this installation "
                              "(reinstall openjukebox, or pass --model)")
    return EMBEDDED_PATH


def _cached_bundles(cache: Path) -> list[Path]:
    if not cache.is_dir():
        return []
    return sorted(p.parent for p in [*cache.glob(f"*/{MANIFEST}"), *cache.glob(f"*/*/{MANIFEST}")])


def list_models(cache: str | os.PathLike | None = None) -> list[ModelInfo]:
    """The embedded model, every bundle in the cache folder (one or two levels down), and the released original
    checkpoint files downloaded there."""
    cache = Path(cache).expanduser().absolute() if cache is not None else cache_dir()
    models = [_bundle_info(EMBEDDED, embedded_model(), EMBEDDED)]
    models += [_bundle_info(str(p.relative_to(cache)), p, "bundle") for p in _cached_bundles(cache)]
    for name, entry in FILES.items():
        path = cache / entry.path
        if path.is_file():
            models.append(ModelInfo(name, path, "original checkpoint", megabytes=_size(path)))
    return models


def resolve_model(model: str | os.PathLike | None, cache: str | os.PathLike | None = None) -> Path:
    """A bundle's folder from what a user typed: nothing or 'embedded' is the embedded model, an existing folder
    is itself, and otherwise a bundle of that name in the cache folder."""
    if model is None or str(model) == EMBEDDED:
        return embedded_model()
    if Path(model).expanduser().exists():
        return Path(model).expanduser()
    cache = Path(cache).expanduser().absolute() if cache is not None else cache_dir()
    if (cache / model / MANIFEST).is_file():
        return cache / model
    raise CheckpointError(f"no model '{model}': not a folder, nor a bundle in {cache} (see 'openjukebox models'), "
                          f"nor a released model ({', '.join(MODELS)})")
