"""Interrupted runs: kill -9 at any moment, rerun the same command, end at the requested step."""

import csv
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from openjukebox.train.checkpoint import latest_checkpoint
from openjukebox.vqvae.training import train_vqvae


def _train_cmd(data, out, steps, save_every):
    return [sys.executable, "-m", "openjukebox", "vqvae", "train", "--data", str(data), "--out", str(out),
            "--preset", "tiny", "--steps", str(steps), "--batch-size", "2", "--save-every", str(save_every)]


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_checkpoints", [1, 3])
def test_kill_minus_9_then_same_command_resumes_to_the_requested_step(tmp_path, music_dir, kill_after_checkpoints):
    run = tmp_path / "run"
    cmd = _train_cmd(music_dir, run, steps=24, save_every=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    target = f"step-{4 * kill_after_checkpoints:08d}"
    while time.time() < deadline:
        latest = run / "checkpoints" / "latest"
        if latest.is_file() and latest.read_text().strip() >= target:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(run)
    assert killed_at is not None
    load_file(str(killed_at / "model.safetensors"))  # the last good checkpoint is complete

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert latest_checkpoint(run).name == "step-00000024"
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 24  # resumed rows replace, never duplicate
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert not list((run / "checkpoints").glob(".tmp-*"))
    assert len(list((run / "checkpoints").glob("step-*"))) == 2  # keeps the last two


def test_resumed_training_equals_uninterrupted_training(tmp_path, music_dir):
    """On CPU a run stopped at step 6 and resumed to 12 ends with exactly the weights of a run straight to 12."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_vqvae(music_dir, straight, "tiny", steps=12, batch_size=2, save_every=6, progress=False)
    train_vqvae(music_dir, resumed, "tiny", steps=6, batch_size=2, save_every=6, progress=False)
    train_vqvae(music_dir, resumed, "tiny", steps=12, batch_size=2, save_every=6, progress=False)
    a = load_file(str(latest_checkpoint(straight) / "model.safetensors"))
    b = load_file(str(latest_checkpoint(resumed) / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_a_run_saved_with_index_keyed_optimizer_state_resumes_exactly(tmp_path, music_dir):
    """Runs saved before sharding support keyed the optimizer state by parameter index (torch's own
    Optimizer.state_dict()); such a run resumes to the same weights as one never stopped."""
    from openjukebox.train.checkpoint import TRAINING_STATE

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_vqvae(music_dir, straight, "tiny", steps=12, batch_size=2, save_every=6, progress=False)
    train_vqvae(music_dir, resumed, "tiny", steps=6, batch_size=2, save_every=6, progress=False)
    state_file = latest_checkpoint(resumed) / TRAINING_STATE
    state = torch.load(state_file, weights_only=True)
    names = state["optimizer"]["param_groups"][0]["params"]
    assert all(isinstance(n, str) for n in names)  # today's format: keyed by parameter name
    state["optimizer"] = {"state": {names.index(n): v for n, v in state["optimizer"]["state"].items()},
                          "param_groups": [{**state["optimizer"]["param_groups"][0], "params": list(range(len(names)))}]}
    torch.save(state, state_file)
    train_vqvae(music_dir, resumed, "tiny", steps=12, batch_size=2, save_every=6, progress=False)
    a = load_file(str(latest_checkpoint(straight) / "model.safetensors"))
    b = load_file(str(latest_checkpoint(resumed) / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_rerun_on_a_finished_run_does_nothing(tmp_path, music_dir):
    run = tmp_path / "run"
    assert train_vqvae(music_dir, run, "tiny", steps=3, batch_size=2, save_every=3, progress=False) == 3
    before = (latest_checkpoint(run) / "model.safetensors").read_bytes()
    assert train_vqvae(music_dir, run, "tiny", steps=3, batch_size=2, save_every=3, progress=False) == 3
    assert (latest_checkpoint(run) / "model.safetensors").read_bytes() == before
