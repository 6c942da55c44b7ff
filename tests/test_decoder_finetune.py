"""Fine-tuning a trained VQ-VAE's decoders alone (`vqvae train --init --decoders`, here with the log-spectral loss):
only the chosen decoders change, so every song's codes and the fingerprint stay those of the model it started from,
and the priors trained on those codes still fit. Wrong requests are refused in one line before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cli_runner import run_cli
from openjukebox.audio import load_audio
from openjukebox.errors import ConfigError
from openjukebox.vqvae.loading import load_vqvae
from openjukebox.vqvae.training import train_vqvae


def _clip(music_dir, model) -> torch.Tensor:
    path = sorted(music_dir.glob("*.wav"))[0]
    audio = load_audio(path, sample_rate=model.config.sample_rate, mono=True)[:, : model.config.sample_rate]
    return torch.from_numpy(np.ascontiguousarray(audio)).float()[None]


def test_training_one_decoder_changes_it_alone_and_keeps_every_code(tmp_path, tiny_run, music_dir):
    out = tmp_path / "decoder0"
    assert train_vqvae(music_dir, out, init=tiny_run, decoders=[0], steps=2, batch_size=2, save_every=2, lr=1e-3,
                       progress=False, log_spectral_weight=1.0) == 2
    before, _ = load_vqvae(tiny_run)
    after, _ = load_vqvae(out)
    assert after.config.log_spectral_weight == 1.0
    old, new = before.state_dict(), after.state_dict()
    assert old.keys() == new.keys()
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed and all(k.startswith("decoders.0.") for k in changed)
    assert after.fingerprint() == before.fingerprint()

    audio = _clip(music_dir, before)
    codes = before.encode(audio)
    assert all(torch.equal(a, b) for a, b in zip(after.encode(audio), codes))
    assert not torch.equal(after.decode(codes[0], 0), before.decode(codes[0], 0))
    assert torch.equal(after.decode(codes[1], 1), before.decode(codes[1], 1))

    # Resuming asks for the same origin: other decoders are refused, the same request continues.
    with pytest.raises(ConfigError, match="--decoders"):
        train_vqvae(music_dir, out, init=tiny_run, decoders=[1], steps=4, batch_size=2, progress=False)
    assert train_vqvae(music_dir, out, init=tiny_run, decoders=[0], steps=3, batch_size=2, save_every=3,
                       progress=False) == 3


def test_the_command_line_fine_tunes_decoders_from_a_config_file(tmp_path, tiny_run, music_dir):
    (tmp_path / "log.toml").write_text("log_spectral_weight = 0.5\n")
    out = tmp_path / "cli"
    result = run_cli("vqvae", "train", "--data", music_dir, "--out", out, "--init", tiny_run, "--decoders", 0, 2,
                     "--config", tmp_path / "log.toml", "--steps", 1, "--batch-size", 2, "--save-every", 1)
    assert result.returncode == 0, result.stderr
    model, step = load_vqvae(out)
    assert step == 1 and model.config.log_spectral_weight == 0.5


def test_a_band_limited_waveform_loss_trains_the_decoder_and_keeps_the_fingerprint(tmp_path, tiny_run, music_dir):
    out = tmp_path / "cutoff"
    assert train_vqvae(music_dir, out, init=tiny_run, decoders=[0], steps=1, batch_size=2, save_every=1,
                       progress=False, waveform_cutoff_hz=2000.0) == 1
    before, _ = load_vqvae(tiny_run)
    after, _ = load_vqvae(out)
    assert after.config.waveform_cutoff_hz == 2000.0 and after.fingerprint() == before.fingerprint()
    with pytest.raises(ConfigError, match="waveform_cutoff_hz"):
        train_vqvae(music_dir, tmp_path / "negative", init=tiny_run, decoders=[0], steps=1, progress=False,
                    waveform_cutoff_hz=-1.0)
    assert not (tmp_path / "negative").exists()


@pytest.mark.parametrize("args, says", [
    (["--decoders", "0"], "--init"),
    (["--init", "{run}", "--preset", "tiny"], "--preset"),
    (["--init", "{run}", "--decoders", "3"], "0 to 2"),
    (["--init", "{run}", "--config", "{wide}"], "do not fit"),
])
def test_wrong_requests_are_refused_in_one_line_before_writing(tmp_path, tiny_run, music_dir, args, says):
    (tmp_path / "wide.toml").write_text("width = 64\n")
    args = [a.format(run=tiny_run, wide=tmp_path / "wide.toml") for a in args]
    out = tmp_path / "refused"
    result = run_cli("vqvae", "train", "--data", music_dir, "--out", out, "--steps", 1, "--batch-size", 2, *args)
    assert result.returncode != 0 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
