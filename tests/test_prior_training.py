"""Priors trained on a user's music: codes cache → prior train (resumable) → eval → bundle → sample."""

import csv
import json
import subprocess

import numpy as np
import pytest

from openjukebox.vqvae.code_cache import build_code_cache, load_code_cache
from openjukebox.prior.training import train_prior
from cli_runner import run_cli, torchrun_command


cli = run_cli


@pytest.fixture(scope="module")
def cache(tmp_path_factory, tiny_run, music_dir):
    out = tmp_path_factory.mktemp("codes")
    (music_dir / "metadata.csv").write_text("path,artist,genre,lyrics\n"
                                            + "".join(f"{p.name},artist{i % 2},rock;jazz,\n"
                                                      for i, p in enumerate(sorted(music_dir.glob("*.wav")))))
    try:
        build_code_cache(tiny_run, music_dir, out)
    finally:
        (music_dir / "metadata.csv").unlink()
    return out


def test_a_code_cache_reuses_the_vqvae_runs_decoded_audio(cache, tiny_run, music_dir, tmp_path):
    """`audio_cache` = the VQ-VAE run's own cache (it trained on the same folder): the same codes, nothing
    decoded again (no cache of its own, no new file in the run's)."""
    before = sorted((tiny_run / "cache").rglob("*"))
    out = tmp_path / "codes"
    reused = build_code_cache(tiny_run, music_dir, out, audio_cache=tiny_run / "cache")
    assert not (out / "audio-cache").exists() and sorted((tiny_run / "cache").rglob("*")) == before
    own = load_code_cache(cache).codes
    for level in range(3):
        np.testing.assert_array_equal(reused.codes.levels[level], own.levels[level])


def test_codes_cache_holds_every_file_with_labels_and_vocabulary(cache):
    c = load_code_cache(cache)
    assert len(c.codes.clips) == 4
    assert c.labels.artists == ["artist0", "artist1", "unknown"] and c.labels.genres == ["jazz", "rock", "unknown"]
    assert c.max_genres() == 2
    assert c.label_ids(1, 2) == (1, [1, 0])
    assert c.label_ids(1, 3) == (1, [1, 0, -1])
    assert c.codes.codes(0, 2).shape == (96000 // 128,)


def test_prior_learns_below_uniform_and_resumes(tmp_path, cache):
    run = tmp_path / "top"
    train_prior(cache, 2, run, "tiny", steps=20, batch_size=4, lr=3e-3, save_every=10, progress=False)
    assert train_prior(cache, 2, run, "tiny", steps=40, batch_size=4, lr=3e-3, save_every=10, progress=False) == 40
    result = cli("prior", "eval", "--model", run, "--level", 2, "--codes", cache, "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["nats_per_token"] < np.log(64)  # better than uniform over the 64 codes
    assert report["bits_per_second"] == pytest.approx(report["nats_per_token"] / np.log(2) * 16000 / 128)


def test_trained_runs_make_a_bundle_that_samples(tmp_path, cache, tiny_run):
    runs = {}
    for level in (2, 1, 0):
        runs[level] = tmp_path / f"prior{level}"
        train_prior(cache, level, runs[level], "tiny", steps=2, batch_size=2, save_every=2, progress=False)
    bundle = tmp_path / "bundle"
    result = cli("bundle", "make", "--vqvae", tiny_run, "--prior0", runs[0], "--prior1", runs[1], "--prior2", runs[2],
                 "--out", bundle)
    assert result.returncode == 0, result.stderr
    result = cli("sample", "--model", bundle, "--duration", 0.5, "--out", tmp_path / "song", "--artist", "artist1",
                 "--genre", "rock", "--genre", "jazz", "--device", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "song" / "sample-0-level0.wav").is_file()
    wrong = cli("bundle", "make", "--vqvae", tiny_run, "--prior0", runs[1], "--prior1", runs[1], "--prior2", runs[2],
                "--out", tmp_path / "bad")
    assert wrong.returncode == 1 and "not a level-0 prior" in wrong.stderr


@pytest.mark.slow
def test_torchrun_two_processes_train_a_prior_with_identical_weights(tmp_path, cache):
    import os

    from safetensors.torch import load_file

    run = tmp_path / "ddp"
    cmd = torchrun_command("prior", "train", "--level", "1", "--codes", cache, "--out", run, "--steps", "4",
                           "--batch-size", "2", "--save-every", "2")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    # Rank 0 saves. Its batches are exactly those of a single-process run with the same seed, so without
    # gradient averaging across ranks it would end with the single-process weights.
    again = tmp_path / "ddp2"
    cmd2 = [c if c != str(run) else str(again) for c in cmd]
    assert subprocess.run(cmd2, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode == 0
    a = load_file(str(run / "checkpoints" / "step-00000004" / "model.safetensors"))
    b = load_file(str(again / "checkpoints" / "step-00000004" / "model.safetensors"))
    single = tmp_path / "single"
    train_prior(cache, 1, single, "tiny", steps=4, batch_size=2, save_every=2, progress=False)
    c = load_file(str(single / "checkpoints" / "step-00000004" / "model.safetensors"))
    assert all(torch_equal(a[k], b[k]) for k in a)  # deterministic
    assert not all(torch_equal(a[k], c[k]) for k in a)  # rank 1's batches contributed through DDP


def torch_equal(x, y):
    import torch

    return torch.equal(x, y)


@pytest.mark.slow
def test_fsdp_trains_like_ddp_and_its_checkpoint_loads_without_fsdp(tmp_path, cache):
    import os

    import torch
    from safetensors.torch import load_file

    from openjukebox.prior.loading import load_prior

    def run(out, *extra):
        cmd = torchrun_command("prior", "train", "--level", "2", "--codes", cache, "--out", out, "--steps", "3",
                               "--batch-size", "2", "--save-every", "3", *extra)
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.count("trained to step 3") == 1
        return load_file(str(out / "checkpoints" / "step-00000003" / "model.safetensors"))

    ddp = run(tmp_path / "ddp")
    fsdp = run(tmp_path / "fsdp", "--fsdp", "--checkpoint-activations")
    assert ddp.keys() == fsdp.keys()
    for key in ddp:  # both average the two ranks' gradients: the same training up to float rounding
        torch.testing.assert_close(fsdp[key], ddp[key], atol=1e-5, rtol=1e-4, msg=key)
    load_prior(tmp_path / "fsdp" / "checkpoints" / "step-00000003")


def test_prior_eval_on_a_codes_file_from_vqvae_encode(tmp_path, cache, tiny_run, music_dir):
    run = tmp_path / "top"
    train_prior(cache, 2, run, "tiny", steps=2, batch_size=2, save_every=2, progress=False)
    npz = tmp_path / "held.npz"
    assert cli("vqvae", "encode", *sorted(music_dir.glob("*.wav"))[:2], "--model", tiny_run, "--out", npz).returncode == 0
    result = cli("prior", "eval", "--model", run, "--level", 2, "--codes", npz, "--json", "--windows", 4)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tokens"] == 4 * 64


def test_cooldown_lowers_the_learning_rate_linearly_to_zero(tmp_path, cache):
    """Logged rate = lr · min(warm-up ramp (s+1)/100, (steps − s)/cooldown) for the update from step s, by hand;
    the CLI takes it as --cooldown-steps, and a cool-down longer than the run is refused."""
    run = tmp_path / "run"
    train_prior(cache, 2, run, "tiny", steps=150, batch_size=2, lr=1e-3, save_every=150, progress=False,
                cooldown_steps=40)
    with open(run / "log.csv") as f:
        logged = {int(row["step"]): float(row["lr"]) for row in csv.DictReader(f)}
    expected = {50: 0.5, 100: 1.0, 110: 1.0, 120: 31 / 40, 130: 21 / 40, 140: 11 / 40, 150: 1 / 40}
    assert {s: logged[s] for s in expected} == pytest.approx({s: 1e-3 * v for s, v in expected.items()}, rel=1e-6)
    result = cli("prior", "train", "--level", "1", "--codes", str(cache), "--preset", "tiny", "--out",
                 str(tmp_path / "cli"), "--steps", "10", "--batch-size", "2", "--cooldown-steps", "11")
    assert result.returncode == 1 and result.stderr.strip().endswith("must be between 0 and --steps (10), got 11")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "cli" / "log.csv").exists()
    result = cli("prior", "train", "--level", "1", "--codes", str(cache), "--preset", "tiny", "--out",
                 str(tmp_path / "cli"), "--steps", "20", "--batch-size", "2", "--lr", "1e-3", "--cooldown-steps", "20")
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "cli" / "log.csv") as f:
        assert [float(row["lr"]) for row in csv.DictReader(f)] == pytest.approx([1e-4, 1e-3 / 20])


def test_init_fine_tunes_a_trained_prior_from_its_run_or_its_bundle(tmp_path, cache, tiny_run):
    """A run started with init holds the trained prior's weights (a near-zero learning rate leaves them as they
    were; a preset run of the same seed does not have them), its config and labels, from a run or from a bundle's
    level; then it trains and resumes as any run. A wrong level, a --config, or codes of another VQ-VAE are refused
    in one line before anything is written."""
    import shutil

    import torch

    from openjukebox.prior.loading import load_prior
    from openjukebox.train.checkpoint import resolve_checkpoint

    def weights(run):
        return load_prior(resolve_checkpoint(run)).state_dict()

    def same(a, b):
        return all(torch.allclose(a[k], b[k], atol=1e-7) for k in a)

    runs = {}
    for level in (2, 1, 0):
        runs[level] = tmp_path / f"prior{level}"
        train_prior(cache, level, runs[level], "tiny", steps=20, batch_size=2, lr=3e-3, save_every=20, progress=False)
    tuned = tmp_path / "tuned"
    train_prior(cache, 1, tuned, steps=1, batch_size=2, lr=1e-12, save_every=1, progress=False, init=runs[1])
    fresh = tmp_path / "fresh"
    train_prior(cache, 1, fresh, "tiny", steps=1, batch_size=2, lr=1e-12, save_every=1, progress=False)
    assert same(weights(tuned), weights(runs[1])) and not same(weights(fresh), weights(runs[1]))
    assert json.loads((tuned / "config.json").read_text()) == json.loads((runs[1] / "config.json").read_text())
    assert json.loads((tuned / "vocab.json").read_text()) == json.loads((runs[1] / "vocab.json").read_text())

    bundle = tmp_path / "bundle"
    assert cli("bundle", "make", "--vqvae", tiny_run, "--prior0", runs[0], "--prior1", runs[1], "--prior2", runs[2],
               "--out", bundle).returncode == 0
    options = ["--codes", str(cache), "--batch-size", "2", "--save-every", "5"]
    result = cli("prior", "train", "--level", "0", "--init", str(bundle), "--out", str(tmp_path / "from-bundle"),
                 "--steps", "1", "--lr", "1e-12", *options)
    assert result.returncode == 0, result.stderr
    assert same(weights(tmp_path / "from-bundle"), weights(runs[0]))
    result = cli("prior", "train", "--level", "0", "--init", str(bundle), "--out", str(tmp_path / "from-bundle"),
                 "--steps", "10", "--lr", "1e-3", *options)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-bundle" / "checkpoints" / "step-00000010").is_dir()
    assert not same(weights(tmp_path / "from-bundle"), weights(runs[0]))
    # The fine-tuned level beside a bundle's other priors, taken as they are (with its labels): a new bundle.
    result = cli("bundle", "make", "--vqvae", tiny_run, "--prior0", tmp_path / "from-bundle", "--prior1", bundle,
                 "--prior2", bundle, "--out", tmp_path / "mixed")
    assert result.returncode == 0, result.stderr
    mixed = json.loads((tmp_path / "mixed" / "manifest.json").read_text())
    assert mixed["artists"] == json.loads((bundle / "manifest.json").read_text())["artists"]
    assert same(load_prior(tmp_path / "mixed" / "prior_1").state_dict(), weights(runs[1]))
    assert same(load_prior(tmp_path / "mixed" / "prior_0").state_dict(), weights(tmp_path / "from-bundle"))

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(runs[1], elsewhere)
    for recorded in elsewhere.rglob("codes_from.json"):  # the run's and its checkpoint's
        recorded.write_text(json.dumps({"vqvae_fingerprint": "0123abcd"}))
    for init, extra, error in ((runs[1], ["--level", "2"], "holds a level-1 prior, not level 2"),
                               (runs[1], ["--level", "1", "--config", str(tmp_path / "c.json")],
                                "config (--config) cannot resize a prior started from init (--init)"),
                               (elsewhere, ["--level", "1"], "learned the codes of another VQ-VAE (fingerprint 0123")):
        (tmp_path / "c.json").write_text('{"transformer": {"width": 32}}')
        result = cli("prior", "train", "--init", str(init), *extra, "--out", str(tmp_path / "refused"), "--steps", "1",
                     *options)
        assert result.returncode == 1 and error in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "refused").exists()
    # Asked for, a prior of another VQ-VAE's codes starts the run, which then records these codes' VQ-VAE.
    result = cli("prior", "train", "--init", str(elsewhere), "--level", "1", "--from-other-codes",
                 "--out", str(tmp_path / "relearn"), "--steps", "1", "--lr", "1e-12", *options)
    assert result.returncode == 0, result.stderr
    assert same(weights(tmp_path / "relearn"), weights(runs[1]))
    assert json.loads((tmp_path / "relearn" / "codes_from.json").read_text())["vqvae_fingerprint"] == \
        json.loads((runs[1] / "codes_from.json").read_text())["vqvae_fingerprint"] != "0123abcd"
    result = cli("prior", "train", "--level", "1", "--from-other-codes", "--out", str(tmp_path / "refused"),
                 "--steps", "1", *options)
    assert result.returncode == 1 and "give it with --init" in result.stderr and not (tmp_path / "refused").exists()


def test_init_adds_the_names_of_new_music_to_the_labels(tmp_path, cache, tiny_run, music_dir):
    """Fine-tuning on music by an artist (and of a genre) the model never saw: the names are appended to its
    vocabulary, every known name keeps its id and its embedding, and each new embedding row starts as the mean of
    the known rows (hand-computed here); the run resumes with them, and a bundle of such runs samples the new
    artist. A released model's id table does not grow."""
    import torch

    from openjukebox.labels import LabelEncoder
    from openjukebox.prior.loading import load_prior
    from openjukebox.train.checkpoint import resolve_checkpoint

    (music_dir / "metadata.csv").write_text("path,artist,genre,lyrics\n" + "".join(
        f"{p.name},{['artist0', 'The_New One'][i % 2]},{['rock;blues', 'jazz'][i % 2]},\n"
        for i, p in enumerate(sorted(music_dir.glob("*.wav")))))
    try:
        build_code_cache(tiny_run, music_dir, tmp_path / "new-codes")
    finally:
        (music_dir / "metadata.csv").unlink()
    runs, tuned = {}, {}
    for level in (2, 1, 0):
        runs[level], tuned[level] = tmp_path / f"prior{level}", tmp_path / f"tuned{level}"
        train_prior(cache, level, runs[level], "tiny", steps=4, batch_size=2, lr=3e-3, save_every=4, progress=False)
        train_prior(tmp_path / "new-codes", level, tuned[level], steps=1, batch_size=2, lr=1e-12, save_every=1,
                    progress=False, init=runs[level])
    vocab = json.loads((tuned[2] / "vocab.json").read_text())
    assert vocab == {"artists": ["artist0", "artist1", "unknown", "The_New One"],
                     "genres": ["jazz", "rock", "unknown", "blues"]}
    before, after = (load_prior(resolve_checkpoint(r)).state_dict() for r in (runs[2], tuned[2]))
    for key, n in (("labels.artist_emb.weight", 3), ("labels.genre_emb.weight", 3)):
        assert after[key].shape[0] == 4
        torch.testing.assert_close(after[key][:n], before[key], atol=1e-7, rtol=0)
        torch.testing.assert_close(after[key][n], before[key].mean(0), atol=1e-7, rtol=0)
    assert all(torch.allclose(after[k], before[k], atol=1e-7) for k in before if "labels." not in k)
    assert json.loads((tuned[2] / "config.json").read_text())["n_artists"] == 4

    result = cli("prior", "train", "--level", "2", "--init", str(runs[2]), "--codes", str(tmp_path / "new-codes"),
                 "--out", str(tmp_path / "cli-run"), "--steps", "2", "--batch-size", "2", "--save-every", "1")
    assert result.returncode == 0, result.stderr
    assert "labels added for this music: artists ['The_New One'], genres ['blues']" in result.stderr
    result = cli("prior", "train", "--level", "2", "--codes", str(tmp_path / "new-codes"), "--out",
                 str(tmp_path / "cli-run"), "--steps", "4", "--batch-size", "2", "--save-every", "1")
    assert result.returncode == 0, result.stderr  # resumes with its grown labels
    assert json.loads((tmp_path / "cli-run" / "vocab.json").read_text()) == vocab

    bundle = tmp_path / "bundle"
    assert cli("bundle", "make", "--vqvae", tiny_run, *[a for level in (0, 1, 2) for a in
                                                        (f"--prior{level}", tuned[level])], "--out", bundle
               ).returncode == 0
    result = cli("sample", "--model", bundle, "--duration", 0.5, "--out", tmp_path / "song", "--artist",
                 "the new one", "--genre", "blues", "--device", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    released = LabelEncoder([], [])
    assert released.extended(["x"], ["y"]) == (released, [], [])


def test_a_bundle_keeps_the_labels_of_upsamplers_that_learned_more_names(tmp_path, cache, tiny_run, music_dir):
    """The embedded model's case: the top prior knows 3 artists, its upsamplers were fine-tuned on music by a
    fourth. The bundle's names are the top prior's, and each upsampler keeps its own id table, so that evaluating
    it labels the music as it learned it, and fine-tuning it on a fifth artist gives that artist a new id and row
    instead of the fourth's learned row."""
    from openjukebox.prior.loading import load_prior
    from openjukebox.train.checkpoint import resolve_checkpoint

    def codes_by(artist: str, out):
        (music_dir / "metadata.csv").write_text("path,artist,genre,lyrics\n" + "".join(
            f"{p.name},{artist},jazz,\n" for p in sorted(music_dir.glob("*.wav"))))
        try:
            build_code_cache(tiny_run, music_dir, out)
        finally:
            (music_dir / "metadata.csv").unlink()
        return out

    fourth, fifth = codes_by("Fourth", tmp_path / "codes-fourth"), codes_by("Fifth", tmp_path / "codes-fifth")
    runs = {level: tmp_path / f"prior{level}" for level in range(3)}
    for level in range(3):
        train_prior(cache, level, runs[level], "tiny", steps=2, batch_size=2, save_every=2, progress=False)
    for level in (1, 0):
        train_prior(fourth, level, tmp_path / f"tuned{level}", steps=1, batch_size=2, save_every=1, progress=False,
                    init=runs[level])
        runs[level] = tmp_path / f"tuned{level}"
    bundle = tmp_path / "bundle"
    assert cli("bundle", "make", "--vqvae", tiny_run, *[a for level in (0, 1, 2) for a in
                                                        (f"--prior{level}", runs[level])], "--out", bundle
               ).returncode == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["artists"] == ["artist0", "artist1", "unknown"]
    assert set(manifest["level_labels"]) == {"0", "1"}
    assert manifest["level_labels"]["0"]["artists"] == ["artist0", "artist1", "unknown", "Fourth"]

    result = cli("prior", "eval", "--model", bundle, "--level", "0", "--codes", fourth, "--windows", "2")
    assert result.returncode == 0, result.stderr
    result = cli("sample", "--model", bundle, "--duration", 0.5, "--out", tmp_path / "song", "--artist", "Fourth",
                 "--device", "cpu")
    assert result.returncode != 0 and "unknown artist 'Fourth'" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    train_prior(fifth, 0, tmp_path / "again", steps=1, batch_size=2, lr=1e-12, save_every=1, progress=False,
                init=bundle)
    vocab = json.loads((tmp_path / "again" / "vocab.json").read_text())
    assert vocab["artists"] == ["artist0", "artist1", "unknown", "Fourth", "Fifth"]
    before, after = (load_prior(resolve_checkpoint(r)).state_dict() for r in (runs[0], tmp_path / "again"))
    rows = after["labels.artist_emb.weight"]
    assert rows.shape[0] == 5
    learned = before["labels.artist_emb.weight"]
    assert np.allclose(rows[3].numpy(), learned[3].numpy(), atol=1e-6)  # Fourth's row, as the upsampler learned it
    assert np.allclose(rows[4].numpy(), learned.mean(0).numpy(), atol=1e-6)  # Fifth starts at the mean


def test_label_dropout_trains_the_unknown_labels_as_often_as_asked(tmp_path, cache):
    """Each window's artist becomes 'unknown' with probability p and, independently, its genres ['unknown']
    (binomial counts, 4σ bounds); the other windows keep their clip's labels. Trained so, the 'unknown' rows that a
    request without labels reads move, and without it they never do (no window has them)."""
    import torch

    from openjukebox.prior.loading import load_prior
    from openjukebox.prior.training import sample_windows
    from openjukebox.train.checkpoint import resolve_checkpoint

    codes = load_code_cache(cache)
    unknown_artist, unknown_genre = codes.labels.artists.index("unknown"), codes.labels.genres.index("unknown")
    n, p = 4000, 0.3
    batch = sample_windows(codes, 2, 8, n, np.random.default_rng(0), False, 2, label_dropout=p)
    artist_dropped = (batch.labels.artist == unknown_artist).numpy()
    genres_dropped = (batch.labels.genres == torch.tensor([unknown_genre, -1])).all(1).numpy()
    bound = 4 * np.sqrt(p * (1 - p) / n)
    assert abs(artist_dropped.mean() - p) < bound and abs(genres_dropped.mean() - p) < bound
    assert abs((artist_dropped & genres_dropped).mean() - p * p) < 4 * np.sqrt(p * p * (1 - p * p) / n)
    assert set(batch.labels.artist[~torch.from_numpy(artist_dropped)].tolist()) == {0, 1}
    assert (batch.labels.genres[~torch.from_numpy(genres_dropped)] == torch.tensor([1, 0])).all()
    plain = sample_windows(codes, 2, 8, n, np.random.default_rng(0), False, 2)
    assert unknown_artist not in plain.labels.artist.tolist()

    rows = {}
    for dropout in (0.0, 0.5):
        run = tmp_path / f"dropout-{dropout}"
        train_prior(cache, 2, run, "tiny", steps=1, batch_size=1, lr=1e-12, save_every=1, progress=False)
        before = load_prior(resolve_checkpoint(run)).state_dict()
        train_prior(cache, 2, tmp_path / f"tuned-{dropout}", steps=6, batch_size=4, lr=1e-2, save_every=6,
                    progress=False, init=run, label_dropout=dropout)
        after = load_prior(resolve_checkpoint(tmp_path / f"tuned-{dropout}")).state_dict()
        rows[dropout] = [not torch.equal(before[f"labels.{kind}_emb.weight"][i], after[f"labels.{kind}_emb.weight"][i])
                         for kind, i in (("artist", unknown_artist), ("genre", unknown_genre))]
    assert rows == {0.0: [False, False], 0.5: [True, True]}


def test_label_dropout_out_of_range_is_one_line(tmp_path, cache):
    for bad in ("1", "-0.1", "nan"):
        result = cli("prior", "train", "--level", "2", "--codes", cache, "--out", tmp_path / "run", "--steps", "1",
                     "--label-dropout", bad)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"label_dropout (--label-dropout) must be at least 0 and below 1, got {float(bad)}" in result.stderr
        assert not (tmp_path / "run").exists()


def test_scheduled_sampling_feeds_the_models_draw_at_each_replaced_position(tmp_path, cache):
    """A model that always predicts the real code at each position leaves the codes as they are whatever the share
    (the draw at position t stands in for code t, not t ± 1); one sure of a fixed code puts it at a binomial share
    q of the positions (4σ) and leaves the others real. Trained with it, a prior moves differently than without."""
    import torch

    from openjukebox.prior.config import prior_preset
    from openjukebox.prior.training import with_own_draws
    from openjukebox.prior.loading import load_prior
    from openjukebox.train.checkpoint import resolve_checkpoint

    config = prior_preset("tiny", 2, 64, 128, 16000, 0, 0, 1)
    codes = torch.randint(0, 64, (8, 500))
    knows = lambda c, labels, upper: torch.nn.functional.one_hot(c, 64).float() * 50  # noqa: E731
    assert torch.equal(with_own_draws(knows, config, codes, None, None, 0.9), codes)
    q, fixed = 0.3, 7
    sure = lambda c, labels, upper: torch.nn.functional.one_hot(torch.full_like(c, fixed), 64).float() * 50  # noqa
    mixed = with_own_draws(sure, config, codes, None, None, q)
    replaced = mixed != codes
    assert abs(replaced.float().mean().item() - q * 63 / 64) < 4 * np.sqrt(q * (1 - q) / codes.numel())
    assert (mixed[replaced] == fixed).all()
    assert torch.equal(with_own_draws(sure, config, codes, None, None, 0.0), codes)

    weights = {}
    for share in (0.0, 0.5):
        run = tmp_path / f"ss-{share}"
        train_prior(cache, 2, run, "tiny", steps=3, batch_size=4, lr=1e-2, save_every=3, progress=False,
                    scheduled_sampling=share)
        weights[share] = load_prior(resolve_checkpoint(run)).state_dict()
    assert any(not torch.equal(weights[0.0][k], weights[0.5][k]) for k in weights[0.0])


def test_scheduled_sampling_out_of_range_is_one_line(tmp_path, cache):
    for bad in ("1", "-0.1", "nan"):
        result = cli("prior", "train", "--level", "2", "--codes", cache, "--out", tmp_path / "run", "--steps", "1",
                     "--scheduled-sampling", bad)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"scheduled_sampling (--scheduled-sampling) must be at least 0 and below 1, got {float(bad)}" \
            in result.stderr
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["merged lyrics prior", "lyrics encoder-decoder prior"])
def test_scheduled_sampling_draws_codes_not_lyric_characters(name):
    """A merged lyrics prior's vocabulary holds the lyric characters below the codes and its sequence starts with
    the lyrics: the draws are codes (0 … bins−1), one per code position."""
    import torch

    from openjukebox.prior.training import with_own_draws
    from test_fast_sampling import build

    prior, labels, _ = build(name)
    config = prior.config
    codes = torch.randint(0, config.bins, (labels.artist.shape[0], config.n_ctx - config.lead))
    mixed = with_own_draws(prior, config, codes, labels, None, 0.99)
    assert mixed.shape == codes.shape and mixed.min() >= 0 and mixed.max() < config.bins
    assert (mixed != codes).float().mean() > 0.5
