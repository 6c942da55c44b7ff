"""Measuring a VQ-VAE on held-out music: the paper's Table 1 metrics per level."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.dataset import AudioFolder
from .losses import spectral_energies
from .model import VQVAE


def evaluation_window(model: VQVAE, seconds: float = 4.0) -> int:
    """Window length for evaluation: the training crop, or `seconds` if longer, a multiple of the top hop."""
    top = model.hop_lengths[-1]
    return max(model.config.sample_length, -(-round(seconds * model.config.sample_rate) // top) * top)


@torch.no_grad()
def evaluate_vqvae(model: VQVAE, dataset: AudioFolder, windows_per_file: int = 8, batch_size: int = 8,
                   window: int | None = None) -> dict:
    """Per level: spectral convergence (dB), L2 (mean squared error), codebook usage (fraction of codes used
    anywhere in the set) and perplexity (nan without quantisation), on channel-averaged evenly spaced windows.
    Each level's reconstruction is the model's own (a single hierarchical autoencoder's level l decodes the codes
    of levels ≥ l), with its noise fill when it has one (noise_fill.py), as `decode` gives it.

    Spectral convergence pools the whole set, 10·log10(Σ‖|S| − |Ŝ|‖² / Σ‖|S|‖²), rather than averaging
    per-window dB: a near-silent window (an intro, a fade-out) has a ratio of noise floor to nothing, tens of dB,
    and would otherwise dominate the mean.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    window = window or evaluation_window(model)
    windows = dataset.windows(window, windows_per_file)
    levels = model.config.levels
    spectral_error = [0.0] * levels
    spectral_reference = [0.0] * levels
    sq_error = [0.0] * levels
    counts = [torch.zeros(model.config.codebook_size, dtype=torch.long) for _ in range(levels)]
    for start in range(0, len(windows), batch_size):
        part = windows[start:start + batch_size]
        audio = torch.from_numpy(np.stack([dataset.crop(i, o, window).mean(0, keepdims=True) for i, o in part]))
        audio = audio.to(device)
        out = model(audio)  # eval mode: the codebooks do not move
        for level in range(levels):
            codes, recon = out.codes[level], model.with_noise_fill(out.reconstructions[level], level)
            error, reference = spectral_energies(audio, recon, model.config.metric_stft)
            spectral_error[level] += float(error.sum())
            spectral_reference[level] += float(reference.sum())
            sq_error[level] += float(((recon - audio) ** 2).mean(dim=(1, 2)).sum())
            counts[level] += torch.bincount(codes.flatten().cpu(), minlength=model.config.codebook_size)
    model.train(was_training)
    result = []
    for level in range(levels):
        probs = counts[level].double() / counts[level].sum()
        result.append({
            "level": level,
            "hop_length": model.hop_lengths[level],
            "spectral_convergence_db": 10 * math.log10(max(spectral_error[level], 1e-24) / spectral_reference[level])
            if spectral_reference[level] > 0 else math.nan,
            "l2": sq_error[level] / len(windows),
            "codebook_usage": float((counts[level] > 0).double().mean()) if model.config.quantise else math.nan,
            "perplexity": float(torch.exp(-(probs * torch.log(probs + 1e-12)).sum()))
            if model.config.quantise else math.nan,
        })
    return {"windows": len(windows), "window_seconds": window / model.config.sample_rate, "levels": result}


def flatten_metrics(report: dict) -> dict[str, float]:
    """{'sc_db_0': …, 'l2_0': …, 'usage_0': …} for logs."""
    out = {}
    for entry in report["levels"]:
        l = entry["level"]
        out[f"eval_sc_db_{l}"] = entry["spectral_convergence_db"]
        out[f"eval_l2_{l}"] = entry["l2"]
        out[f"eval_usage_{l}"] = entry["codebook_usage"]
    return out
