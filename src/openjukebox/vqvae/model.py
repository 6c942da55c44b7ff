"""The hierarchical VQ-VAE: three independent encoder/codebook/decoder stacks over the same audio (or, as an
ablation, one VQ-VAE-2-style autoencoder whose levels are chained: VQVAEConfig.hierarchical).

Level l compresses audio by hop_lengths[l] (8, 32, 128). Long audio is encoded and decoded in overlapping
chunks so memory stays bounded whatever the length; the overlap (`margin`) covers the convolutions'
receptive field so chunk seams are not audible.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CodesError
from .blocks import Decoder, DecoderBlock, Encoder, EncoderBlock
from .bottleneck import Codebook, QuantiseResult
from .config import NoiseFillSetting, VQVAEConfig
from .losses import log_spectral_loss, low_passed, reconstruction_loss, spectral_convergence_db, spectral_loss
from .noise_fill import NoiseFill


# The ablation switches at their defaults (the model as released), read from the config's own defaults.
ABLATION_DEFAULTS = {f.name: f.default for f in fields(VQVAEConfig) if f.name in ("quantise", "hierarchical")}
# Settings of the decoders' training alone, and of the noise fill after them: they do not change the codes, so the
# fingerprint leaves them out.
DECODER_ONLY_FIELDS = ("log_spectral_weight", "waveform_cutoff_hz", "noise_fill")


@dataclass
class LevelMetrics:
    reconstruction: torch.Tensor
    spectral: torch.Tensor
    commit: torch.Tensor
    usage: torch.Tensor
    perplexity: torch.Tensor
    dead_codes: torch.Tensor
    spectral_convergence_db: torch.Tensor


@dataclass
class VQVAEOutput:
    loss: torch.Tensor
    reconstructions: list[torch.Tensor]  # per level, (batch, 1, samples)
    levels: list[LevelMetrics] = field(default_factory=list)
    codes: list[torch.Tensor] = field(default_factory=list)  # per level, (batch, tokens); (batch, 0) unquantised


class VQVAE(nn.Module):
    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> VQVAE:
        """A trained VQ-VAE: a run folder, one of its checkpoints, or a bundle's vqvae folder (vqvae/loading.py)."""
        from .loading import load_vqvae

        return load_vqvae(path, device)[0]

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.codes_frozen = False  # train_decoders_only: no codebook updates while training
        c = config
        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in range(c.levels):
            width = c.width * c.level_multipliers[level]
            depth = c.depth * c.level_multipliers[level]
            if c.hierarchical:  # one chain: block l downsamples level l−1's latents (raw audio for level 0)
                self.encoders.append(EncoderBlock(1 if level == 0 else c.emb_width, c.emb_width, width, depth,
                                                  c.downs[level], c.dilation_growth, c.dilation_cycle))
                self.decoders.append(DecoderBlock(c.emb_width, width, depth, c.downs[level], c.dilation_growth,
                                                  c.dilation_cycle, c.reverse_decoder_dilation))
            else:
                self.encoders.append(Encoder(level, c.downs, c.emb_width, width, depth, c.dilation_growth,
                                             c.dilation_cycle))
                self.decoders.append(Decoder(level, c.downs, c.emb_width, width, depth, c.dilation_growth,
                                             c.dilation_cycle, c.reverse_decoder_dilation))
        if c.hierarchical:
            self.out = nn.Conv1d(c.emb_width, 1, kernel_size=3, padding=1)
        self.codebooks = nn.ModuleList(Codebook(c.codebook_size, c.emb_width, c.ema_decay, c.restart_threshold)
                                       for _ in range(c.levels) if c.quantise)
        if c.noise_fill is not None:
            self.noise_fills = nn.ModuleList(NoiseFill(c.noise_fill, c.sample_rate) for _ in range(c.levels))

    @property
    def hop_lengths(self) -> tuple[int, ...]:
        return self.config.hop_lengths

    def train_decoders_only(self, levels: Sequence[int]) -> None:
        """Fine-tune these levels' decoders alone: the encoders, the codebooks (no EMA steps, no restarts) and the
        other decoders stay as they are, so every song's codes and the fingerprint do too, and priors trained on
        those codes still fit. (Hierarchical: level 0's decoder includes the shared output layer.)"""
        self.codes_frozen = True
        self.requires_grad_(False)
        for level in levels:
            self.decoders[level].requires_grad_(True)
        if self.config.hierarchical and 0 in levels:
            self.out.requires_grad_(True)

    def forward(self, audio: torch.Tensor) -> VQVAEOutput:
        """Training/evaluation pass on mono (batch, 1, samples) audio, samples a multiple of the top hop.

        In training mode the codebooks take an EMA step; the loss sums every level's reconstruction,
        spectral and commitment terms (the levels are independent, so this is the same as training three
        models side by side). A hierarchical model's loss has one reconstruction, from every level.
        """
        c = self.config
        total = audio.new_zeros((), dtype=torch.float32)
        out = VQVAEOutput(loss=total, reconstructions=[])
        update = self.training and not self.codes_frozen
        quantised = [self._bottleneck(level, z, update) for level, z in enumerate(self._latents(audio))]
        for level, q in enumerate(quantised):
            # A hierarchical model is trained on its full reconstruction (every level); level l's own
            # reconstruction (from levels ≥ l alone) is only measured.
            trained = not c.hierarchical or level == 0
            with torch.set_grad_enabled(torch.is_grad_enabled() and trained):
                recon = self._decode_from([r.quantised for r in quantised], level)
            if c.waveform_cutoff_hz:
                rec_loss = reconstruction_loss(low_passed(audio, c.waveform_cutoff_hz, c.sample_rate),
                                               low_passed(recon, c.waveform_cutoff_hz, c.sample_rate), c.linf_weight)
            else:
                rec_loss = reconstruction_loss(audio, recon, c.linf_weight)
            spec_loss = spectral_loss(audio, recon, c.stft_settings)
            if trained:
                total = total + rec_loss + c.spectral_weight * spec_loss
                if c.log_spectral_weight:
                    total = total + c.log_spectral_weight * log_spectral_loss(audio, recon, c.stft_settings)
            total = total + c.commit_beta * q.commit_loss
            with torch.no_grad():
                sc = spectral_convergence_db(audio, recon.detach(), c.metric_stft).nanmean()
            out.reconstructions.append(recon)
            out.codes.append(q.codes)
            out.levels.append(LevelMetrics(rec_loss, spec_loss, q.commit_loss, q.usage, q.perplexity,
                                           q.dead_codes, sc))
        out.loss = total
        return out

    def _latents(self, audio: torch.Tensor, levels: int | None = None) -> list[torch.Tensor]:
        """Encoder outputs (batch, emb_width, samples / hop) of the first `levels` levels (default all)."""
        levels = self.config.levels if levels is None else levels
        if not self.config.hierarchical:
            return [self.encoders[level](audio) for level in range(levels)]
        latents, z = [], audio
        for level in range(levels):
            z = self.encoders[level](z)
            latents.append(z)
        return latents

    def _bottleneck(self, level: int, z: torch.Tensor, update: bool) -> QuantiseResult:
        if self.config.quantise:
            return self.codebooks[level](z, update=update)
        nan, zero = z.new_full((), float("nan")), z.new_zeros(())
        return QuantiseResult(z, z.new_zeros(z.shape[0], 0, dtype=torch.long), zero, nan, nan, zero)

    def _decode_from(self, vectors: list[torch.Tensor | None], level: int) -> torch.Tensor:
        """Audio (batch, 1, samples) from level `level`'s vectors (batch, emb_width, tokens). Hierarchical: from
        the vectors of every level ≥ `level` (the top first; each level's decoder block output plus the next
        level's vectors), the lower levels left out."""
        if not self.config.hierarchical:
            return self.decoders[level](vectors[level])
        h = None
        for l in reversed(range(self.config.levels)):
            if l >= level:
                h = vectors[l] if h is None else h + vectors[l]
            h = self.decoders[l](h)
        return self.out(h)

    def _pad_to_hop(self, audio: torch.Tensor) -> torch.Tensor:
        top = self.hop_lengths[-1]
        return F.pad(audio, (0, -audio.shape[-1] % top))

    @torch.no_grad()
    def _encode_levels(self, audio: torch.Tensor, levels: list[int]) -> list[torch.Tensor]:
        """(batch, 1, samples) → each level's (batch, ceil(samples / hop)) codes, in one piece (memory grows with
        length). Each encoder runs once, whatever the levels asked: a non-hierarchical level's encoder reads the
        audio alone, a hierarchical one the level below's output."""
        if not self.config.quantise:
            raise CodesError("this VQ-VAE has no codes: it was trained without quantisation (an ablation)")
        padded = self._pad_to_hop(audio)
        if self.config.hierarchical:
            latents = dict(enumerate(self._latents(padded, max(levels) + 1)))
        else:
            latents = {level: self.encoders[level](padded) for level in set(levels)}
        n = audio.shape[-1]
        return [self.codebooks[level](latents[level], update=False).codes[:, :-(-n // self.hop_lengths[level])]
                for level in levels]

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, levels: list[int] | None = None, chunk_seconds: float | None = 20.0,
               margin_seconds: float = 2.0) -> list[torch.Tensor]:
        """Codes of each requested level (default all) for (batch, 1, samples) audio.

        With `chunk_seconds`, audio is cut into chunks encoded with `margin_seconds` of context on each side
        that is then dropped; `None` encodes in one piece. Every level's codes of a chunk come from one pass.
        """
        levels = list(range(self.config.levels)) if levels is None else levels
        if chunk_seconds is None:
            return self._encode_levels(audio, levels)
        chunk = self._round_up(chunk_seconds, self.hop_lengths[-1])
        margin = self._round_up(margin_seconds, self.hop_lengths[-1])
        n = audio.shape[-1]
        pieces: list[list[torch.Tensor]] = [[] for _ in levels]
        for start in range(0, n, chunk):
            lo, hi = max(0, start - margin), min(n, start + chunk + margin)
            for piece, level, codes in zip(pieces, levels, self._encode_levels(audio[..., lo:hi], levels)):
                hop = self.hop_lengths[level]
                first = (start - lo) // hop
                piece.append(codes[:, first:first + -(-(min(start + chunk, n) - start) // hop)])
        return [torch.cat(piece, dim=1) for piece in pieces]

    def _round_up(self, seconds: float, multiple: int) -> int:
        samples = max(1, round(seconds * self.config.sample_rate))
        return -(-samples // multiple) * multiple

    def check_codes(self, codes: torch.Tensor) -> None:
        if codes.dtype.is_floating_point:
            raise CodesError(f"codes must be integers, got {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.config.codebook_size):
            raise CodesError(
                f"code values must lie in [0, {self.config.codebook_size - 1}] for this model, "
                f"found {int(codes.min())}..{int(codes.max())}"
            )

    @torch.no_grad()
    def decode_level(self, codes: torch.Tensor, level: int) -> torch.Tensor:
        """(batch, tokens) codes → (batch, 1, tokens × hop) audio, in one piece."""
        self.check_codes(codes)
        vectors: list[torch.Tensor | None] = [None] * self.config.levels
        vectors[level] = self.codebooks[level].lookup(codes.long())
        return self._decode_from(vectors, level)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, level: int, chunk_seconds: float | None = 20.0,
               margin_seconds: float = 2.0, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Audio (batch, 1, tokens × hop) float32 from one level's codes, in overlapping chunks unless chunk_seconds
        is None. With `dtype` (bfloat16 or float16) the convolutions compute in it (autocast): about 3× faster on
        a CPU with AVX512-BF16, at about 27 dB signal-to-error against float32 (docs/sampling.md). A model with a
        fitted noise fill adds it to the whole song once decoded (noise_fill.py)."""
        self.check_codes(codes)
        reduced = dtype not in (None, torch.float32)
        with torch.autocast(codes.device.type, dtype=dtype if reduced else torch.bfloat16, enabled=reduced):
            audio = self._decode_chunks(codes, level, chunk_seconds, margin_seconds).float()
        return self.with_noise_fill(audio, level)

    def with_noise_fill_setting(self, setting: NoiseFillSetting | None) -> VQVAE:
        """A copy with this noise fill setting (None: none) and the same encoders, codebooks and decoders; its
        fill unfitted. Training a decoder makes the fitted fill stale, so a run started from a model drops it."""
        copy = VQVAE(replace(self.config, noise_fill=setting)).to(next(self.parameters()).device)
        kept = {k: v for k, v in self.state_dict().items() if not k.startswith("noise_fills.")}
        copy.load_state_dict(kept, strict=setting is None)
        return copy.train(self.training)

    def with_noise_fill(self, audio: torch.Tensor, level: int) -> torch.Tensor:
        """(batch, 1, samples) decoded by level `level` → with that level's fitted noise fill added; unchanged when
        the model has none (every released model) or it was never fitted."""
        if self.config.noise_fill is None or not bool(self.noise_fills[level].fitted):
            return audio
        return self.noise_fills[level](audio)

    def _decode_chunks(self, codes: torch.Tensor, level: int, chunk_seconds: float | None,
                       margin_seconds: float) -> torch.Tensor:
        if chunk_seconds is None:
            return self.decode_level(codes, level)
        hop = self.hop_lengths[level]
        chunk = self._round_up(chunk_seconds, hop) // hop
        margin = self._round_up(margin_seconds, hop) // hop
        n = codes.shape[-1]
        pieces = []
        for start in range(0, n, chunk):
            lo, hi = max(0, start - margin), min(n, start + chunk + margin)
            audio = self.decode_level(codes[:, lo:hi], level)
            first = (start - lo) * hop
            pieces.append(audio[..., first:first + (min(start + chunk, n) - start) * hop])
        return torch.cat(pieces, dim=-1)

    def fingerprint(self) -> str:
        """Identifies the codebooks codes refer to: a hash of the config and every level's codebook. The ablation
        switches count only when on, so that models from before they existed keep their fingerprint."""
        config = {k: v for k, v in self.config.to_dict().items()
                  if k not in DECODER_ONLY_FIELDS and (k not in ABLATION_DEFAULTS or v != ABLATION_DEFAULTS[k])}
        h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        for codebook in self.codebooks:
            h.update(codebook.codebook.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]
