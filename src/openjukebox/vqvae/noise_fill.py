"""Noise fill: the treble noise that a recording has and a VQ-VAE's decoder leaves out, put back at its level.

A deterministic decoder trained with squared error and magnitude losses returns a recording's treble several dB
low: above a few kHz much of it is noise (air, reverb, bows and breath, cymbals) whose waveform no decoder can
predict from codes, and the losses pay less for leaving it out than for guessing it. Audio codecs meet the same loss
with noise filling (AAC's perceptual noise substitution, Opus's band folding): they keep a band's level and
synthesise noise in it. Here the level is predicted instead of sent: a linear map, fitted by least squares on
recordings and their reconstructions (`fit_noise_fill`), from the decoded audio's log band energies (every band,
in this frame and the `context_frames` before it: causal, so that no noise comes before an attack) to the
recording's log energy in each band above `from_hz`. Where a decoded band is quieter than its prediction, white
noise shaped to the difference is added; nothing else changes, and nothing below `from_hz`.

The noise is one fixed sequence (seed 0) for every row of a batch, so a decode is deterministic and a song's audio
does not depend on what it was batched with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .config import NoiseFillSetting

ANALYSIS_FROM_HZ = 50.0  # the features' lowest band edge: all the bins below it make the first band
NOISE_SEED = 0


def band_matrix(sample_rate: int, n_fft: int, from_hz: float, per_octave: int, below: bool) -> torch.Tensor:
    """(bands, n_fft // 2 + 1) 0/1: which bins each band holds. Bands are `per_octave` to the octave from
    `from_hz` to the Nyquist frequency (the last one takes the remainder); `below` puts the bins under `from_hz`
    into the first band instead of leaving them out. Bands that hold no bin (narrower than a bin) are dropped."""
    freqs = torch.arange(n_fft // 2 + 1) * sample_rate / n_fft
    count = max(1, math.ceil(per_octave * math.log2(sample_rate / 2 / from_hz)))
    edges = from_hz * 2.0 ** (torch.arange(count + 1) / per_octave)
    index = (torch.bucketize(freqs, edges, right=True) - 1).clamp(max=count - 1)
    if below:
        index = index.clamp(min=0)
    member = index[None, :] == torch.arange(count)[:, None]
    return member[member.any(dim=1)].float()


class NoiseFill(nn.Module):
    """One level's noise fill. `weight` (fill bands, features) is the fitted map. Until `fit_noise_fill` sets it
    (and `fitted`), its zeros would predict an energy of 1 in every band, far over any music's treble, so decoding
    uses a fill only once fitted (VQVAE.with_noise_fill)."""

    def __init__(self, setting: NoiseFillSetting, sample_rate: int) -> None:
        super().__init__()
        self.setting = setting
        n_fft = setting.n_fft
        self.register_buffer("analysis", band_matrix(sample_rate, n_fft, ANALYSIS_FROM_HZ,
                                                     setting.bands_per_octave, below=True), persistent=False)
        self.register_buffer("fill", band_matrix(sample_rate, n_fft, setting.from_hz, setting.bands_per_octave,
                                                 below=False), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        features = self.analysis.shape[0] * (setting.context_frames + 1) + 1
        self.register_buffer("weight", torch.zeros(self.fill.shape[0], features))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def _stft(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) → (batch, bins, frames) complex."""
        n_fft = self.setting.n_fft
        return torch.stft(audio, n_fft, n_fft // 4, window=self.window.to(audio.dtype), return_complex=True)

    @staticmethod
    def _energy(bands: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
        """Mean power per band: (batch, bands, frames)."""
        power = spectrum.abs() ** 2
        return torch.einsum("kb,nbt->nkt", bands.to(power.dtype), power) / bands.sum(1).to(power.dtype)[:, None]

    def features(self, spectrum: torch.Tensor) -> torch.Tensor:
        """(batch, frames, features): the decoded audio's log band energies in this frame and the context frames
        before it (the first frames repeat frame 0), then a constant 1 for the intercept."""
        log_energy = self._energy(self.analysis, spectrum).clamp(min=1e-10).log()
        context = self.setting.context_frames
        padded = torch.cat([log_energy[..., :1].expand(-1, -1, context), log_energy], dim=-1)
        frames = log_energy.shape[-1]
        stacked = torch.cat([padded[..., k:k + frames] for k in range(context + 1)], dim=1)
        return torch.cat([stacked, stacked.new_ones(stacked.shape[0], 1, frames)], dim=1).transpose(1, 2)

    def target(self, spectrum: torch.Tensor) -> torch.Tensor:
        """(batch, frames, fill bands): log energies of a recording's bands that the map predicts."""
        return self._energy(self.fill, spectrum).clamp(min=1e-10).log().transpose(1, 2)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) decoded audio → the same with noise added where its treble is short. The noise's
        spectrum is made once; the songs are filled one at a time, since the STFTs of a batch of long songs would
        take gigabytes at once."""
        samples = audio.shape[-1]
        n_fft = self.setting.n_fft
        if samples < n_fft:
            return audio
        generator = torch.Generator(device=audio.device).manual_seed(NOISE_SEED)
        noise = self._stft(torch.randn(1, samples, generator=generator, device=audio.device))
        noise_energy = self._energy(self.fill, noise).mean(dim=-1, keepdim=True).clamp(min=1e-20)  # (1, bands, 1)
        filled = []
        for x in audio[:, 0].float().split(1):
            spectrum = self._stft(x)
            predicted = (self.features(spectrum) @ self.weight.float().T).exp().transpose(1, 2)  # (1, bands, frames)
            short = (predicted - self._energy(self.fill, spectrum)).clamp(min=0)
            gain = torch.einsum("kb,nkt->nbt", self.fill, (short / noise_energy).sqrt())
            filled.append(x + torch.istft(noise * gain, n_fft, n_fft // 4, window=self.window, length=samples))
        return torch.cat(filled)[:, None].to(audio.dtype)


@torch.no_grad()
def fit_noise_fill(fill: NoiseFill, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], ridge: float = 0.1,
                   silent_power: float = 1e-8) -> list[float]:
    """Fit `fill`'s map by ridge regression on (recording, reconstruction) pairs, each (samples,) mono audio, and
    mark it fitted. Frames whose reconstruction is silent (mean power under `silent_power`) are left out: they say
    nothing about the music's treble. Returns the fit's root-mean-square error per fill band, in nats of energy
    (1 nat ≈ 4.3 dB)."""
    features = fill.weight.shape[1]
    gram = torch.zeros(features, features, dtype=torch.float64)
    cross = torch.zeros(features, fill.weight.shape[0], dtype=torch.float64)
    targets_sq = torch.zeros(fill.weight.shape[0], dtype=torch.float64)
    frames = 0
    for recording, reconstruction in pairs:
        decoded = fill._stft(reconstruction.double()[None].cpu())
        loud = (decoded.abs() ** 2).mean(dim=1)[0] > silent_power
        a = fill.features(decoded)[0][loud]
        b = fill.target(fill._stft(recording.double()[None].cpu()))[0][loud]
        gram += a.T @ a
        cross += a.T @ b
        targets_sq += (b ** 2).sum(0)
        frames += int(loud.sum())
    if frames == 0:
        raise ValueError("no audible frames to fit the noise fill on")
    weight = torch.linalg.solve(gram + ridge * torch.eye(features, dtype=torch.float64), cross)
    # Σ(b − a·w)² = Σb² − 2 w·(aᵀb) + wᵀ(aᵀa)w, per band, without keeping the frames.
    residual = targets_sq - 2 * (weight * cross).sum(0) + (weight * (gram @ weight)).sum(0)
    fill.weight.copy_(weight.T.to(fill.weight.dtype))
    fill.fitted.fill_(True)
    return [math.sqrt(max(float(r), 0.0) / frames) for r in residual]
