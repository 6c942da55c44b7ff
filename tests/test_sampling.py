"""Sampling a song from a bundle as a user does: init → sample through all levels; kill -9 and resume; labels."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from openjukebox.bundle import init_bundle, load_bundle
from openjukebox.sample.pipeline import SampleRequest, sample
from cli_runner import run_cli, torchrun_command


cli = run_cli


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    init_bundle("tiny", path, artists=["The Beatles", "Nina Simone"], genres=["rock", "jazz"])
    return path


def test_init_and_sample_all_levels_write_audio_of_the_asked_duration(tmp_path, bundle_dir):
    result = cli("sample", "--model", bundle_dir, "--duration", 1.3, "--out", tmp_path / "out", "--n", 2,
                 "--artist", "nina simone", "--genre", "jazz", "--device", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    for i in range(2):
        for level in (2, 1, 0):
            audio, rate = sf.read(tmp_path / "out" / f"sample-{i}-level{level}.wav")
            assert rate == 16000 and audio.shape == (round(1.3 * 16000),)
            assert np.isfinite(audio).all()
    codes = {level: np.load(tmp_path / "out" / f"level{level}.npz")["codes"] for level in (2, 1, 0)}
    assert codes[2].shape[1] * 4 == codes[1].shape[1] and codes[1].shape[1] * 4 == codes[0].shape[1]


def test_unknown_artist_is_one_line_with_suggestion_and_writes_nothing(tmp_path, bundle_dir):
    result = cli("sample", "--model", bundle_dir, "--duration", 1, "--out", tmp_path / "out", "--artist", "beetles")
    assert result.returncode == 1
    assert result.stderr.strip() == "openjukebox: error: unknown artist 'beetles'; did you mean 'The Beatles'?"
    assert not (tmp_path / "out").exists()


def test_preview_then_upsample_equals_one_run(tmp_path, bundle_dir):
    bundle = load_bundle(bundle_dir)
    sample(bundle, tmp_path / "one", SampleRequest(duration=0.5, seed=3), progress=False)
    sample(bundle, tmp_path / "two", SampleRequest(duration=0.5, seed=3, levels=[2]), progress=False)
    assert not (tmp_path / "two" / "level1.npz").exists()
    result = cli("upsample", tmp_path / "two", "--model", bundle_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    for level in (2, 1, 0):
        a = np.load(tmp_path / "one" / f"level{level}.npz")["codes"]
        b = np.load(tmp_path / "two" / f"level{level}.npz")["codes"]
        assert np.array_equal(a, b)


def test_primed_sampling_keeps_the_prompt_codes(tmp_path, bundle_dir, music_dir):
    bundle = load_bundle(bundle_dir)
    song = sorted(music_dir.glob("*.wav"))[0]
    sample(bundle, tmp_path / "out", SampleRequest(duration=1.0, prompt=str(song), prompt_seconds=0.5, levels=[2]),
           progress=False)
    from openjukebox.audio import load_audio
    import torch

    audio = torch.from_numpy(load_audio(song, sample_rate=16000, mono=True)[:, :8000])[None]
    expected = bundle.vqvae.encode(audio)[2][:, : 8000 // 128]
    codes = np.load(tmp_path / "out" / "level2.npz")["codes"]
    assert np.array_equal(codes[:, : expected.shape[1]], expected.numpy())


@pytest.mark.slow
def test_kill_minus_9_during_sampling_then_rerun_gives_identical_codes(tmp_path, bundle_dir):
    args = ["sample", "--model", bundle_dir, "--duration", 3, "--seed", 7, "--device", "cpu"]
    reference = cli(*args, "--out", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-2000:]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "openjukebox", *map(str, args), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "level1.npz").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "level0.npz").exists()  # killed part-way, before the last level
    rerun = cli(*args, "--out", out)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for level in (2, 1, 0):
        assert np.array_equal(np.load(out / f"level{level}.npz")["codes"],
                              np.load(tmp_path / "ref" / f"level{level}.npz")["codes"])


def test_python_api_sample_continue_and_upsample(tmp_path, bundle_dir, music_dir):
    from openjukebox.jukebox import Jukebox

    jukebox = Jukebox.load(bundle_dir)
    files = jukebox.sample(tmp_path / "a", duration=0.5, levels=[2], seed=1, progress=False)
    assert [f.name for f in files] == ["sample-0-level2.wav"]
    jukebox.upsample(tmp_path / "a", progress=False)
    # Codes cover whole top-level tokens: ceil(8000 / 128) = 63 top tokens, ×16 at level 0.
    assert jukebox.codes(tmp_path / "a", 0).shape == (1, 63 * 16)
    song = sorted(music_dir.glob("*.wav"))[0]
    jukebox.continue_from(song, tmp_path / "b", duration=1.0, prompt_seconds=0.5, levels=[2], progress=False)
    assert jukebox.codes(tmp_path / "b", 2).shape == (1, 125)


def test_schedule_parsing_and_labels_change_mid_song(tmp_path, bundle_dir):
    from openjukebox.sample.pipeline import parse_schedule

    assert parse_schedule("0:artist=A,genre=G;1.5:artist=B", None, []) == [(0.0, "A", ["G"]), (1.5, "B", ["G"])]
    from openjukebox.sample.pipeline import _labels_for

    bundle = load_bundle(bundle_dir)
    request = SampleRequest(duration=2.0, artist="The Beatles", genres=["rock"],
                            schedule="0:artist=The Beatles;0.6:artist=Nina Simone,genre=jazz")
    labels_at = _labels_for(bundle, request, 32000)
    assert labels_at(0).artist.tolist() == [0] and labels_at(0).genres.tolist() == [[0]]
    at_1s = labels_at(16000)
    assert at_1s.artist.tolist() == [1] and at_1s.genres.tolist() == [[1]] and at_1s.offset.tolist() == [16000]
    sample(bundle, tmp_path / "switched", request, progress=False)  # the pipeline runs with a schedule
    assert (tmp_path / "switched" / "sample-0-level0.wav").is_file()
    bad = cli("sample", "--model", bundle_dir, "--duration", 1, "--out", tmp_path / "bad", "--schedule", "5:artist=x")
    assert bad.returncode == 1 and "entry at 0 seconds" in bad.stderr


def test_vqvae_commands_accept_a_bundle(tmp_path, bundle_dir, music_dir):
    song = sorted(music_dir.glob("*.wav"))[0]
    result = cli("vqvae", "encode", song, "--model", bundle_dir, "--out", tmp_path / "c.npz", "--duration", 1)
    assert result.returncode == 0, result.stderr
    result = cli("vqvae", "decode", tmp_path / "c.npz", "--model", bundle_dir, "--level", 2, "--out", tmp_path / "x.wav")
    assert result.returncode == 0, result.stderr
    assert sf.info(tmp_path / "x.wav").frames == 16000


def test_song_seconds_sets_the_timing_conditioning(tmp_path, bundle_dir):
    """Saying the clip begins a song as long as itself changes nothing; a longer song changes the timing labels
    and so the codes; a bundle's own default acts as if the request had said it; a song shorter than the clip is
    refused."""
    import json
    import shutil

    bundle = load_bundle(bundle_dir)

    def codes(out, **options):
        sample(bundle, tmp_path / out, SampleRequest(duration=1.0, seed=5, levels=[2], **options), progress=False)
        return np.load(tmp_path / out / "level2.npz")["codes"]

    plain = codes("plain")
    assert np.array_equal(plain, codes("same", song_seconds=1.0))
    long = codes("long", song_seconds=200.0)
    assert not np.array_equal(plain, long)
    with_default = tmp_path / "with-default"
    shutil.copytree(bundle_dir, with_default)
    manifest = json.loads((with_default / "manifest.json").read_text())
    (with_default / "manifest.json").write_text(json.dumps({**manifest, "song_seconds": 200.0}))
    bundle = load_bundle(with_default)
    assert np.array_equal(long, codes("default"))
    result = cli("sample", "--model", bundle_dir, "--duration", 2, "--song-seconds", 1, "--out", tmp_path / "short")
    assert result.returncode == 1 and "song_seconds (--song-seconds) (1.0) must be at least duration (--duration) (2.0)" in result.stderr


def test_song_start_places_the_clip_in_the_song_for_the_timing_conditioning(tmp_path, bundle_dir):
    """A clip S seconds into a song draws the codes that the level's sampler draws when its labels say so by hand
    (offset S * rate, total length the song's); 0 is the default; a bundle's own default moves earlier when the song
    would end before the clip, and does not apply to a prompt's continuation; the resolved start is what
    request.json records; a start in the wrong place is refused in one line."""
    import json
    import shutil

    from openjukebox.sample.ancestral import sample_level

    bundle = load_bundle(bundle_dir)
    rate, hop = bundle.vqvae.config.sample_rate, bundle.vqvae.hop_lengths[2]

    def codes(out, duration=1.0, **options):
        sample(bundle, tmp_path / out, SampleRequest(duration=duration, seed=5, levels=[2], **options), progress=False)
        saved = json.loads((tmp_path / out / "request.json").read_text())
        return np.load(tmp_path / out / "level2.npz")["codes"], saved

    def by_hand(duration, song_seconds, start_seconds):
        tokens = -(-round(duration * rate) // hop)
        labels = bundle.labels(None, [], round(song_seconds * rate), 1, 2)
        labels.offset.fill_(round(start_seconds * rate))
        return sample_level(bundle.prior(2), tokens, labels, seed=5 * 3 + 2).numpy()

    middle, saved = codes("middle", song_seconds=5.0, song_start=2.0)
    assert np.array_equal(middle, by_hand(1.0, 5.0, 2.0)) and saved["song_start"] == 2.0
    assert not np.array_equal(middle, by_hand(1.0, 5.0, 0.0))
    assert np.array_equal(codes("plain", song_seconds=5.0)[0], by_hand(1.0, 5.0, 0.0))

    with_default = tmp_path / "with-default"
    shutil.copytree(bundle_dir, with_default)
    manifest = json.loads((with_default / "manifest.json").read_text())
    (with_default / "manifest.json").write_text(json.dumps({**manifest, "song_seconds": 5.0, "song_start": 2.0}))
    bundle = load_bundle(with_default)
    assert np.array_equal(codes("default")[0], middle)
    late, saved = codes("late", duration=4.0)  # 2 + 4 > 5: the clip ends with the song instead
    assert np.array_equal(late, by_hand(4.0, 5.0, 1.0)) and saved["song_start"] == 1.0
    sf.write(tmp_path / "prompt.wav", np.random.default_rng(0).uniform(-0.3, 0.3, rate).astype(np.float32), rate)
    _, saved = codes("continued", duration=1.5, prompt=str(tmp_path / "prompt.wav"), prompt_seconds=0.5)
    assert saved["song_start"] == 0.0

    for options, error in (
            (("--song-start", -1), "song_start (--song-start) must be 0 or more seconds, got -1.0"),
            (("--song-start", "nan"), "song_start (--song-start) must be a finite number, got nan"),
            (("--song-start", 4, "--song-seconds", 5), "song_start (--song-start) (4.0) + duration (--duration) "
                                                       "(2.0) runs past the end of the song, song_seconds "
                                                       "(--song-seconds) (5.0)")):
        result = cli("sample", "--model", bundle_dir, "--duration", 2, *options, "--out", tmp_path / "refused")
        assert result.returncode == 1 and error in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_torchrun_splits_the_samples_and_writes_the_files_of_one_process(tmp_path, bundle_dir):
    """3 samples over 2 processes (2 + 1), a run killed after the top level and resumed the same way: the codes and
    the audio equal those of one process drawing all 3."""
    options = ["--model", bundle_dir, "--duration", 1.3, "--n-samples", 3, "--seed", 7, "--device", "cpu"]
    one = cli("sample", *options, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = torchrun_command("sample", *options, "--out", tmp_path / "two")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(torchrun + ["--levels", "2"], capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("wrote") == 3  # only the first process writes
    second = subprocess.run(torchrun, capture_output=True, text=True, timeout=600, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    for level in (2, 1, 0):
        a = np.load(tmp_path / "one" / f"level{level}.npz")["codes"]
        assert np.array_equal(a, np.load(tmp_path / "two" / f"level{level}.npz")["codes"])
        for i in range(3):
            assert np.array_equal(sf.read(tmp_path / "one" / f"sample-{i}-level{level}.wav")[0],
                                  sf.read(tmp_path / "two" / f"sample-{i}-level{level}.wav")[0])
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(p.name for p in (tmp_path / "two").iterdir())


def test_upsampling_temperature_changes_only_the_upsamplers(tmp_path, bundle_dir):
    """The top level's codes do not change; the upsampler's, drawn near temperature 0, are its greedy (top-1) codes
    over the same top level; a bundle's own upsampling temperature acts as if the request had said it, and a
    request's own beats it; a bad value in a request or a manifest is refused by name."""
    import json
    import shutil

    def codes(out, bundle=None, top=None, **options):
        if top is not None:  # continue from these top-level codes, as `upsample` continues a preview
            (tmp_path / out).mkdir()
            shutil.copy(top / "level2.npz", tmp_path / out / "level2.npz")
        sample(bundle or load_bundle(bundle_dir), tmp_path / out,
               SampleRequest(duration=1.0, seed=5, levels=[2, 1], **options), progress=False)
        return [np.load(tmp_path / out / f"level{level}.npz")["codes"] for level in (2, 1)]

    plain = codes("plain")
    cold = codes("cold", upsampling_temperature=1e-6)
    greedy = codes("greedy", top=tmp_path / "plain", top_k=1)
    assert np.array_equal(plain[0], cold[0]) and not np.array_equal(plain[1], cold[1])
    assert np.array_equal(cold[1], greedy[1])
    with_default = tmp_path / "with-default"
    shutil.copytree(bundle_dir, with_default)
    manifest = json.loads((with_default / "manifest.json").read_text())
    (with_default / "manifest.json").write_text(json.dumps({**manifest, "upsampling_temperature": 1e-6}))
    assert np.array_equal(cold[1], codes("default", load_bundle(with_default))[1])
    assert np.array_equal(plain[1], codes("asked", load_bundle(with_default), upsampling_temperature=1.0)[1])

    result = cli("sample", "--model", bundle_dir, "--duration", 1, "--upsampling-temperature", 0, "--out",
                 tmp_path / "zero")
    assert result.returncode == 1 and result.stderr.strip().endswith(
        "upsampling_temperature (--upsampling-temperature) must be a positive number, got 0.0")
    assert not (tmp_path / "zero").exists()
    (with_default / "manifest.json").write_text(json.dumps({**manifest, "upsampling_temperature": "hot"}))
    result = cli("sample", "--model", with_default, "--duration", 1, "--out", tmp_path / "hot")
    assert result.returncode == 1 and "upsampling_temperature must be a positive number, got 'hot'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "hot").exists()


def test_upsampling_temperature_can_be_given_a_level(tmp_path, bundle_dir):
    """A temperature for one level changes that level's draw and no other's: level 0 near 0 draws its greedy codes
    over level 1's codes drawn at 1; a level a request leaves out takes the manifest's; the CLI's '1=T,0=T' and a
    run's request.json (keys as strings) mean the same; a level without an upsampler is refused by name."""
    import json
    import shutil

    def codes(out, bundle=None, start=None, **options):
        if start is not None:  # continue from this run's codes above level 0, as `upsample` continues a run
            (tmp_path / out).mkdir()
            for level in (2, 1):
                shutil.copy(start / f"level{level}.npz", tmp_path / out / f"level{level}.npz")
        sample(bundle or load_bundle(bundle_dir), tmp_path / out, SampleRequest(duration=0.5, seed=5, **options),
               progress=False)
        return {level: np.load(tmp_path / out / f"level{level}.npz")["codes"] for level in (2, 1, 0)}

    plain = codes("plain")
    cold0 = codes("cold0", upsampling_temperature={0: 1e-6})
    greedy0 = codes("greedy0", start=tmp_path / "plain", top_k=1)
    assert np.array_equal(plain[1], cold0[1]) and not np.array_equal(plain[0], cold0[0])
    assert np.array_equal(cold0[0], greedy0[0])
    cold1 = codes("cold1", upsampling_temperature={1: 1e-6})
    cold = codes("cold", upsampling_temperature=1e-6)
    assert np.array_equal(cold1[1], cold[1]) and not np.array_equal(cold1[1], plain[1])
    assert not np.array_equal(cold1[0], cold[0])  # level 0 drew at 1 over the same level 1

    with_default = tmp_path / "with-default"
    shutil.copytree(bundle_dir, with_default)
    manifest = json.loads((with_default / "manifest.json").read_text())
    (with_default / "manifest.json").write_text(json.dumps({**manifest, "upsampling_temperature": {"1": 1e-6}}))
    assert load_bundle(with_default).upsampling_temperature == {1: 1e-6}
    assert np.array_equal(cold1[1], codes("default", load_bundle(with_default), upsampling_temperature={0: 1.0})[1])

    result = cli("sample", "--model", bundle_dir, "--duration", 0.5, "--seed", 5, "--levels", "2,1",
                 "--upsampling-temperature", "1=1e-6,0=1", "--out", tmp_path / "preview")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "preview" / "request.json").read_text())["upsampling_temperature"] == \
        {"1": 1e-6, "0": 1.0}
    result = cli("upsample", "--model", bundle_dir, tmp_path / "preview")
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.array_equal(np.load(tmp_path / "preview" / "level1.npz")["codes"], cold1[1])
    assert np.array_equal(np.load(tmp_path / "preview" / "level0.npz")["codes"], cold1[0])

    for given, error in [("2=0.9", "upsampling_temperature (--upsampling-temperature): level 2 has no upsampler "
                                  "(levels 1 and 0 have)"),
                         ("1=0", "upsampling_temperature (--upsampling-temperature) must be a positive number, got "
                                 "0.0"),
                         ("warm", "upsampling_temperature (--upsampling-temperature) must be a number, or LEVEL=T "
                                  "pairs such as 1=0.85,0=1, got 'warm'")]:
        result = cli("sample", "--model", bundle_dir, "--duration", 0.5, "--upsampling-temperature", given, "--out",
                     tmp_path / "bad")
        assert result.returncode == 1 and result.stderr.strip().splitlines() == [f"openjukebox: error: {error}"]
        assert not (tmp_path / "bad").exists()
    result = cli("sample", "--model", bundle_dir, "--duration", 0.5, "--levels", "x", "--out", tmp_path / "bad")
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "openjukebox: error: levels (--levels) must be 2, 2,1 or 2,1,0, got x"]


def test_a_models_own_temperature_draws_the_top_level_unless_asked(tmp_path, bundle_dir):
    """No temperature asked: the manifest's `temperature`, else 1 (the same codes as asking for 1); a request's own
    beats the manifest's; request.json records the temperature drawn at; a bad manifest value is refused by name."""
    import json
    import shutil

    def codes(out, bundle=None, **options):
        sample(bundle or load_bundle(bundle_dir), tmp_path / out,
               SampleRequest(duration=1.0, seed=5, levels=[2, 1], **options), progress=False)
        return [np.load(tmp_path / out / f"level{level}.npz")["codes"] for level in (2, 1)]

    plain, at_one, cold = codes("plain"), codes("at-one", temperature=1.0), codes("cold", temperature=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(plain, at_one)) and not np.array_equal(plain[0], cold[0])
    with_default = tmp_path / "with-default"
    shutil.copytree(bundle_dir, with_default)
    manifest = json.loads((with_default / "manifest.json").read_text())
    (with_default / "manifest.json").write_text(json.dumps({**manifest, "temperature": 1e-6}))
    assert all(np.array_equal(a, b) for a, b in zip(cold, codes("default", load_bundle(with_default))))
    assert json.loads((tmp_path / "default" / "request.json").read_text())["temperature"] == 1e-6
    asked = codes("asked", load_bundle(with_default), temperature=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(plain, asked))

    (with_default / "manifest.json").write_text(json.dumps({**manifest, "temperature": 0}))
    result = cli("sample", "--model", with_default, "--duration", 1, "--out", tmp_path / "zero")
    assert result.returncode == 1 and "temperature" in result.stderr and "positive" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "zero").exists()
