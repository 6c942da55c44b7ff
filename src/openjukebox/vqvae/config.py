"""VQ-VAE hyperparameters as a dataclass, with the named presets.

`paper` holds the released Jukebox VQ-VAE's values (paper Table 4 and compat/released.py), so
its weights can later be loaded unchanged. Every preset keeps three levels with hop lengths 8, 32, 128.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..config_file import ConfigSource, check_fields, config_fields, merge_config
from ..errors import ConfigError
from ..fileio import atomic_write_text


@dataclass(frozen=True)
class STFTSetting:
    n_fft: int
    hop_length: int
    win_length: int


@dataclass(frozen=True)
class NoiseFillSetting:
    """Where and how finely a decoder's missing treble noise is put back (vqvae/noise_fill.py)."""
    from_hz: float = 1500.0  # bands from here to the Nyquist frequency are filled; nothing below changes
    bands_per_octave: int = 3
    context_frames: int = 2  # the frames before this one that predict its level (causal: no noise before an attack)
    n_fft: int = 1024  # the STFT's size; its hop is a quarter of it


@dataclass(frozen=True)
class VQVAEConfig:
    sample_rate: int = 44100
    # Strided (kernel 4, stride 2) convs per encoder block; level l stacks blocks 0..l, so hop(l) = 2**sum(downs[:l+1]).
    downs: tuple[int, ...] = (3, 2, 2)
    emb_width: int = 64
    codebook_size: int = 2048
    width: int = 32
    depth: int = 4
    # Width and depth of a whole level are multiplied by these (released: level 0 twice as wide and deep).
    level_multipliers: tuple[int, ...] = (2, 1, 1)
    dilation_growth: int = 3
    # Dilation is growth**(d % cycle); None means no cycle (the released model).
    dilation_cycle: int | None = None
    reverse_decoder_dilation: bool = True
    commit_beta: float = 0.02
    ema_decay: float = 0.99
    # A code whose EMA usage count falls below this is restarted from a random encoder output.
    restart_threshold: float = 1.0
    spectral_weight: float = 1.0
    # Weight of the log-magnitude spectral loss (losses.log_spectral_loss; 0: none, the paper's). The linear losses
    # weigh a bin by its energy and barely see the quiet bins where a recording's noise and air are; this one weighs
    # each by its ratio (tried on the embedded model: docs/embedded-model.md, "Version 7"). It trains the decoders
    # only: it does not change the codes, and a VQ-VAE's fingerprint leaves it out.
    log_spectral_weight: float = 0.0
    # The waveform (squared-error) loss looks only below this frequency in Hz (0: the whole band, the paper's).
    # Above a few kHz most of a recording is noise whose samples no decoder can predict, and squared error asks
    # for silence there (noise of the right level but another phase costs twice as much); the magnitude losses
    # alone then ask for its level. It trains the decoders only: a fingerprint leaves it out. docs/training.md.
    waveform_cutoff_hz: float = 0.0
    # Weight of the L-infinity term of the released model's "lmix" reconstruction loss (L2 + 0.02 L-inf).
    linf_weight: float = 0.0
    stft_settings: tuple[STFTSetting, ...] = (
        STFTSetting(2048, 240, 1200),
        STFTSetting(1024, 120, 600),
        STFTSetting(512, 50, 240),
    )
    # The STFT used for the spectral-convergence metric.
    metric_stft: STFTSetting = STFTSetting(1024, 256, 1024)
    # Training crop length in samples (paper: 393216; must be a multiple of the top hop length).
    sample_length: int = 393216
    learning_rate: float = 3e-4
    # Ablations of the paper's section 5.4 (configs/ablations/). Without quantisation the encoder's output goes
    # straight to its decoder: Table 2's upper bound, a model with no codes for a prior. `hierarchical` makes one
    # autoencoder in the style of VQ-VAE-2 (Table 3, Figure 4) instead of three separate ones: level l encodes
    # level l−1's latents, and the decoder runs from the top level down, adding each lower level's vectors.
    # (restart_threshold 0 turns the restarts of Table 1 off; spectral_weight 0 drops the spectral loss.)
    quantise: bool = True
    hierarchical: bool = False
    # Decoding adds back, as shaped noise, the treble that each level's decoder leaves out, at the level predicted
    # from what it decoded (vqvae/noise_fill.py; fitted by `openjukebox vqvae noise-fill`, not by training). None:
    # none, the paper's. It acts after the decoders: the codes and the fingerprint do not change.
    noise_fill: NoiseFillSetting | None = None

    def __post_init__(self) -> None:
        check_fields(self, "VQ-VAE config", ("sample_rate", "emb_width", "codebook_size", "width", "depth",
                                             "dilation_growth", "sample_length", "learning_rate"))
        if len(self.downs) != len(self.level_multipliers):
            raise ConfigError("VQ-VAE config: downs and level_multipliers must have one entry per level")
        for name in ("emb_width", "codebook_size", "width", "depth", "sample_rate", "sample_length"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"VQ-VAE config: {name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.waveform_cutoff_hz:  # `not` so that NaN is refused too
            raise ConfigError(f"VQ-VAE config: waveform_cutoff_hz must be 0 (the whole band) or a frequency in Hz, "
                              f"got {self.waveform_cutoff_hz}")
        fill = self.noise_fill
        if fill is not None and not (0 < fill.from_hz < self.sample_rate / 2 and fill.bands_per_octave > 0
                                     and fill.context_frames >= 0 and fill.n_fft >= 16 and fill.n_fft % 4 == 0):
            raise ConfigError(f"VQ-VAE config: noise_fill needs 0 < from_hz < {self.sample_rate / 2:g} (Nyquist), "
                              f"bands_per_octave > 0, context_frames >= 0 and n_fft a multiple of 4 of at least 16, "
                              f"got {fill}")
        if self.sample_length % self.hop_lengths[-1]:
            raise ConfigError(
                f"VQ-VAE config: sample_length {self.sample_length} must be a multiple of the top hop length "
                f"{self.hop_lengths[-1]}"
            )

    @property
    def levels(self) -> int:
        return len(self.downs)

    @property
    def hop_lengths(self) -> tuple[int, ...]:
        return tuple(2 ** sum(self.downs[: level + 1]) for level in range(self.levels))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VQVAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"VQ-VAE config: unknown fields {sorted(unknown)} (written by a newer openjukebox?)")
        d = dict(d)
        for key in ("downs", "level_multipliers"):
            if key in d:
                d[key] = tuple(d[key])
        if "stft_settings" in d:
            d["stft_settings"] = tuple(STFTSetting(**s) for s in d["stft_settings"])
        if "metric_stft" in d:
            d["metric_stft"] = STFTSetting(**d["metric_stft"])
        try:
            if d.get("noise_fill") is not None:
                d["noise_fill"] = NoiseFillSetting(**d["noise_fill"])
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"VQ-VAE config: {e}") from None

    def to_json(self) -> str:
        return json.dumps({"kind": "vqvae", **self.to_dict()}, indent=2) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> VQVAEConfig:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not a valid JSON config ({e})") from None
        if not isinstance(d, dict) or d.pop("kind", None) != "vqvae":
            raise ConfigError(f"{path}: not a VQ-VAE config")
        return cls.from_dict(d)


# 22.05 kHz keeps the tiny and small models cheap on a CPU; hops stay 8/32/128 as in every preset.
_SMALL_STFT = (STFTSetting(1024, 120, 600), STFTSetting(512, 60, 300), STFTSetting(256, 25, 120))

PRESETS: dict[str, VQVAEConfig] = {
    "tiny": VQVAEConfig(
        sample_rate=16000,
        emb_width=16,
        codebook_size=64,
        width=8,
        depth=2,
        level_multipliers=(1, 1, 1),
        stft_settings=(STFTSetting(256, 32, 128), STFTSetting(128, 16, 64)),
        metric_stft=STFTSetting(256, 64, 256),
        sample_length=4096,
        learning_rate=2e-3,
    ),
    "small": VQVAEConfig(
        sample_rate=22050,
        emb_width=32,
        codebook_size=512,
        width=32,
        depth=3,
        # The released (2, 1, 1) makes level 0 cost 8x a level above on CPU; (1, 1, 1) keeps an hour's training.
        level_multipliers=(1, 1, 1),
        stft_settings=_SMALL_STFT,
        metric_stft=STFTSetting(512, 128, 512),
        sample_length=16384,
        learning_rate=1e-3,
    ),
    "paper": VQVAEConfig(linf_weight=0.02),
}


def preset(name: str, **overrides) -> VQVAEConfig:
    """A named preset, optionally with some fields replaced."""
    if name not in PRESETS:
        raise ConfigError(f"unknown VQ-VAE preset '{name}'; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def with_config_file(config: VQVAEConfig, source: ConfigSource | None) -> VQVAEConfig:
    """`config` with the fields of a JSON/TOML file (or mapping) laid over it."""
    fields, where = config_fields(source)
    if not fields:
        return config
    return VQVAEConfig.from_dict(merge_config(config.to_dict(), fields, where))
