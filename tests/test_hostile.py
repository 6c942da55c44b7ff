"""Hostile but fair inputs, per command, against the contract: a non-zero exit, one line naming the thing and the
reason, no traceback, nothing written, and earlier good state byte-identical (docs/reliability.md)."""

import contextlib
import fcntl
import math
import os
from pathlib import Path

import pytest

from cli_runner import run_cli
from openjukebox.bundle import init_bundle
from test_cli_bad_inputs import assert_fails


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    init_bundle("tiny", root / "a", seed=0)
    init_bundle("tiny", root / "b", seed=1)  # the same structure, other weights
    return root / "a", root / "b"


@contextlib.contextmanager
def another_writer(folder: Path):
    """What another process writing `folder` holds: the kernel's lock on the folder (flock), taken here."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


SAMPLE = ("sample", "--duration", "0.5", "--levels", "2", "--device", "cpu")


@pytest.mark.parametrize("option, value", [
    ("--duration", "inf"), ("--duration", "nan"), ("--duration", "-1"),
    ("--hop-fraction", "0"), ("--hop-fraction", "1.5"), ("--hop-fraction", "nan"),
    ("--temperature", "0"), ("--temperature", "nan"), ("--temperature", "-1"),
    ("--top-p", "2"), ("--top-p", "nan"), ("--top-k", "-5"),
    ("--song-seconds", "inf"), ("--n", "0"),
])
def test_sampling_values_out_of_range_are_refused_before_anything_is_written(bundles, tmp_path, option, value):
    out = tmp_path / "out"
    args = ["sample", "--levels", "2", "--device", "cpu", *(["--duration", "0.5"] if option != "--duration" else [])]
    error = assert_fails(run_cli(*args, "--model", bundles[0], option, value, "--out", out))
    assert option in error and (not math.isnan(float(value)) or "finite" in error)
    assert not out.exists()


@pytest.fixture(scope="module")
def code_cache(tmp_path_factory, tiny_run, music_dir):
    cache = tmp_path_factory.mktemp("codes") / "cache"
    assert run_cli("codes", "build", "--vqvae", tiny_run, "--data", music_dir, "--out", cache,
                   "--device", "cpu").returncode == 0
    return cache


@pytest.mark.parametrize("command", ["vqvae", "prior"])
@pytest.mark.parametrize("option, value", [("--steps", "0"), ("--batch-size", "0"), ("--lr", "nan"),
                                           ("--save-every", "0")])
def test_training_values_out_of_range_are_refused_before_anything_is_written(command, option, value, tmp_path,
                                                                              music_dir, code_cache):
    out = tmp_path / "run"
    settings = [x for kv in {"--steps": "2", "--batch-size": "2", option: value}.items() for x in kv]
    where = ["--data", music_dir] if command == "vqvae" else ["--level", "2", "--codes", code_cache]
    error = assert_fails(run_cli(command, "train", *where, "--out", out, *settings))
    assert option in error
    assert not out.exists()


def test_a_sampling_run_is_not_continued_with_another_model(bundles, tmp_path):
    out = tmp_path / "out"
    assert run_cli(*SAMPLE, "--model", bundles[0], "--out", out).returncode == 0
    before = snapshot(out)
    error = assert_fails(run_cli(*SAMPLE, "--model", bundles[1], "--out", out))
    assert "was sampled with another model" in error and str(bundles[0]) in error
    error = assert_fails(run_cli(*SAMPLE, "--model", bundles[0], "--dtype", "bfloat16", "--out", out))
    assert "was sampled with another model" in error
    assert snapshot(out) == before


@pytest.mark.parametrize("command", ["sample", "compose", "codes", "prior", "vqvae"])
def test_a_second_writer_of_an_output_folder_is_refused(command, bundles, tmp_path, tiny_run, music_dir,
                                                        code_cache):
    """Another process writing the folder (here: this one, holding its lock) makes every writer refuse."""
    out = tmp_path / "out"
    if command == "sample":
        assert run_cli(*SAMPLE, "--model", bundles[0], "--out", out).returncode == 0
        args = (*SAMPLE, "--model", bundles[0], "--out", out)
    elif command == "compose":
        assert run_cli("compose", "new", out, "--model", bundles[0], "--device", "cpu").returncode == 0
        args = ("compose", "extend", out, "--seconds", "0.5", "--n", "1", "--device", "cpu")
    elif command == "codes":
        out.mkdir()
        args = ("codes", "build", "--vqvae", tiny_run, "--data", music_dir, "--out", out, "--device", "cpu")
    elif command == "vqvae":
        out.mkdir()
        args = ("vqvae", "train", "--data", music_dir, "--out", out, "--steps", "1", "--batch-size", "2")
    else:
        out.mkdir()
        args = ("prior", "train", "--level", "2", "--codes", code_cache, "--out", out, "--steps", "1")
    before = snapshot(out)
    with another_writer(out):
        error = assert_fails(run_cli(*args))
    assert "another openjukebox process is writing here" in error
    assert snapshot(out) == before


# ---------------------------------------------------------------------------------------- hostile files


def wav_claiming(path: Path, rate: int, frames: int, present: int) -> Path:
    """A 16-bit mono WAV whose header announces `frames` samples at `rate` Hz, of which `present` follow."""
    data = frames * 2
    header = (b"RIFF" + (36 + data).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
              + (rate * 2).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
              + b"data" + data.to_bytes(4, "little"))
    path.write_bytes(header + bytes(present * 2))
    return path


@pytest.mark.parametrize("make, mentions", [
    (lambda d: wav_claiming(d / "cut.wav", 16000, 16000 * 8, 16000 * 2), "truncated"),
    (lambda d: wav_claiming(d / "slow.wav", 1, 2000, 2000), "1 Hz"),
])
def test_audio_whose_header_lies_is_refused(make, mentions, tmp_path, tiny_run):
    song = make(tmp_path)
    error = assert_fails(run_cli("vqvae", "encode", song, "--model", tiny_run, "--out", tmp_path / "c.npz"))
    assert mentions in error and not (tmp_path / "c.npz").exists()


def test_text_files_and_lyrics_beyond_any_song_are_refused(bundles, tmp_path):
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"la " * (6 * 2**20))  # 18 MiB
    long = tmp_path / "long.txt"
    long.write_text("la " * 10_000)  # 30 000 characters
    for lyrics, mentions in ((huge, "too large for a lyrics"), (long, "a song sings at most")):
        error = assert_fails(run_cli(*SAMPLE, "--model", bundles[0], "--lyrics-file", lyrics,
                                     "--out", tmp_path / "out"))
        assert mentions in error and not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["request.json", "level2.npz"])
def test_a_damaged_sampling_folder_is_refused_not_continued(damage, bundles, tmp_path):
    out = tmp_path / "out"
    assert run_cli(*SAMPLE, "--model", bundles[0], "--out", out).returncode == 0
    (out / damage).write_bytes(b"[1, 2" if damage.endswith(".json") else b"PK\x03\x04 not a zip")
    before = snapshot(out)
    error = assert_fails(run_cli(*SAMPLE, "--model", bundles[0], "--out", out))
    assert f"{damage}: corrupt" in error and snapshot(out) == before


def test_a_broken_cached_bundle_is_listed_as_broken_beside_the_others(bundles, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(bundles[0], cache / "good")
    (cache / "bad").mkdir()
    (cache / "bad" / "manifest.json").write_text("[]")
    result = run_cli("models", "--cache", cache)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if not line.startswith(" ")}
    assert "broken" in lines["bad"] and "[bundle" in lines["good"]
    error = assert_fails(run_cli(*SAMPLE, "--model", cache / "bad", "--out", tmp_path / "out"))
    assert "corrupt bundle manifest" in error


def test_an_interrupted_bundle_write_leaves_nothing_and_the_retry_succeeds(tmp_path, monkeypatch):
    from openjukebox import bundle as bundle_module

    real, calls = bundle_module.write_model_dir, []

    def disk_full_on_the_second_part(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise bundle_module.CheckpointError(f"could not save {args[0]} (No space left on device)")
        return real(*args, **kwargs)

    monkeypatch.setattr(bundle_module, "write_model_dir", disk_full_on_the_second_part)
    with pytest.raises(bundle_module.CheckpointError, match="No space left on device.*nothing was left behind"):
        init_bundle("tiny", tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.setattr(bundle_module, "write_model_dir", real)
    init_bundle("tiny", tmp_path / "b")
    assert (tmp_path / "b" / "manifest.json").is_file()


def test_json_reports_are_json_even_on_silence(tmp_path, tiny_run):
    import json

    import numpy as np
    import soundfile as sf

    (tmp_path / "quiet").mkdir()
    sf.write(tmp_path / "quiet" / "silence.wav", np.zeros(32000, np.float32), 16000)
    result = run_cli("vqvae", "eval", "--model", tiny_run, "--data", tmp_path / "quiet", "--json", "--cache",
                     tmp_path / "cache")
    assert result.returncode == 0, result.stderr

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")
    json.loads(result.stdout, parse_constant=refuse)


# ---------------------------------------------------------------------------------------- codes of another model


@pytest.fixture(scope="module")
def other_codes(tmp_path_factory, music_dir):
    """A code cache made by another VQ-VAE (the same preset, trained from another seed)."""
    from openjukebox.vqvae.training import train_vqvae

    root = tmp_path_factory.mktemp("other")
    train_vqvae(music_dir, root / "vqvae", "tiny", steps=2, batch_size=2, save_every=2, seed=1, progress=False)
    assert run_cli("codes", "build", "--vqvae", root / "vqvae", "--data", music_dir, "--out", root / "codes",
                   "--device", "cpu").returncode == 0
    return root / "vqvae", root / "codes"


def test_a_prior_is_never_mixed_with_the_codes_of_another_vqvae(tmp_path, code_cache, other_codes):
    run = tmp_path / "top"
    train = ("prior", "train", "--level", "2", "--batch-size", "2", "--save-every", "1", "--out", run)
    assert run_cli(*train, "--steps", "1", "--codes", code_cache).returncode == 0
    before = snapshot(run)
    error = assert_fails(run_cli(*train, "--steps", "2", "--codes", other_codes[1]))
    assert "was trained on the codes of another VQ-VAE" in error and snapshot(run) == before
    error = assert_fails(run_cli("prior", "eval", "--model", run, "--level", "2", "--codes", other_codes[1],
                                 "--device", "cpu"))
    assert "codes made by another VQ-VAE" in error
    error = assert_fails(run_cli("bundle", "make", "--vqvae", other_codes[0], "--prior0", run, "--prior1", run,
                                 "--prior2", run, "--out", tmp_path / "bundle"))
    assert "was trained on the codes of another VQ-VAE" in error and not (tmp_path / "bundle").exists()


# ---------------------------------------------------------------------------------------- files of the wrong shape


def _edit_json(path: Path, change) -> None:
    import json

    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))


@pytest.mark.parametrize("part, change, mentions", [
    ("prior_2", lambda c: {**c, "transformer": {**c["transformer"], "heads": 0}}, "heads must be positive"),
    ("prior_2", lambda c: {**c, "bins": "many"}, "bins must be int"),
    ("prior_1", lambda c: {**c, "level": 7}, "level must be 0, 1 or 2"),
    ("vqvae", lambda c: {**c, "width": 1.5}, "width must be int"),
    ("vqvae", lambda c: {**c, "sample_rate": -1}, "sample_rate must be positive"),
    ("prior_0", lambda c: [], "not a prior config"),
])
def test_a_bundle_whose_configs_have_the_wrong_shape_is_refused_by_name(part, change, mentions, bundles, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundles[0], broken)
    _edit_json(broken / part / "config.json", change)
    error = assert_fails(run_cli(*SAMPLE, "--model", broken, "--out", tmp_path / "out"))
    assert mentions in error and not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage, mentions", [
    (lambda levels: [levels[0] - 5, *levels[1:]], "codes outside"),
    (lambda levels: [levels[0], levels[1] * 0 + 999, levels[2]], "codes outside"),
])
def test_codes_files_holding_impossible_codes_are_refused(damage, mentions, tmp_path, tiny_run, music_dir):
    from openjukebox.codes import load_codes, save_codes

    song = sorted(music_dir.glob("*.wav"))[0]
    assert run_cli("vqvae", "encode", song, "--model", tiny_run, "--out", tmp_path / "c.npz").returncode == 0
    codes = load_codes(tmp_path / "c.npz")
    codes.levels = damage(codes.levels)
    save_codes(tmp_path / "bad.npz", codes)
    error = assert_fails(run_cli("vqvae", "decode", tmp_path / "bad.npz", "--model", tiny_run, "--level", "0",
                                 "--out", tmp_path / "x.wav"))
    assert mentions in error and not (tmp_path / "x.wav").exists()
