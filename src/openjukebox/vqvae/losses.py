"""Reconstruction losses and the spectral-convergence metric (paper section 3.1 and Table 1).

Both losses are divided by the batch's own signal scale: the original divides by a dataset-wide "bandwidth"
measured in a pass over the data; the batch's scale needs no such pass and keeps quiet music from being ignored.
"""

from __future__ import annotations

import math

import torch

from .config import STFTSetting

_EPS = 1e-8


def magnitude_spectrogram(audio: torch.Tensor, setting: STFTSetting) -> torch.Tensor:
    """|STFT| of (batch, 1, samples) or (batch, samples) audio → (batch, freqs, frames), in fp32."""
    x = audio.reshape(audio.shape[0], -1).float()
    window = torch.hann_window(setting.win_length, device=x.device)
    spec = torch.stft(x, setting.n_fft, setting.hop_length, setting.win_length, window=window,
                      center=True, return_complex=True)
    return spec.abs()


def reconstruction_loss(target: torch.Tensor, output: torch.Tensor, linf_weight: float = 0.0) -> torch.Tensor:
    """Mean squared error (plus `linf_weight` × mean per-clip peak error, the released "lmix"), relative to
    the batch's mean power."""
    error = (output.float() - target.float()).reshape(target.shape[0], -1)
    power = target.float().pow(2).mean() + _EPS
    loss = error.pow(2).mean() / power
    if linf_weight:
        loss = loss + linf_weight * error.abs().amax(1).mean() / power.sqrt()
    return loss


def low_passed(audio: torch.Tensor, cutoff_hz: float, sample_rate: int) -> torch.Tensor:
    """(..., samples) audio, in fp32, with every frequency above `cutoff_hz` taken out: an ideal filter over the
    whole clip, so that what is left below the cutoff is untouched."""
    spectrum = torch.fft.rfft(audio.float(), dim=-1)
    keep = torch.fft.rfftfreq(audio.shape[-1], 1 / sample_rate, device=audio.device) <= cutoff_hz
    return torch.fft.irfft(spectrum * keep, n=audio.shape[-1], dim=-1)


def spectral_loss(target: torch.Tensor, output: torch.Tensor, settings: tuple[STFTSetting, ...]) -> torch.Tensor:
    """Mean over STFT settings of the per-clip Frobenius norm ‖|STFT(x)| − |STFT(x̂)|‖, relative to the batch's
    mean ‖|STFT(x)|‖."""
    total = target.new_zeros((), dtype=torch.float32)
    for setting in settings:
        s_target = magnitude_spectrogram(target, setting)
        s_output = magnitude_spectrogram(output, setting)
        diff = (s_target - s_output).flatten(1).norm(dim=1).mean()
        total = total + diff / (s_target.flatten(1).norm(dim=1).mean() + _EPS)
    return total / len(settings)


def log_spectral_loss(target: torch.Tensor, output: torch.Tensor, settings: tuple[STFTSetting, ...],
                      floor_db: float = -60.0) -> torch.Tensor:
    """Mean over STFT settings of the mean |log(|S| + f) − log(|Ŝ| + f)| over every bin and frame, f `floor_db`
    under each clip's mean magnitude: every bin counts by its ratio, not its energy, down to the floor, so the quiet
    high bins that hold a recording's noise count as much as its loud partials; under the floor nothing is asked
    (there log would ask for exact silence)."""
    total = target.new_zeros((), dtype=torch.float32)
    for setting in settings:
        s_target = magnitude_spectrogram(target, setting)
        s_output = magnitude_spectrogram(output, setting)
        floor = 10 ** (floor_db / 20) * s_target.mean(dim=(1, 2), keepdim=True) + _EPS
        total = total + (torch.log(s_target + floor) - torch.log(s_output + floor)).abs().mean()
    return total / len(settings)


def spectral_energies(target: torch.Tensor, output: torch.Tensor, setting: STFTSetting) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip (‖|S| − |Ŝ|‖²_F, ‖|S|‖²_F): summed over many clips they give a spectral convergence of the whole set."""
    s_target = magnitude_spectrogram(target, setting).flatten(1)
    s_output = magnitude_spectrogram(output, setting).flatten(1)
    return (s_target - s_output).pow(2).sum(1), s_target.pow(2).sum(1)


def spectral_convergence_db(target: torch.Tensor, output: torch.Tensor, setting: STFTSetting) -> torch.Tensor:
    """Per-clip 20·log10(‖|S| − |Ŝ|‖_F / ‖|S|‖_F) in dB (lower is better), shape (batch,). Silent clips give nan."""
    error, reference = spectral_energies(target, output, setting)
    db = 10 * torch.log10(error.clamp_min(1e-24) / reference.clamp_min(1e-24))
    return torch.where(reference > 0, db, torch.full_like(db, math.nan))
