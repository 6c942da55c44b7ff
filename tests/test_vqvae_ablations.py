"""The paper's VQ-VAE ablations (section 5.4) as configurations: each file of configs/ablations changes exactly its
field; no restarts means a dead code stays dead; no quantisation passes the encoder output through and has no codes;
a single hierarchical autoencoder chains its levels (an upper level's codes depend on the lower level's encoder,
unlike separate autoencoders) and is trained through every level."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from openjukebox.config_file import differences
from openjukebox.errors import CodesError
from openjukebox.vqvae.bottleneck import Codebook
from openjukebox.vqvae.config import NoiseFillSetting, preset, with_config_file
from openjukebox.vqvae.loading import load_vqvae
from openjukebox.vqvae.model import VQVAE
from openjukebox.vqvae.training import train_vqvae

ABLATIONS = Path(__file__).resolve().parents[1] / "configs" / "ablations"
EXPECTED = {"codebook-256": {"codebook_size": 256}, "codebook-2048": {"codebook_size": 2048},
            "no-quantisation": {"quantise": False}, "no-restarts": {"restart_threshold": 0.0},
            "no-spectral-loss": {"spectral_weight": 0.0}, "single-autoencoder": {"hierarchical": True}}


def test_each_ablation_file_changes_exactly_its_field():
    assert {p.stem for p in ABLATIONS.glob("*.toml")} == set(EXPECTED)
    base = preset("small")
    for name, fields in EXPECTED.items():
        config = with_config_file(base, ABLATIONS / f"{name}.toml")
        assert config == dataclasses.replace(base, **fields)
        assert len(differences(base.to_dict(), config.to_dict())) == 1


def test_without_restarts_an_unused_code_is_never_replaced():
    """Two codes near the data, one far away: with the threshold at 1 the far code's count decays below it and
    is restarted; at 0 (the ablation) it stays where it was, however long it goes unused."""
    data = torch.randn(256, 4) * 0.1
    for threshold, restarted in ((1.0, True), (0.0, False)):
        codebook = Codebook(3, 4, ema_decay=0.5, restart_threshold=threshold)
        codebook.initialise(data)
        far = torch.full((4,), 100.0)
        with torch.no_grad():
            codebook.codebook[2] = codebook.ema_sum[2] = far
        total = sum(float(codebook.ema_update(data, codebook.nearest(data))) for _ in range(5))
        assert (total > 0) == restarted
        assert torch.equal(codebook.codebook[2], far) != restarted


def tiny(**fields) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(dataclasses.replace(preset("tiny"), **fields))


def test_without_quantisation_the_latents_go_straight_to_the_decoder():
    model = tiny(quantise=False).train()
    assert len(model.codebooks) == 0
    audio = torch.randn(2, 1, 2048) * 0.1
    out = model(audio)
    for level, recon in enumerate(out.reconstructions):
        expected = model.decoders[level](model.encoders[level](audio))
        torch.testing.assert_close(recon, expected)
        assert float(out.levels[level].commit) == 0.0
    with pytest.raises(CodesError, match="without quantisation"):
        model.encode(audio)


def test_a_run_without_quantisation_trains_saves_and_loads(music_dir, tmp_path):
    run = tmp_path / "continuous"
    train_vqvae(music_dir, run, "tiny", steps=2, batch_size=2, save_every=2, progress=False,
                config=ABLATIONS / "no-quantisation.toml")
    model, step = load_vqvae(run)
    assert step == 2 and not model.config.quantise


def test_separate_autoencoders_keep_their_fingerprint():
    """The switches are hashed only when on, and the decoders' own loss settings and the noise fill never (they do not
    change the codes): a model made before they existed keeps its fingerprint, so its code caches and bundles stay
    valid."""
    model = tiny()
    config = {k: v for k, v in model.config.to_dict().items()
              if k not in ("quantise", "hierarchical", "log_spectral_weight", "waveform_cutoff_hz", "noise_fill")}
    assert model.fingerprint() != tiny(hierarchical=True).fingerprint()
    assert model.fingerprint() == tiny(log_spectral_weight=1.0).fingerprint()
    assert model.fingerprint() == tiny(waveform_cutoff_hz=2000.0).fingerprint()
    assert model.fingerprint() == tiny(noise_fill=NoiseFillSetting()).fingerprint()
    import hashlib
    import json

    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for codebook in model.codebooks:
        h.update(codebook.codebook.float().numpy().tobytes())
    assert model.fingerprint() == h.hexdigest()[:16]


def test_a_single_autoencoder_chains_its_levels():
    audio = torch.randn(1, 1, 4096) * 0.1
    for hierarchical in (False, True):
        model = tiny(hierarchical=hierarchical).train()
        model(audio)  # initialises the codebooks from this audio
        model.eval()
        before = model.encode(audio, chunk_seconds=None)
        with torch.no_grad():
            first = model.encoders[0] if hierarchical else model.encoders[0][0]
            for p in first.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        after = model.encode(audio, chunk_seconds=None)
        assert not torch.equal(before[0], after[0])
        # separate autoencoders: the top level has an encoder of its own; a single one: it reads level 0's latents
        assert torch.equal(before[2], after[2]) != hierarchical


def test_a_single_autoencoder_trains_every_level_through_one_reconstruction():
    model = tiny(hierarchical=True).train()
    audio = torch.randn(2, 1, 4096) * 0.1
    out = model(audio)
    out.loss.backward()
    for level in range(3):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders[level].parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoders[level].parameters())
    model.eval()
    codes = model.encode(audio, chunk_seconds=None)
    with torch.no_grad():
        top_alone = model(audio).reconstructions[2]  # the top level's reconstruction uses only its own codes
    torch.testing.assert_close(model.decode(codes[2], 2, chunk_seconds=None), top_alone, atol=1e-5, rtol=0)


def test_variants_share_one_audio_cache(music_dir, tmp_path, monkeypatch):
    """The reproduction trains seven variants on the same music: it is decoded once."""
    from openjukebox.data import dataset

    shared = tmp_path / "audio-cache"
    train_vqvae(music_dir, tmp_path / "a", "tiny", steps=1, batch_size=2, progress=False, audio_cache=shared)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded the music again")

    monkeypatch.setattr(dataset, "load_audio", no_decoding)
    train_vqvae(music_dir, tmp_path / "b", "tiny", steps=1, batch_size=2, progress=False, audio_cache=shared,
                config=ABLATIONS / "no-restarts.toml")
    assert not (tmp_path / "b" / "cache").exists() and load_vqvae(tmp_path / "b")[0].config.restart_threshold == 0
