"""Shared fixtures: synthetic music folders and a briefly trained tiny VQ-VAE run (made once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from openjukebox.data.synth import write_synthetic_dataset
from openjukebox.vqvae.training import train_vqvae


def pytest_configure(config):
    """Side by side (`pytest -n 2`, pytest-xdist), each worker runs on one CPU thread: two workers of two threads
    on two cores spin against each other, and the tests' models are too small to gain from a second thread."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def music_dir(tmp_path_factory) -> Path:
    """Four 6-second stereo synthetic songs at 22.05 kHz (so loading also resamples to the tiny model's 16 kHz)."""
    path = tmp_path_factory.mktemp("music")
    write_synthetic_dataset(path, files=4, seconds=6.0, sample_rate=22050, seed=1)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, music_dir) -> Path:
    """A tiny VQ-VAE trained for 60 steps: enough for initialised codebooks and working encode/decode."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    train_vqvae(music_dir, run, "tiny", steps=60, batch_size=4, save_every=30, progress=False)
    return run
