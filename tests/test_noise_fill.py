"""The noise fill (vqvae/noise_fill.py): the treble a decoder leaves out, put back as noise at a predicted level.

Checked against hand-made signals whose missing treble is known: a decoder that drops a recording's noise gets it
back at the right level, only above `from_hz`; nothing is added where the decoded audio is already loud enough; a
song's audio does not depend on its batch. Then as a user meets it: `openjukebox vqvae noise-fill` on a trained
VQ-VAE keeps its codes and fingerprint and changes its decoded audio only in the treble."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from cli_runner import run_cli
from openjukebox.audio import load_audio
from openjukebox.errors import ConfigError
from openjukebox.vqvae.config import NoiseFillSetting, VQVAEConfig
from openjukebox.vqvae.loading import load_vqvae
from openjukebox.vqvae.noise_fill import NoiseFill, band_matrix, fit_noise_fill
from openjukebox.vqvae.noise_fill_fitting import add_noise_fill
from openjukebox.vqvae.training import train_vqvae

SR = 16000
SETTING = NoiseFillSetting(from_hz=2000.0, bands_per_octave=1, context_frames=1, n_fft=512)


def test_bands_hold_each_bin_once_and_start_where_asked():
    bins = torch.arange(257) * SR / 512
    fill = band_matrix(SR, 512, 2000.0, 1, below=False)
    assert fill.shape == (2, 257)  # 2-4 kHz and 4-8 kHz (the Nyquist bin joins the last)
    assert torch.equal(fill[0].bool(), (bins >= 2000) & (bins < 4000))
    assert torch.equal(fill[1].bool(), bins >= 4000)
    analysis = band_matrix(SR, 512, 50.0, 3, below=True)
    assert torch.equal(analysis.sum(0), torch.ones(257))  # every bin in exactly one band, the lowest ones too
    assert analysis[0, 0] == 1


def _song(seconds: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(recording, reconstruction): a 440 Hz tone whose loudness changes every half second, and the recording
    with white noise 30 dB under the tone added; the 'decoder' returns the tone alone."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SR)
    t = torch.arange(n) / SR
    loudness = torch.rand(int(seconds * 2) + 1, generator=g).repeat_interleave(SR // 2)[:n] * 0.3 + 0.02
    tone = loudness * torch.sin(2 * math.pi * 440 * t)
    noise = torch.randn(n, generator=g) * loudness / math.sqrt(2) * 10 ** (-30 / 20)
    return tone + noise, tone


def _band_db(audio: torch.Tensor, lo: float, hi: float) -> float:
    spectrum = torch.fft.rfft(audio.double())
    freqs = torch.fft.rfftfreq(len(audio), 1 / SR)
    return 10 * math.log10(float((spectrum.abs()[(freqs >= lo) & (freqs < hi)] ** 2).sum()))


def test_a_fitted_fill_puts_back_the_noise_a_decoder_dropped_at_its_level_and_only_above_from_hz():
    fill = NoiseFill(SETTING, SR)
    errors = fit_noise_fill(fill, [_song(8.0, seed) for seed in range(4)])
    assert bool(fill.fitted) and len(errors) == 2
    recording, decoded = _song(6.0, seed=9)  # a song it did not see
    filled = fill(decoded[None, None])[0, 0]
    for lo, hi in ((2000, 4000), (4000, 8000)):
        # The missing noise is back within 2 dB (the decoded tone has nothing there: -inf before).
        assert abs(_band_db(filled, lo, hi) - _band_db(recording, lo, hi)) < 2.0
    added = filled - decoded
    assert _band_db(added, 0, 1500) < _band_db(added, 2000, 8000) - 40  # nothing below from_hz but leakage


def test_nothing_is_added_where_the_decoded_treble_is_as_loud_as_predicted():
    fill = NoiseFill(SETTING, SR)
    fill.weight[:, -1] = -60.0  # predicts e^-60 of power in every treble band, under anything audible
    fill.fitted.fill_(True)
    _, decoded = _song(2.0, seed=1)
    assert torch.equal(fill(decoded[None, None])[0, 0], decoded)


def test_a_songs_noise_does_not_depend_on_its_batch():
    fill = NoiseFill(SETTING, SR)
    fit_noise_fill(fill, [_song(4.0, 0)])
    a, b = _song(3.0, 1)[1], _song(3.0, 2)[1]
    together = fill(torch.stack([a, b])[:, None])
    assert torch.allclose(together[0, 0], fill(a[None, None])[0, 0], atol=1e-6)
    assert torch.allclose(together[1, 0], fill(b[None, None])[0, 0], atol=1e-6)


def test_the_setting_is_checked_and_saved_with_the_config():
    config = VQVAEConfig(noise_fill=SETTING)
    saved = json.loads(config.to_json())
    assert VQVAEConfig.from_dict({k: v for k, v in saved.items() if k != "kind"}) == config
    assert VQVAEConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "noise_fill"}).noise_fill is None
    with pytest.raises(ConfigError, match="noise_fill"):
        VQVAEConfig(sample_rate=16000, noise_fill=NoiseFillSetting(from_hz=9000.0))


def test_vqvae_noise_fill_keeps_the_codes_and_changes_only_the_treble(tmp_path, tiny_run, music_dir):
    out = tmp_path / "filled"
    result = run_cli("vqvae", "noise-fill", "--model", tiny_run, "--data", music_dir, "--out", out,
                     "--seconds", 2, "--from-hz", 2000)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    before, _ = load_vqvae(tiny_run)
    after, _ = load_vqvae(out)
    assert after.config.noise_fill.from_hz == 2000.0
    assert after.fingerprint() == before.fingerprint()
    path = sorted(music_dir.glob("*.wav"))[0]
    clip = torch.from_numpy(np.ascontiguousarray(load_audio(path, sample_rate=SR, mono=True)[:, :2 * SR]))[None]
    codes = before.encode(clip)
    assert all(torch.equal(a, b) for a, b in zip(codes, after.encode(clip)))
    plain, filled = before.decode(codes[0], 0)[0, 0], after.decode(codes[0], 0)[0, 0]
    assert torch.equal(after.decoders[0](after.codebooks[0].lookup(codes[0])), before.decoders[0](
        before.codebooks[0].lookup(codes[0])))
    added = filled - plain
    assert _band_db(added, 2000, 8000) > _band_db(plain, 2000, 8000) - 30  # it did add treble
    assert _band_db(added, 0, 1500) < _band_db(added, 2000, 8000) - 40


def test_vqvae_noise_fill_refuses_to_write_over_a_model(tmp_path, tiny_run, music_dir):
    out = tmp_path / "filled"
    add_noise_fill(tiny_run, music_dir, out, seconds=1.0, windows_per_file=1)
    written = (out / "model.safetensors").read_bytes()
    result = run_cli("vqvae", "noise-fill", "--model", tiny_run, "--data", music_dir, "--out", out)
    assert result.returncode != 0 and "already holds a model" in result.stderr and len(result.stderr.splitlines()) == 1
    assert (out / "model.safetensors").read_bytes() == written
    with pytest.raises(ConfigError, match="from_hz"):
        add_noise_fill(tiny_run, music_dir, tmp_path / "other", from_hz=9000.0)
    assert not (tmp_path / "other").exists()


def test_fine_tuning_a_decoder_drops_the_fill_fitted_on_the_old_one(tmp_path, tiny_run, music_dir):
    filled = tmp_path / "filled"
    add_noise_fill(tiny_run, music_dir, filled, seconds=1.0, windows_per_file=1)
    train_vqvae(music_dir, tmp_path / "tuned", init=filled, decoders=[0], steps=1, batch_size=2, save_every=1,
                progress=False)
    tuned, _ = load_vqvae(tmp_path / "tuned")
    assert tuned.config.noise_fill is None and not any(k.startswith("noise_fills.") for k in tuned.state_dict())
    assert tuned.fingerprint() == load_vqvae(tiny_run)[0].fingerprint()


def test_vqvae_eval_measures_the_audio_with_its_fill_as_decode_gives_it(tmp_path, tiny_run, music_dir):
    from openjukebox.data.dataset import AudioFolder
    from openjukebox.vqvae.evaluation import evaluate_vqvae

    filled = tmp_path / "filled"
    add_noise_fill(tiny_run, music_dir, filled, seconds=1.0, windows_per_file=1, from_hz=2000.0)
    dataset = AudioFolder(music_dir, SR, tmp_path / "cache", None)
    plain, with_fill = (evaluate_vqvae(load_vqvae(model)[0], dataset, windows_per_file=1)["levels"]
                        for model in (tiny_run, filled))
    for a, b in zip(plain, with_fill):
        assert a["codebook_usage"] == b["codebook_usage"] and a["perplexity"] == b["perplexity"]  # the same codes
        assert a["l2"] != b["l2"]  # ... decoded with noise added
