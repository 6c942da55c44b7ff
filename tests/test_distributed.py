"""Two CPU processes with gloo: the codebook stays identical on every rank and equals one process on all data."""

import os
import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from openjukebox.vqvae.bottleneck import Codebook
from cli_runner import torchrun_command


def _codebook_worker(rank: int, world: int, init_file: str, threshold: float, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(100 + rank)  # different local RNGs: restarts must still agree
    cb = Codebook(codebook_size=16, emb_width=4, ema_decay=0.9, restart_threshold=threshold)
    for step in range(5):
        g = torch.Generator().manual_seed(1000 * step + rank)
        z = torch.randn(1, 4, 24, generator=g) + rank  # each rank sees different data
        cb(z, update=True)
    torch.save({k: v.clone() for k, v in cb.state_dict().items()}, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def _run(tmp_path, threshold):
    mp.spawn(_codebook_worker, args=(2, str(tmp_path / "init"), threshold, str(tmp_path)), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


def test_two_ranks_keep_identical_codebooks_through_restarts(tmp_path):
    # A high threshold forces restarts every step, the case where ranks could drift apart.
    states = _run(tmp_path, threshold=2.0)
    for key in ("codebook", "ema_sum", "ema_count"):
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)


def test_two_ranks_equal_one_process_on_the_concatenated_batches(tmp_path):
    """Without restarts the EMA statistics of 2 ranks are the single-process statistics of both batches."""
    states = _run(tmp_path, threshold=0.0)
    cb = Codebook(codebook_size=16, emb_width=4, ema_decay=0.9, restart_threshold=0.0)
    cb.load_state_dict(states[0])
    # Replay on one process, starting from the same initial codebook: the init is rank 0's draw, so
    # rerun rank 0's initialisation exactly, then feed both ranks' data each step.
    torch.manual_seed(100)
    ref = Codebook(codebook_size=16, emb_width=4, ema_decay=0.9, restart_threshold=0.0)
    batches = [[torch.randn(1, 4, 24, generator=torch.Generator().manual_seed(1000 * s + r)) + r for r in range(2)]
               for s in range(5)]
    ref.initialise(batches[0][0][0].T.contiguous())
    for step in range(5):
        torch.manual_seed(100)
        ref(torch.cat(batches[step], dim=2), update=True)
    torch.testing.assert_close(ref.codebook, cb.codebook, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ref.ema_count, cb.ema_count, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_torchrun_two_processes_trains_and_resumes(tmp_path, music_dir):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = torchrun_command("vqvae", "train", "--data", music_dir, "--out", run, "--preset", "tiny", "--steps", "{}",
                           "--batch-size", "2", "--save-every", "3")
    first = subprocess.run([c.format(6) for c in cmd], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000006"
    second = subprocess.run([c.format(9) for c in cmd], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000009"
