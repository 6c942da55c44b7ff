"""`openjukebox convert-openai` on files in the original checkpoint format: small random-weight models built by
the reference implementation (jukebox-infer) and saved as the original code saves them ({'hps', 'model', 'step'}).
The converted bundle must compute what the reference computes and sample through the CLI; bad files are refused
in one line, and a file that would run code when unpickled never does."""

import json
import pickle

import numpy as np

import pytest
import soundfile as sf
import torch

from openjukebox.bundle import load_bundle
from test_cli_bad_inputs import assert_fails, assert_succeeds, run_cli
from test_download import bucket  # noqa: F401 (a fixture)
from test_released_prior_parity import MODELS, VQVAE_HPS, cpu_reference, inputs, reference_logits  # noqa: F401

hparams = pytest.importorskip("jukebox_infer.hparams")
make_models = pytest.importorskip("jukebox_infer.make_models")


@pytest.fixture(scope="module")
def original_files(tmp_path_factory):
    """vqvae / prior_level_{0,1,2}.pth.tar in the original format, the top prior a 5b_lyrics-style model;
    the VQ-VAE in the legacy (pre-zip) serialisation, the others zip."""
    folder = tmp_path_factory.mktemp("original")
    torch.manual_seed(0)
    vq_hps = hparams.setup_hparams("", VQVAE_HPS)
    vqvae = make_models.make_vqvae(vq_hps, "cpu")
    for block in vqvae.bottleneck.level_blocks:
        block.k.copy_(torch.randn_like(block.k))
    torch.save({"hps": dict(vq_hps), "model": vqvae.state_dict(), "step": 7}, folder / "vqvae.pth.tar",
               _use_new_zipfile_serialization=False)
    references = {}
    for level, name in ((0, "upsampler_level_0"), (1, "upsampler_level_1"), (2, "5b_lyrics")):
        hps = hparams.setup_hparams("", MODELS[name])
        prior = make_models.make_prior(hps, vqvae, "cpu")
        for p in prior.parameters():
            if not p.any():
                p.data.normal_(std=0.05)
        torch.save({"hps": dict(hps), "model": prior.state_dict(), "step": 1}, folder / f"prior_level_{level}.pth.tar")
        references[level] = prior
    (folder / "artists.txt").write_text("unknown;0\nvarious;0\nthe_beatles;3\nbeyonce;7\n")
    (folder / "genres.txt").write_text("unknown;0\nrock;1\npop;2\njazz;4\n")
    return folder, references


def convert_args(folder, out, **swap):
    files = {"vqvae": folder / "vqvae.pth.tar", **{f"prior{l}": folder / f"prior_level_{l}.pth.tar" for l in range(3)}}
    files.update(swap)
    return ["convert-openai", *[a for k, v in files.items() for a in (f"--{k}", v)], "--out", out,
            "--artist-ids", folder / "artists.txt", "--genre-ids", folder / "genres.txt"]


def test_converted_bundle_computes_what_the_original_computes_and_samples(original_files, tmp_path):
    folder, references = original_files
    out = tmp_path / "bundle"
    assert_succeeds(run_cli(*convert_args(folder, out)))
    bundle = load_bundle(out)
    assert bundle.label_encoder.ids("The Beatles", ["Pop Rock"], 5) == (3, [2, 1, -1, -1, -1])
    assert bundle.label_encoder.ids("Beyoncé", None, 5) == (7, [0, -1, -1, -1, -1])
    for level, reference in references.items():
        ours = bundle.priors[level]
        codes, upper, y, labels = inputs(reference, ours)
        with torch.no_grad():
            torch.testing.assert_close(ours(codes, labels, upper), reference_logits(reference, codes, upper, y),
                                       atol=1e-4, rtol=0)
    samples = tmp_path / "samples"
    assert_succeeds(run_cli("sample", "--model", out, "--duration", "0.5", "--out", samples, "--artist", "the beatles",
                            "--genre", "jazz"))
    assert sorted(p.name for p in samples.glob("*.wav")) == [f"sample-0-level{l}.wav" for l in range(3)]


def test_bfloat16_conversion_halves_the_prior_files(original_files, tmp_path):
    folder, _ = original_files
    assert_succeeds(run_cli(*convert_args(folder, tmp_path / "f32")))
    assert_succeeds(run_cli(*convert_args(folder, tmp_path / "bf16"), "--dtype", "bfloat16"))
    size = lambda b: (tmp_path / b / "prior_2" / "model.safetensors").stat().st_size  # noqa: E731
    assert 0.45 < size("bf16") / size("f32") < 0.55
    prior = load_bundle(tmp_path / "bf16", dtype=torch.bfloat16).priors[2]
    assert prior.x_emb.weight.dtype == torch.bfloat16


def test_truncated_file_is_refused(original_files, tmp_path):
    folder, _ = original_files
    cut = tmp_path / "cut.pth.tar"
    data = (folder / "prior_level_2.pth.tar").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert_fails(run_cli(*convert_args(folder, out, prior2=cut)), mentions="truncated or corrupt")
    assert not out.exists()


def test_wrong_model_file_is_refused(original_files, tmp_path):
    folder, _ = original_files
    out = tmp_path / "out"
    error = assert_fails(run_cli(*convert_args(folder, out, prior2=folder / "prior_level_0.pth.tar")))
    assert "prior_level_0.pth.tar" in error and "level-0 prior, given as --prior2" in error
    error = assert_fails(run_cli(*convert_args(folder, out, vqvae=folder / "prior_level_1.pth.tar")))
    assert "is not a VQ-VAE checkpoint" in error
    assert not out.exists()


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_code_executing_checkpoint_is_refused_without_running(original_files, tmp_path):
    folder, _ = original_files
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth.tar"
    torch.save({"hps": {}, "model": {"x": torch.zeros(1)}, "payload": RunsCode(marker)}, evil)
    with open(tmp_path / "evil-legacy.pth.tar", "wb") as f:
        pickle.dump({"model": RunsCode(marker)}, f)
    out = tmp_path / "out"
    for bad in (evil, tmp_path / "evil-legacy.pth.tar"):
        assert_fails(run_cli(*convert_args(folder, out, prior2=bad)), mentions=str(bad))
    assert not marker.exists()
    assert not out.exists()


LYRICS = "Here comes the sun, doo-doo-doo-doo\nHere comes the sun, and I say: it's all right\n" * 3


def test_lyrics_windows_equal_the_original_labeller(original_files, tmp_path):
    """The lyric tokens each window of a lyrics model gets: the original's Labeller (its own text cleaning and
    window heuristic) against ours, at the song's start, middle and end."""
    labels_module = pytest.importorskip("jukebox_infer.data.labels")
    from openjukebox.sample.pipeline import SampleRequest, _labels_for

    folder, _ = original_files
    out = tmp_path / "bundle"
    assert_succeeds(run_cli(*convert_args(folder, out)))
    bundle = load_bundle(out)
    top = bundle.priors[2].config
    total = 40 * top.window_samples
    labels_at = _labels_for(bundle, SampleRequest(duration=1.0, lyrics=LYRICS), total)
    labeller = labels_module.Labeller(top.max_genres, top.n_tokens, top.window_samples)
    for offset in (0, total // 3, total // 2, total - top.window_samples, total - 1):
        expected = labeller.get_label("unknown", "unknown", LYRICS, total, offset)["y"][-top.n_tokens:]
        assert labels_at(offset).lyrics[0].tolist() == expected.tolist()


def test_sampling_follows_the_lyrics_file(original_files, tmp_path):
    from openjukebox.sample.pipeline import SampleRequest, _labels_for

    folder, _ = original_files
    out = tmp_path / "bundle"
    assert_succeeds(run_cli(*convert_args(folder, out)))
    lyrics = tmp_path / "sun.txt"
    lyrics.write_text(LYRICS)
    codes = []
    for run in ("first", "again"):
        assert_succeeds(run_cli("sample", "--model", out, "--duration", "0.5", "--out", tmp_path / run,
                                "--levels", "2", "--lyrics-file", lyrics))
        assert json.loads((tmp_path / run / "request.json").read_text())["lyrics"] == LYRICS
        with np.load(tmp_path / run / "level2.npz") as data:
            codes.append(data["codes"])
    assert np.array_equal(*codes)
    # the lyrics reach the model: other lyrics, other predictions
    bundle = load_bundle(out)
    prior, total = bundle.priors[2], 40 * bundle.priors[2].config.window_samples
    song = torch.from_numpy(codes[0])
    with torch.no_grad():
        logits = [prior(song, _labels_for(bundle, SampleRequest(duration=1.0, lyrics=text), total)(0))
                  for text in (LYRICS, "Raindrops keep falling on my head. " * 8)]
    assert (logits[0] - logits[1]).abs().max() > 1e-4


def test_lyrics_for_a_model_without_lyrics_are_refused(tmp_path):
    bundle, lyrics = tmp_path / "bundle", tmp_path / "lyrics.txt"
    lyrics.write_text("la la la")
    assert_succeeds(run_cli("init", "--preset", "tiny", "--out", bundle))
    assert_fails(run_cli("sample", "--model", bundle, "--duration", "0.5", "--out", tmp_path / "out",
                         "--lyrics-file", lyrics), mentions="does not sing")


def test_any_subset_converts_and_a_bundle_is_completed_later(original_files, tmp_path):
    """The VQ-VAE alone encodes and decodes; sampling names what is missing; `bundle add` completes the bundle
    to exactly what converting everything at once writes."""
    folder, _ = original_files
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert_succeeds(run_cli(*convert_args(folder, whole)))
    assert_succeeds(run_cli("convert-openai", "--vqvae", folder / "vqvae.pth.tar", "--out", part))
    assert sorted(p.name for p in part.iterdir()) == ["manifest.json", "vqvae"]
    song = tmp_path / "song.wav"
    sf.write(song, np.random.default_rng(0).uniform(-0.5, 0.5, 44100).astype(np.float32), 44100)
    assert_succeeds(run_cli("vqvae", "encode", song, "--model", part, "--out", tmp_path / "codes.npz"))
    error = assert_fails(run_cli("sample", "--model", part, "--duration", "0.5", "--out", tmp_path / "no"))
    assert error.endswith(f"{part}: this bundle has no level-2 prior and no level-1 prior and no level-0 prior; add "
                          f"it with 'openjukebox bundle add {part} --prior2 FILE --prior1 FILE --prior0 FILE'")
    assert_succeeds(run_cli("bundle", "add", part, "--prior2", folder / "prior_level_2.pth.tar",
                            "--artist-ids", folder / "artists.txt", "--genre-ids", folder / "genres.txt"))
    error = assert_fails(run_cli("bundle", "add", part, "--prior2", folder / "prior_level_2.pth.tar"))
    assert "already has prior_2" in error
    error = assert_fails(run_cli("bundle", "add", part, "--prior0", folder / "prior_level_1.pth.tar"))
    assert "is a level-1 prior, given as --prior0" in error
    assert_succeeds(run_cli("bundle", "add", part, "--prior0", folder / "prior_level_0.pth.tar",
                            "--prior1", folder / "prior_level_1.pth.tar"))
    ours, reference = load_bundle(part), load_bundle(whole)
    assert ours.label_encoder == reference.label_encoder
    for level in range(3):
        assert ours.priors[level].config == reference.priors[level].config
        for (name, a), (_, b) in zip(ours.priors[level].state_dict().items(),
                                     reference.priors[level].state_dict().items()):
            assert torch.equal(a, b), name


def test_priors_without_their_vqvae_are_checked_against_its_hyperparameters(original_files, tmp_path):
    folder, _ = original_files
    out = tmp_path / "top-only"
    (tmp_path / "hps.json").write_text(json.dumps({"vqvae": dict(hparams.setup_hparams("", VQVAE_HPS))}))
    assert_succeeds(run_cli("convert-openai", "--prior2", folder / "prior_level_2.pth.tar", "--hparams",
                            tmp_path / "hps.json", "--out", out))
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "prior_2"]
    error = assert_fails(run_cli("vqvae", "encode", folder / "artists.txt", "--model", out, "--out",
                                 tmp_path / "c.npz"))
    assert f"this bundle has no VQ-VAE; add it with 'openjukebox bundle add {out} --vqvae FILE'" in error
    # Without the hyperparameters of the VQ-VAE they were trained on, the released VQ-VAE's are assumed, and
    # these small test priors do not fit it: refused by name, nothing written.
    error = assert_fails(run_cli("convert-openai", "--prior1", folder / "prior_level_1.pth.tar", "--out",
                                 tmp_path / "bad"))
    assert "is not a level-1 prior checkpoint" in error and "the hyperparameters give (2048, " in error
    assert not (tmp_path / "bad").exists()


def test_the_released_id_tables_are_found_without_copying_files(original_files, tmp_path, monkeypatch):
    from openjukebox.compat.convert import find_label_tables

    monkeypatch.setenv("OPENJUKEBOX_CACHE", str(tmp_path / "empty-cache"))
    found = find_label_tables(2, [tmp_path])
    assert found is not None and found[0].name == "v2_artist_ids.txt"  # shipped by the installed jukebox-infer
    beside = tmp_path / "beside"
    beside.mkdir()
    (beside / "v2_artist_ids.txt").write_text("unknown;0\nabba;5\n")
    (beside / "v2_genre_ids.txt").write_text("unknown;0\npop;2\n")
    assert find_label_tables(2, [beside]) == (beside / "v2_artist_ids.txt", beside / "v2_genre_ids.txt")
    folder, _ = original_files
    # Beside the top prior's file: found and used. (The test models are small: the released tables' ids do not fit
    # their embeddings, so there the tables jukebox-infer ships are found and left out.)
    beside = tmp_path / "files"
    beside.mkdir()
    for name in ("vqvae", "prior_level_0", "prior_level_1", "prior_level_2"):
        (beside / f"{name}.pth.tar").symlink_to(folder / f"{name}.pth.tar")
    (beside / "v2_artist_ids.txt").write_text((folder / "artists.txt").read_text())
    (beside / "v2_genre_ids.txt").write_text((folder / "genres.txt").read_text())
    files = [a for level in range(3) for a in (f"--prior{level}", beside / f"prior_level_{level}.pth.tar")]
    assert_succeeds(run_cli("convert-openai", "--vqvae", beside / "vqvae.pth.tar", *files, "--out", tmp_path / "a"))
    table = load_bundle(tmp_path / "a").label_encoder.table
    assert table is not None and table.version == 2 and table.artist_id("The Beatles") == 3
    files = [a for level in range(3) for a in (f"--prior{level}", folder / f"prior_level_{level}.pth.tar")]
    assert_succeeds(run_cli("convert-openai", "--vqvae", folder / "vqvae.pth.tar", *files, "--out", tmp_path / "b"))
    assert load_bundle(tmp_path / "b").label_encoder.table is None
    error = assert_fails(run_cli("convert-openai", "--vqvae", folder / "vqvae.pth.tar", *files, "--out",
                                 tmp_path / "c", "--artist-ids", found[0], "--genre-ids", found[1]))
    assert "ids run to" in error and "the id table of another model?" in error


def test_a_released_model_by_name_is_downloaded_with_consent_converted_once_and_sampled(
        original_files, bucket, monkeypatch, tmp_path):
    """`sample --model 5b_lyrics --download` from an empty cache: the files come from the (local stand-in of the)
    release bucket, are converted into CACHE/converted/5b_lyrics, and later runs need no network. The stand-in
    files are small models of the released structures, so the released hyperparameters are swapped for theirs."""
    from openjukebox.compat import released

    folder, _ = original_files
    served = {"5b/vqvae.pth.tar": "vqvae", "5b/prior_level_0.pth.tar": "prior_level_0",
              "5b/prior_level_1.pth.tar": "prior_level_1", "5b_lyrics/prior_level_2.pth.tar": "prior_level_2"}
    bucket.files = {path: (folder / f"{name}.pth.tar").read_bytes() for path, name in served.items()}
    for key, name in (("vqvae", "vqvae"), ("upsampler_level_0", "prior_level_0"),
                      ("upsampler_level_1", "prior_level_1"), ("prior_5b_lyrics", "prior_level_2")):
        monkeypatch.setitem(released.RELEASED, key, torch.load(folder / f"{name}.pth.tar", weights_only=True)["hps"])
    args = ("sample", "--model", "5b_lyrics", "--duration", "0.5", "--levels", "2", "--device", "cpu")
    error = assert_fails(run_cli(*args, "--out", tmp_path / "asked"))
    assert "5b_lyrics: a released model not downloaded here yet; add --download to fetch it (about 18 GB)" in error
    assert bucket.requests == [] and not (tmp_path / "asked").exists()
    assert_succeeds(run_cli(*args, "--download", "--out", tmp_path / "first"))
    cache = tmp_path / "cache"
    assert (cache / "converted" / "5b_lyrics" / "manifest.json").is_file()
    assert sorted(p.name for p in (cache / "converted").iterdir()) == ["5b_lyrics"]  # no temporary left
    assert {path for path, _ in bucket.requests} == set(served)
    monkeypatch.setenv("OPENJUKEBOX_DOWNLOAD_URL", "http://127.0.0.1:9/none/")  # offline from now on
    assert_succeeds(run_cli(*args, "--out", tmp_path / "second"))
    first, second = (np.load(tmp_path / run / "level2.npz")["codes"] for run in ("first", "second"))
    assert np.array_equal(first, second)
