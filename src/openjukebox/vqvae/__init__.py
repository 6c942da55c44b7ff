"""The three-level VQ-VAE of Jukebox (paper section 3, appendix B.1)."""

from .config import PRESETS, STFTSetting, VQVAEConfig, preset
from .model import VQVAE

__all__ = ["PRESETS", "STFTSetting", "VQVAE", "VQVAEConfig", "preset"]
