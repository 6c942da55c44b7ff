"""openjukebox: Jukebox (hierarchical VQ-VAE + transformer priors) on today's PyTorch, on CPU or GPU.

    from openjukebox import Jukebox
    Jukebox.load().sample("songs/", duration=10)      # the embedded model, offline

The names below are imported on first use (PEP 562), so `import openjukebox` and the CLI's `--help` stay fast.
"""

from importlib import import_module

from .errors import OpenJukeboxError
from .version import __version__

# public name → the module that defines it
_EXPORTS = {
    "Jukebox": ".jukebox",
    "Composition": ".compose",
    "Bundle": ".bundle",
    "load_bundle": ".bundle",
    "VQVAE": ".vqvae.model",
    "VQVAEConfig": ".vqvae.config",
    "load_vqvae": ".vqvae.loading",
    "train_vqvae": ".vqvae.training",
    "Prior": ".prior.model",
    "PriorConfig": ".prior.model",
    "Labels": ".prior.conditioning",
    "LabelEncoder": ".labels",
    "train_prior": ".prior.training",
    "SampleRequest": ".sample.request",
    "sample": ".sample.pipeline",
    "Filters": ".sample.request",
    "sample_level": ".sample.ancestral",
    "load_audio": ".audio",
    "save_audio": ".audio",
}

__all__ = ["OpenJukeboxError", "__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'openjukebox' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
