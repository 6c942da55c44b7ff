"""Representations for music research (`embed`): the pooled features against the prior's layer outputs computed by
hand window by window, properties (batching changes nothing, max ≥ mean, later layers never run), the resumable
job over files, and its one-line refusals. Parity of the layer outputs with the original code is in
test_released_prior_parity.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_runner import run_cli
from openjukebox import representations
from openjukebox.audio import load_audio, save_audio
from openjukebox.bundle import init_bundle, load_bundle
from openjukebox.errors import ConfigError
from openjukebox.jukebox import Jukebox
from openjukebox.representations import load_features


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Jukebox:
    """Random weights of the tiny preset: 16 kHz, a top prior of 3 layers over windows of 64 codes (8 kHz·s)."""
    return Jukebox(load_bundle(init_bundle("tiny", tmp_path_factory.mktemp("bundle") / "tiny", seed=3)))


def song(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    tones = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 2000, 4))
    return (0.1 * tones + 0.02 * rng.standard_normal(len(t)))[None].astype(np.float32)


def test_mean_features_are_the_layer_outputs_averaged_over_every_window(tiny):
    audio = song(3.3, 0)  # 413 top-level codes: six full windows of 64 and a last one of 29
    bundle, layer = tiny.bundle, 2
    prior, hop = bundle.priors[2], bundle.priors[2].config.hop_length
    codes = bundle.vqvae.encode(torch.from_numpy(audio)[None], levels=[2])[0]
    assert codes.shape[1] % prior.config.n_ctx != 0
    rows = []
    for start in range(0, codes.shape[1], prior.config.n_ctx):  # one window at a time, by hand
        labels = replace(bundle.labels(None, None, audio.shape[1], 1), offset=torch.tensor([start * hop]))
        rows.append(prior.activations(codes[:, start:start + prior.config.n_ctx], labels, layer)[0])
    by_hand = torch.cat(rows)  # (codes, width)
    assert by_hand.shape == (codes.shape[1], prior.config.transformer.width)
    np.testing.assert_allclose(tiny.embed(audio, layer), by_hand.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(tiny.embed(audio, layer, pool="max"), by_hand.amax(0).numpy(), atol=1e-5)


def test_batching_does_not_change_the_features_and_max_bounds_mean(tiny):
    audio = song(4.0, 1)
    one = tiny.embed(audio, batch=1)
    np.testing.assert_allclose(tiny.embed(audio, batch=5), one, atol=1e-5)
    assert np.all(tiny.embed(audio, pool="max") >= one - 1e-6)
    assert one.shape == (tiny.bundle.priors[2].config.transformer.width,)


def test_only_the_layers_up_to_the_chosen_one_run(tiny):
    blocks = tiny.bundle.priors[2].transformer.blocks
    ran = []
    hooks = [block.register_forward_hook(lambda m, a, o, d=d: ran.append(d)) for d, block in enumerate(blocks)]
    try:
        tiny.embed(song(1.0, 2), layer=1)
    finally:
        for hook in hooks:
            hook.remove()
    assert ran and set(ran) == {0}


def test_seconds_keeps_only_the_start(tiny):
    audio = song(4.0, 3)
    np.testing.assert_allclose(tiny.embed(audio, seconds=1.5), tiny.embed(audio[:, :24000]), atol=1e-6)


def test_default_layer_is_the_middle_and_bounds_are_checked(tiny):
    audio = song(1.0, 4)
    depth = tiny.bundle.priors[2].config.transformer.depth
    np.testing.assert_array_equal(tiny.embed(audio), tiny.embed(audio, layer=depth // 2))
    for layer in (0, depth + 1):
        with pytest.raises(ConfigError, match=f"layers 1 to {depth}"):
            tiny.embed(audio, layer=layer)
    with pytest.raises(ConfigError, match="pool"):
        tiny.embed(audio, pool="median")


@pytest.fixture
def folder(tmp_path) -> Path:
    music = tmp_path / "music"
    for i, seconds in enumerate((2.0, 3.5, 1.2)):
        save_audio(music / f"song{i}.wav", song(seconds, 10 + i, 22050), 22050)  # resampled to 16 kHz on loading
    return music


def test_files_job_equals_embed_per_file_and_resumes(tiny, folder, tmp_path, monkeypatch):
    files = sorted(folder.glob("*.wav"))
    out = tmp_path / "features.npz"
    compute, calls, die_at = representations.song_features, [], [2]

    def counted(*args, **kwargs):
        if len(calls) == die_at[0]:
            raise KeyboardInterrupt  # the run dies here
        calls.append(1)
        return compute(*args, **kwargs)

    monkeypatch.setattr(representations, "song_features", counted)
    with pytest.raises(KeyboardInterrupt):
        tiny.embed_files(folder, out)
    assert not out.exists() and len(list((tmp_path / "features.npz.parts").glob("*.npy"))) == 2

    die_at[0] = None
    tiny.embed_files(folder, out)  # goes on: only the third file is computed
    assert len(calls) == 3 and not (tmp_path / "features.npz.parts").exists()
    features, paths, settings = load_features(out)
    assert paths == [str(f.resolve()) for f in files] and features.shape == (3, 32)
    assert settings["layer"] == 1 and settings["pool"] == "mean" and settings["model"] == tiny.bundle.fingerprint()
    for row, file in zip(features, files):
        np.testing.assert_allclose(row, tiny.embed(load_audio(file, 16000)), atol=1e-6)

    extra = tmp_path / "more.wav"
    save_audio(extra, song(1.0, 20, 22050), 22050)
    tiny.embed_files([folder, extra], out)  # files already in OUT are not computed again
    assert len(calls) == 4 and load_features(out)[0].shape == (4, 32)
    with pytest.raises(ConfigError, match="other settings"):
        tiny.embed_files(folder, out, pool="max")


def test_bad_inputs_are_refused_before_anything_is_written(tiny, folder, tmp_path):
    out = tmp_path / "f.npz"
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    with pytest.raises(Exception, match="broken.wav"):
        tiny.embed_files(folder, out)
    (folder / "broken.wav").unlink()
    save_audio(folder / "tiny.wav", np.zeros((1, 50), dtype=np.float32), 22050)
    with pytest.raises(ConfigError, match="shorter than one top-level code"):
        tiny.embed_files(folder, out)
    with pytest.raises(ConfigError, match=r"\.npz"):
        tiny.embed_files(folder, tmp_path / "features.csv")
    assert not out.exists() and not (tmp_path / "f.npz.parts").exists()


def test_cli_embeds_with_the_embedded_model(folder, tmp_path):
    out = tmp_path / "features.npz"
    result = run_cli("embed", folder / "song0.wav", folder / "song2.wav", "--out", out)
    assert result.returncode == 0, result.stderr
    features, paths, settings = load_features(out)
    assert features.shape == (2, 128) and np.isfinite(features).all() and settings["layer"] == 3
    assert "[2/2]" in result.stderr
    result = run_cli("embed", folder, "--out", out, "--layer", 9)
    assert result.returncode != 0 and "layers 1 to 6" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_released_5b_gives_layer_36_of_72_by_default():
    """The full-size 5B top prior, built on the meta device (shapes only, no memory): the default layer is the
    36th of 72, the one Castellon et al. used, and only the blocks up to it run."""
    from openjukebox.compat.released import RELEASED, prior_config, vqvae_config
    from openjukebox.prior.conditioning import Labels
    from openjukebox.prior.model import Prior

    with torch.device("meta"):
        prior = Prior(prior_config(RELEASED["prior_5b"], vqvae_config(RELEASED["vqvae"]))).eval()
        ran = []
        for d, block in enumerate(prior.transformer.blocks):
            block.register_forward_hook(lambda m, a, o, d=d: ran.append(d))
        zeros = torch.zeros(1, dtype=torch.long)
        labels = Labels(zeros, torch.zeros(1, prior.config.max_genres, dtype=torch.long), zeros, zeros)
        features = prior.activations(torch.zeros(1, prior.config.n_ctx, dtype=torch.long), labels)
    assert prior.config.transformer.depth == 72 and ran == list(range(36))
    assert features.shape == (1, 8192, 4800)
