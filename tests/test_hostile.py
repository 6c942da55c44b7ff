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
