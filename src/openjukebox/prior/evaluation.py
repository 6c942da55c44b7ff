"""Teacher-forced likelihood of held-out codes under a prior, beside the unigram baseline of the same codes."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..codes import load_codes
from ..errors import OpenJukeboxError
from ..labels import LabelEncoder
from ..vqvae.code_cache import CodeCache, load_code_cache
from .model import Prior
from .training import encoded_lyrics, sample_windows


@torch.no_grad()
def evaluate_prior(prior: Prior, cache: CodeCache, windows: int = 32, batch_size: int = 8, seed: int = 0) -> dict:
    """NLL in nats per token and bits per second of audio over `windows` random windows; the unigram baseline is
    the entropy of the code frequencies of those same windows (what a model ignoring context would score).
    A lyrics prior is also scored with each window given the lyrics of the window before it in its batch: how much
    lower its NLL is with its own is how much it listens to the lyrics (a model deaf to them scores the same)."""
    config = prior.config
    device = prior.pos_emb.device
    generator = np.random.default_rng(seed)
    total_nll, other_lyrics_nll, tokens = 0.0, 0.0, 0
    counts = torch.zeros(config.bins, dtype=torch.float64)
    remaining = windows
    lyrics = encoded_lyrics(cache, config)
    while remaining > 0:
        n = min(batch_size, remaining)
        batch = sample_windows(cache, config.level, config.n_ctx, n, generator, config.level < 2,
                               config.max_genres, lyrics, config.n_tokens)
        upper = None if batch.upper is None else batch.upper.to(device)
        codes = batch.codes.to(device)
        total_nll += prior.loss(codes, batch.labels.to(device), upper).item() * codes.numel()
        if config.n_tokens:
            others = replace(batch.labels, lyrics=batch.labels.lyrics.roll(1, 0))
            other_lyrics_nll += prior.loss(codes, others.to(device), upper).item() * codes.numel()
        tokens += codes.numel()
        counts += torch.bincount(batch.codes.flatten(), minlength=config.bins).double()
        remaining -= n
    probs = counts / counts.sum()
    unigram = float(-(probs[probs > 0] * probs[probs > 0].log()).sum())
    nats = total_nll / tokens
    tokens_per_second = cache.codes.sample_rate / config.hop_length
    report = {"level": config.level, "tokens": tokens, "nats_per_token": nats,
              "bits_per_second": nats / math.log(2) * tokens_per_second,
              "unigram_nats_per_token": unigram,
              "unigram_bits_per_second": unigram / math.log(2) * tokens_per_second}
    if config.n_tokens:
        report["other_lyrics_nats_per_token"] = other_lyrics_nll / tokens
    return report


def load_evaluation_codes(codes: str | os.PathLike, prior: Prior, vocab_file: Path,
                          vqvae_fingerprint: str | None = None) -> CodeCache:
    """A codes cache directory, or a codes .npz from 'vqvae encode', labelled with the model's vocabulary (the
    cache's own when the model has none); refused when made by another VQ-VAE than the one whose codes the prior
    learned (`vqvae_fingerprint`, when known)."""
    if not vocab_file.is_file() and not Path(codes).is_file():
        cache = load_code_cache(codes)
        _check_source(codes, cache.codes.fingerprint, vqvae_fingerprint)
        return cache
    if not vocab_file.is_file():
        raise OpenJukeboxError(f"{vocab_file.parent}: has no label vocabulary ({vocab_file.name})")
    try:
        labels = LabelEncoder.for_level(json.loads(vocab_file.read_text()), prior.config.level, vocab_file)
    except ValueError:
        raise OpenJukeboxError(f"{vocab_file}: corrupt label vocabulary (not JSON)") from None
    codes_file = load_code_cache(codes).codes if not Path(codes).is_file() else load_codes(codes)
    _check_source(codes, codes_file.fingerprint, vqvae_fingerprint)
    if codes_file.codebook_size != prior.config.bins:
        raise OpenJukeboxError(f"{codes}: codes of a {codes_file.codebook_size}-entry codebook, this prior models "
                               f"{prior.config.bins}")
    return CodeCache(codes_file, labels)


def _check_source(codes: str | os.PathLike, made_by: str, learned: str | None) -> None:
    if learned is not None and made_by != learned:
        raise OpenJukeboxError(f"{codes}: codes made by another VQ-VAE (fingerprint {made_by}) than the one this prior "
                               f"learned ({learned}); encode the audio with that VQ-VAE")
