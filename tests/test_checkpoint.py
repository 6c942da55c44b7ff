"""Checkpoints: complete or absent, never half-written; unsafe or foreign files refused."""

import errno
import json
import shutil

import pytest
import torch

from openjukebox.errors import CheckpointError
from openjukebox.train import checkpoint as ckpt_module
from openjukebox.train.checkpoint import latest_checkpoint, load_training_state, load_weights, save_checkpoint
from openjukebox.vqvae.loading import load_vqvae


def _save(run, step, value):
    return save_checkpoint(run, step, {"w": torch.full((3,), float(value))}, {"step": step}, "test", {"note.txt": "x"})


def test_save_points_latest_at_complete_checkpoint_and_keeps_two(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step, step)
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "step-00000003"
    assert load_weights(latest)["w"].tolist() == [3.0] * 3
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == ["step-00000002", "step-00000003"]
    assert json.loads((latest / "meta.json").read_text())["step"] == 3


def test_disk_full_while_saving_leaves_last_good_checkpoint(tmp_path, monkeypatch):
    _save(tmp_path, 1, 1.0)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_module.torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="previous one is intact"):
        _save(tmp_path, 2, 2.0)
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "step-00000001"
    assert load_weights(latest)["w"].tolist() == [1.0] * 3
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_training_state_with_code_execution_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    ckpt = _save(tmp_path, 1, 1.0)
    torch.save({"step": Exploit()}, ckpt / "training_state.pt")
    with pytest.raises(CheckpointError, match="unsafe"):
        load_training_state(ckpt)
    assert not marker.exists()


def test_truncated_weights_are_refused(tmp_path):
    ckpt = _save(tmp_path, 1, 1.0)
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_weights(ckpt)


def test_load_vqvae_refuses_other_kind_and_other_version(tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    ckpt = latest_checkpoint(run)
    meta = json.loads((ckpt / "meta.json").read_text())
    (ckpt / "meta.json").write_text(json.dumps({**meta, "kind": "prior"}))
    with pytest.raises(CheckpointError, match="'prior' model"):
        load_vqvae(run)
    (ckpt / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format 99"):
        load_vqvae(run)


def test_load_vqvae_gives_model_and_step(tiny_run):
    model, step = load_vqvae(tiny_run)
    assert step == 60 and not model.training
