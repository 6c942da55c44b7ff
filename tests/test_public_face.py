"""The package as a newcomer meets it: one import for the public names, the API and the CLI agreeing on devices and
option names, and usage mistakes answered with what to do."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch

import openjukebox
from openjukebox.bundle import init_bundle
from openjukebox.errors import ConfigError
from cli_runner import run_cli, run_cli_process


cli = run_cli


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    init_bundle("tiny", path)
    return path


def test_the_public_names_import_from_the_package():
    from openjukebox import (Bundle, Jukebox, OpenJukeboxError, Prior, SampleRequest, VQVAE, train_prior,  # noqa: F401
                             train_vqvae)

    for name in openjukebox.__all__:
        assert getattr(openjukebox, name) is not None
    assert Jukebox.__module__ == "openjukebox.jukebox" and issubclass(OpenJukeboxError, Exception)
    with pytest.raises(AttributeError):
        openjukebox.no_such_name  # noqa: B018


def test_the_api_picks_the_device_as_the_cli_does(bundle_dir):
    from openjukebox import Jukebox
    from openjukebox.devices import resolve_device

    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("auto") == expected
    assert Jukebox.load(bundle_dir).bundle.device == expected
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu0")


def test_an_unknown_sampling_option_is_named_with_the_closest_one(bundle_dir, tmp_path):
    from openjukebox import Jukebox

    with pytest.raises(ConfigError, match="unknown sampling option 'genre'; did you mean 'genres'"):
        Jukebox.load(bundle_dir).sample(tmp_path / "out", duration=1, genre="rock")
    assert not (tmp_path / "out").exists()


def test_version_help_defaults_and_suggestions():
    version = run_cli_process("--version")  # the installed entry point, once
    assert version.returncode == 0 and version.stdout.strip() == f"openjukebox {openjukebox.__version__}"
    typo = cli("smaple")
    assert typo.returncode == 2 and "did you mean 'sample'?" in typo.stderr and len(typo.stderr.splitlines()) == 1
    helptext = " ".join(cli("sample", "--help").stdout.split())
    assert "(the GPU when there is one) (default: auto)" in helptext and "(0: all) (default: 0)" in helptext


def test_sampling_refuses_an_audio_file_as_out_and_names_the_option_that_differs(bundle_dir, tmp_path):
    wav = cli("sample", "--model", bundle_dir, "--duration", 0.3, "--out", tmp_path / "song.wav", "--levels", "2")
    assert wav.returncode == 1 and "writes a folder" in wav.stderr and not (tmp_path / "song.wav").exists()
    first = cli("sample", "--model", bundle_dir, "--duration", 0.3, "--out", tmp_path / "run", "--levels", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    again = cli("sample", "--model", bundle_dir, "--duration", 0.3, "--out", tmp_path / "run", "--levels", "2",
                "--seed", 5)
    assert again.returncode == 1 and "seed was 0, now 5" in again.stderr


def test_a_prompted_run_is_upsampled_from_another_folder(bundle_dir, tmp_path):
    """request.json keeps the prompt's absolute path, so `upsample` works wherever it is run from."""
    here = tmp_path / "here"
    here.mkdir()
    rng = np.random.default_rng(0)
    sf.write(here / "mine.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    first = cli("sample", "--model", bundle_dir, "--duration", 0.6, "--out", "run", "--levels", "2",
                "--prompt", "mine.wav", "--prompt-seconds", 0.3, cwd=here)
    assert first.returncode == 0, first.stderr[-2000:]
    elsewhere = cli("upsample", here / "run", "--model", bundle_dir, cwd=tmp_path)
    assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]
    assert (here / "run" / "sample-0-level0.wav").is_file()


def test_threads_default_to_the_cores_not_busy(monkeypatch):
    """On a machine busy with other work, PyTorch's default (every core) makes its threads wait on each other:
    the default leaves out the cores the load average says are taken, and says so; OMP_NUM_THREADS and an explicit
    count are obeyed."""
    import warnings

    from openjukebox.devices import choose_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
        monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 1.0, 1.0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert choose_threads() == 1 and torch.get_num_threads() == 1
        assert len(caught) == 1 and "load 2.6 on 4 cores" in str(caught[0].message)
        monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 1.0, 1.0))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert choose_threads() == 4
        monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 1.0, 1.0))
        assert choose_threads(3) == 3 and torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
        assert choose_threads() == 2
        with pytest.raises(ConfigError, match="at least 1"):
            choose_threads(0)
    finally:
        torch.set_num_threads(before)


def test_sampling_errors_name_the_parameter_and_the_option():
    from openjukebox import Filters, SampleRequest

    with pytest.raises(ConfigError, match=r"^duration \(--duration\) must be positive, got -1"):
        SampleRequest(duration=-1).check()
    with pytest.raises(ConfigError, match=r"^top_p \(--top-p\) must be in \[0, 1\], got 2"):
        Filters(top_p=2)


def test_models_load_by_their_classes_and_jukebox_encodes_and_decodes(bundle_dir, tmp_path):
    """VQVAE.load / Prior.load / Bundle.load return the models; Jukebox.encode then decode gives audio of the
    file's length (the tiny bundle's random weights: a round trip of shapes, not of sound)."""
    from openjukebox import VQVAE, Bundle, Jukebox, Prior

    bundle = Bundle.load(bundle_dir)
    assert isinstance(VQVAE.load(bundle_dir / "vqvae"), VQVAE)
    prior = Prior.load(bundle_dir / "prior_2")
    assert isinstance(prior, Prior) and prior.config == bundle.priors[2].config
    rate = bundle.vqvae.config.sample_rate
    sf.write(tmp_path / "x.wav", np.zeros(rate, dtype=np.float32), rate)
    jukebox = Jukebox(bundle)
    codes = jukebox.encode(tmp_path / "x.wav")
    assert [c.shape for c in codes] == [(1, rate // hop) for hop in bundle.vqvae.hop_lengths]
    audio = jukebox.decode(codes[2], level=2)
    assert audio.shape == (1, rate) and audio.dtype == np.float32
