"""openjukebox: Jukebox (hierarchical VQ-VAE + transformer priors) on today's PyTorch, on CPU or GPU."""

from .errors import OpenJukeboxError

__version__ = "0.1.0"

__all__ = ["OpenJukeboxError", "__version__"]
