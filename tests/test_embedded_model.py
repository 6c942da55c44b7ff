"""The embedded model: shipped in the package, the default of `sample`, and listed by `openjukebox models`."""

import json

import numpy as np
import pytest
import soundfile
import torch

from openjukebox.cli import main
from openjukebox.errors import CheckpointError
from openjukebox.models import EMBEDDED_PATH, list_models, resolve_model


def test_embedded_bundle_is_small_enough_for_the_wheel():
    files = [p for p in EMBEDDED_PATH.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "model.safetensors", "config.json"}
    assert sum(p.stat().st_size for p in files) < 50e6


@pytest.mark.slow
def test_sample_with_no_model_makes_music_through_all_three_levels(tmp_path, capsys):
    """Fast settings, all three levels on CPU: a second of finite, audible audio at the model's rate."""
    out = tmp_path / "first"
    threads = str(torch.get_num_threads())  # in-process: leave the test process's threads as they are
    assert main(["sample", "--duration", "1", "--out", str(out), "--seed", "3", "--device", "cpu",
                 "--threads", threads]) == 0
    wavs = sorted(out.glob("*level0*.wav")) or sorted(out.glob("*.wav"))
    assert wavs, capsys.readouterr().out
    audio, rate = soundfile.read(wavs[0])
    manifest = json.loads((EMBEDDED_PATH / "vqvae" / "config.json").read_text())
    assert rate == manifest["sample_rate"]
    assert len(audio) >= rate * 0.95
    assert np.isfinite(audio).all()
    assert 1e-3 < np.sqrt(np.mean(audio ** 2)) < 1.0


def test_models_lists_the_embedded_model_cached_bundles_and_downloads(tmp_path, capsys):
    from openjukebox.bundle import init_bundle

    init_bundle("tiny", tmp_path / "mine", artists=["ana", "bo"], genres=["folk"])
    (tmp_path / "5b").mkdir()
    (tmp_path / "5b" / "vqvae.pth.tar").write_bytes(b"x" * 10)
    models = {m.name: m for m in list_models(tmp_path)}
    embedded_artists = json.loads((EMBEDDED_PATH / "manifest.json").read_text())["artists"]
    assert models["embedded"].kind == "embedded" and models["embedded"].artists == embedded_artists
    assert models["mine"].kind == "bundle" and models["mine"].artists == ["ana", "bo"]
    assert models["mine"].genres == ["folk"]
    assert models["vqvae"].kind == "original checkpoint"
    assert main(["models", "--cache", str(tmp_path), "--threads", str(torch.get_num_threads())]) == 0
    printed = capsys.readouterr().out
    assert "embedded" in printed and "mine" in printed and "ana, bo" in printed and embedded_artists[1] in printed


def test_model_names_resolve_to_folders(tmp_path):
    from openjukebox.bundle import init_bundle

    init_bundle("tiny", tmp_path / "mine")
    assert resolve_model(None) == EMBEDDED_PATH
    assert resolve_model("embedded") == EMBEDDED_PATH
    assert resolve_model("mine", cache=tmp_path) == tmp_path / "mine"
    assert resolve_model(str(tmp_path / "mine")) == tmp_path / "mine"
    with pytest.raises(CheckpointError, match="no model 'nope'.*openjukebox models"):
        resolve_model("nope", cache=tmp_path)


def test_the_embedded_vqvae_decodes_with_its_noise_fill_above_1500_hz_only():
    """Version 10: each level adds back, as noise, treble its decoder leaves out, and leaves the rest as decoded."""
    from openjukebox.vqvae.loading import load_vqvae

    model, _ = load_vqvae(EMBEDDED_PATH / "vqvae")
    assert model.config.noise_fill is not None and all(bool(f.fitted) for f in model.noise_fills)
    codes = torch.randint(0, model.config.codebook_size, (1, 22050 // 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model.decoders[0](model.codebooks[0].lookup(codes))[0, 0]
    added = model.decode(codes, 0)[0, 0] - plain
    spectrum = np.abs(np.fft.rfft(added.numpy())) ** 2
    freqs = np.fft.rfftfreq(len(added), 1 / model.config.sample_rate)
    assert spectrum[freqs >= 1500].sum() > 0
    assert spectrum[freqs < 1000].sum() < 1e-4 * spectrum[freqs >= 1500].sum()


def test_the_embedded_noise_fill_leaves_silence_silent():
    """The map was fitted on audible frames only; it must not turn a quiet intro or a pause into hiss."""
    from openjukebox.vqvae.loading import load_vqvae

    model, _ = load_vqvae(EMBEDDED_PATH / "vqvae")
    quiet = torch.randn(1, 1, 22050, generator=torch.Generator().manual_seed(0)) * 1e-4  # -80 dBFS
    for level in range(3):
        for audio in (torch.zeros(1, 1, 22050), quiet):
            added = model.with_noise_fill(audio, level) - audio
            assert float(added.pow(2).mean().sqrt()) < 1e-5  # under -100 dBFS


def load_recipe_script(monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_embedded.py"
    spec = importlib.util.spec_from_file_location("train_embedded", path)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # its dataclasses look their module up there
    spec.loader.exec_module(script)
    return script


def test_the_package_manifest_draws_as_its_recipe_says(monkeypatch):
    """scripts/train_embedded.py reproduces the package's model, sampling defaults included: a default chosen by
    measurement (docs/embedded-model.md) is set once, in the recipe, and the package must hold the same."""
    from openjukebox.bundle import load_bundle

    script = load_recipe_script(monkeypatch)
    recipe = script.RECIPES[script.PACKAGE_RECIPE]
    bundle = load_bundle(EMBEDDED_PATH)
    assert bundle.temperature == recipe.temperature
    assert bundle.upsampling_temperature == recipe.upsampling_temperature
    assert (bundle.song_seconds, bundle.song_start) == (script.SONG_SECONDS, script.SONG_START)


def test_the_recipe_encodes_only_the_music_of_the_priors_it_trains(monkeypatch):
    """Encoding the five packages takes most of an hour on two cores: a recipe refining the top prior alone on
    Wesnoth's music (v12) must not pay it, and one training the upsamplers must have their caches."""
    recipes = load_recipe_script(monkeypatch)
    splits = recipes.cache_splits
    assert splits(recipes.RECIPES["v12"], {2}) == ("codes-top-train", "codes-top-heldout")
    assert splits(recipes.RECIPES["v11"], {2, 1, 0}) == ("codes-train", "codes-heldout", "codes-top-train",
                                                         "codes-top-heldout")
    assert splits(recipes.RECIPES["v5"], {1, 0}) == ("codes-train", "codes-heldout")
    assert splits(recipes.RECIPES["v3"], {2, 1, 0}) == ("codes-train", "codes-heldout")
    assert splits(recipes.RECIPES["v7"], set()) == ()
