"""Co-composition (openjukebox.compose): the tree of candidates, branching, going back, regenerating from a seed,
resuming a killed extension, upsampling and exporting the chosen path; the `compose` commands."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from cli_runner import run_cli
from openjukebox import Composition
from openjukebox.bundle import init_bundle
from openjukebox.errors import ConfigError

RATE, HOP = 16000, 128  # the tiny preset's sample rate and top-level hop


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    init_bundle("tiny", path, artists=["ann", "bob", "unknown"], genres=["rock", "jazz", "unknown"])
    return path


def tokens(seconds: float) -> int:
    return -(-round(seconds * RATE) // HOP)


def new(bundle_dir, folder, **labels) -> Composition:
    return Composition.create(folder, model=bundle_dir, device="cpu", **{"artist": "ann", "genres": ["rock"],
                                                                          **labels})


def test_candidates_branch_go_back_and_regenerate_from_their_seed(bundle_dir, tmp_path):
    c = new(bundle_dir, tmp_path / "song")
    starts = c.extend(None, 0.5, 3, progress=False)
    assert c.tree()[None] == starts and all(c.node(n).seconds == 0.5 for n in starts)
    codes = [c.codes(n) for n in starts]
    assert all(len(x) == tokens(0.5) for x in codes) and not np.array_equal(codes[0], codes[1])
    assert all(sf.info(c.preview(n)).frames == 8000 for n in starts)  # the rough preview of each
    first = c.extend(starts[1], 0.5, 2, progress=False)
    for node in first:  # a continuation keeps the path it continues
        assert c.path(node)[0].id == starts[1] and c.node(node).seconds == 1.0
        assert np.array_equal(c.codes(node)[: tokens(0.5)], codes[1]) and len(c.codes(node)) == tokens(1.0)
    again = c.extend(starts[1], 0.5, 2, progress=False)  # back to the same node: new candidates
    assert not np.array_equal(c.codes(again[0]), c.codes(first[0]))
    other = c.extend(starts[2], 0.5, 1, progress=False)  # another branch
    assert c.tree()[starts[1]] == first + again and c.tree()[starts[2]] == other
    same = c.extend(starts[1], 0.5, 2, seed=c.node(first[0]).seed, progress=False)
    assert all(np.array_equal(c.codes(a), c.codes(b)) for a, b in zip(same, first))
    reopened = Composition.open(tmp_path / "song", device="cpu")
    assert reopened.tree() == c.tree() and np.array_equal(reopened.codes(first[1]), c.codes(first[1]))


def test_the_chosen_path_is_upsampled_and_exported_with_its_label_changes(bundle_dir, tmp_path):
    c = new(bundle_dir, tmp_path / "song")
    start = c.extend(None, 0.5, 2, progress=False)[0]
    duet = c.extend(start, 0.5, 2, artist="bob", genres=["jazz"], progress=False)[1]
    assert (c.node(duet).artist, c.node(duet).genres) == ("bob", ["jazz"])
    saved = json.loads((c.folder / "extensions" / c.node(duet).extension / "request.json").read_text())
    assert saved["schedule"] == "0:artist=ann,genre=rock;0.5:artist=bob,genre=jazz"
    with pytest.raises(ConfigError, match="none picked"):
        c.upsample(progress=False)
    c.pick(duet)
    files = c.upsample(progress=False)
    assert [f.name for f in files] == [f"sample-0-level{level}.wav" for level in (2, 1, 0)]
    finished = np.load(c.folder / "finished" / duet / "level2.npz")["codes"][0]
    assert np.array_equal(finished, c.codes(duet))  # the chosen codes, not new ones
    song = c.export(tmp_path / "song.flac")
    assert sf.info(song).frames == RATE * 1 and sf.info(song).format == "FLAC"
    for listening in ("song.ogg", "song.mp3"):  # lossy, for listening: readable, about as long
        assert abs(sf.info(c.export(tmp_path / listening)).frames - RATE) < RATE // 10
    with pytest.raises(ConfigError, match="not upsampled yet"):
        c.export(tmp_path / "other.wav", start)


def test_a_lyrics_model_sings_the_composition_and_exports_its_alignment(tmp_path):
    init_bundle("tiny-lyrics", tmp_path / "lyrics-bundle")
    c = Composition.create(tmp_path / "sung", model=tmp_path / "lyrics-bundle", lyrics="la la la, the song",
                           device="cpu")
    node = c.extend(None, 0.5, 1, progress=False)[0]
    verse = c.extend(node, 0.5, 1, lyrics="la la la, the song\nand a second verse", progress=False)[0]
    assert c.node(verse).lyrics.endswith("second verse") and c.node(node).lyrics == "la la la, the song"
    c.pick(verse)
    c.upsample(progress=False)
    song = c.export(tmp_path / "sung.wav")
    assert song.with_suffix(".lrc").read_text().startswith("[") and "verse" in song.with_suffix(".lrc").read_text()


def test_a_composition_starts_from_the_users_audio(bundle_dir, tmp_path, music_dir):
    song = sorted(music_dir.glob("*.wav"))[0]
    c = new(bundle_dir, tmp_path / "mine", prompt=song, prompt_seconds=0.5)
    node = c.extend(None, 0.5, 1, progress=False)[0]
    assert c.node(node).seconds == 1.0
    reference = Composition.create(tmp_path / "again", model=bundle_dir, device="cpu", artist="ann",
                                   genres=["rock"], prompt=song, prompt_seconds=0.5)
    assert np.array_equal(c.codes(node), reference.codes(reference.extend(None, 0.5, 1, progress=False)[0]))
    prompt_codes = np.load(c.folder / "extensions" / c.node(node).extension / "level2.npz")["codes"][0]
    assert len(prompt_codes) == tokens(1.0)


@pytest.mark.parametrize("make, message", [
    (lambda c, d: Composition.create(d / "x", model=c, artist="zed", device="cpu"), "unknown artist 'zed'"),
    (lambda c, d: new(c, d / "y").extend("n9", 1.0, 1), "no node 'n9'"),
    (lambda c, d: new(c, d / "z").extend(None, 0.0, 1), "seconds (--seconds) must be positive"),
    (lambda c, d: new(c, d / "w").pick("n1"), "no node 'n1'"),
])
def test_mistakes_are_one_clear_error_and_write_nothing(make, message, bundle_dir, tmp_path):
    with pytest.raises(ConfigError) as error:
        make(bundle_dir, tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "x").exists()
    for folder in ("y", "z", "w"):
        if (tmp_path / folder).exists():
            assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["composition.json"]


def test_a_killed_extension_continues_to_the_same_candidates(bundle_dir, tmp_path):
    """kill -9 part-way through an extension; asking again continues it, and its candidates equal those of an
    extension that was never interrupted."""
    for name in ("killed", "whole"):
        assert run_cli("compose", "new", tmp_path / name, "--model", bundle_dir, "--artist", "ann",
                       "--device", "cpu").returncode == 0
    args = ["compose", "extend", "--seconds", 6, "--n", 2, "--device", "cpu", "--no-compile"]
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "openjukebox", *map(str, args[:2]), str(killed), *map(str, args[2:])]
    proc = subprocess.Popen(command,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    partial = killed / "extensions" / "e1" / "level2.npz"
    deadline = time.time() + 300
    while time.time() < deadline and not partial.exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.exists() and np.load(partial)["codes"].shape[1] < tokens(6)  # stopped part-way
    assert Composition.open(killed, device="cpu").tree() == {None: []}  # no half-made node
    assert run_cli(*args[:2], killed, *args[2:]).returncode == 0
    assert run_cli(*args[:2], tmp_path / "whole", *args[2:]).returncode == 0
    a, b = Composition.open(killed, device="cpu"), Composition.open(tmp_path / "whole", device="cpu")
    assert a.tree() == b.tree() == {None: ["n1", "n2"], "n1": [], "n2": []}
    assert all(np.array_equal(a.codes(n), b.codes(n)) for n in ("n1", "n2"))


def test_the_compose_commands(bundle_dir, tmp_path):
    folder = tmp_path / "cli"
    result = run_cli("compose", "new", folder, "--model", bundle_dir, "--artist", "ann", "--genre", "rock",
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    result = run_cli("compose", "extend", folder, "--seconds", 0.5, "--n", 2, "--device", "cpu")
    assert result.returncode == 0 and result.stdout.splitlines()[0].startswith("n1: "), result.stderr
    assert run_cli("compose", "extend", folder, "--from", "n2", "--seconds", 0.5, "--n", 1, "--artist", "bob",
                   "--device", "cpu").returncode == 0
    assert run_cli("compose", "pick", folder, "n3").returncode == 0
    tree = run_cli("compose", "tree", folder).stdout.splitlines()
    assert [line.split()[0] for line in tree] == ["n1", "n2", "n3"] and tree[2].startswith("  n3 *  1s")
    assert run_cli("compose", "upsample", folder, "--device", "cpu").returncode == 0
    assert run_cli("compose", "export", folder, tmp_path / "song.wav").returncode == 0
    assert sf.info(tmp_path / "song.wav").frames == RATE
    error = run_cli("compose", "extend", folder, "--from", "n7", "--seconds", 1, "--device", "cpu")
    assert error.returncode == 1 and error.stderr.strip().startswith("openjukebox: error: no node 'n7'")
