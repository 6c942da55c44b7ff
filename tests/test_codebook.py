"""The EMA codebook against hand-computed updates and restarts."""

import pytest
import torch

from openjukebox.vqvae.bottleneck import Codebook


def codebook_with(values, threshold, decay=0.5):
    cb = Codebook(codebook_size=len(values), emb_width=1, ema_decay=decay, restart_threshold=threshold)
    cb.codebook.copy_(torch.tensor(values)[:, None])
    cb.ema_sum.copy_(torch.tensor(values)[:, None])
    cb.ema_count.fill_(1.0)
    cb.initialised.fill_(True)
    return cb


def as_latent(xs):
    """Vectors of width 1 → encoder output shaped (batch=1, emb_width=1, tokens)."""
    return torch.tensor(xs, dtype=torch.float32)[None, None]


def test_ema_update_matches_hand_computation():
    # codes 0 (at 0.0) and 1 (at 10.0); inputs 1, 2, 3 are all nearest to code 0.
    cb = codebook_with([0.0, 10.0], threshold=0.4)
    result = cb(as_latent([1.0, 2.0, 3.0]), update=True)
    assert result.codes.tolist() == [[0, 0, 0]]
    # count0 = 0.5·1 + 0.5·3 = 2, sum0 = 0.5·0 + 0.5·6 = 3 → code 1.5; code 1: count 0.5, sum 5 → stays 10.
    assert cb.ema_count.tolist() == pytest.approx([2.0, 0.5])
    assert cb.codebook[:, 0].tolist() == pytest.approx([1.5, 10.0])
    assert result.dead_codes.item() == 0
    # Commitment uses the updated code: ((1−1.5)² + (2−1.5)² + (3−1.5)²) / 3.
    assert result.commit_loss.item() == pytest.approx(2.75 / 3)
    assert result.usage.item() == pytest.approx(0.5)
    assert result.perplexity.item() == pytest.approx(1.0)


def test_unused_code_below_threshold_is_restarted_from_an_encoder_output():
    cb = codebook_with([0.0, 10.0], threshold=0.6)
    result = cb(as_latent([1.0, 2.0, 3.0]), update=True)
    assert result.dead_codes.item() == 1
    assert cb.codebook[0, 0].item() == pytest.approx(1.5)
    restarted = cb.codebook[1, 0].item()
    # A restart takes an encoder output (plus noise of std 0.01/sqrt(D) when there are fewer outputs than codes).
    assert min(abs(restarted - v) for v in (1.0, 2.0, 3.0)) < 0.1
    # Its EMA state is reset: sum = the new vector, count = 1.
    assert cb.ema_count.tolist() == pytest.approx([2.0, 1.0])
    assert cb.ema_sum[1, 0].item() == pytest.approx(restarted)


def test_no_update_in_eval_mode_and_straight_through_gradient():
    cb = codebook_with([0.0, 10.0], threshold=0.4)
    z = as_latent([1.0, 9.0]).requires_grad_()
    result = cb(z, update=False)
    assert cb.codebook[:, 0].tolist() == [0.0, 10.0]
    assert result.quantised.detach().flatten().tolist() == [0.0, 10.0]
    result.quantised.sum().backward()
    assert z.grad.flatten().tolist() == [1.0, 1.0]


def test_first_training_batch_initialises_codebook_from_encoder_outputs():
    cb = Codebook(codebook_size=4, emb_width=2, ema_decay=0.99, restart_threshold=1.0)
    x = torch.arange(16, dtype=torch.float32).reshape(1, 2, 8)
    cb(x, update=True)
    rows = {tuple(r) for r in x[0].T.tolist()}
    # The EMA step right after initialisation moves codes towards their assigned outputs, so check the
    # initial draw itself: every code is one of the encoder outputs.
    fresh = Codebook(codebook_size=4, emb_width=2, ema_decay=0.99, restart_threshold=1.0)
    fresh.initialise(x[0].T.contiguous())
    assert all(tuple(code) in rows for code in fresh.codebook.tolist())
    assert fresh.ema_count.tolist() == [1.0] * 4
    assert bool(cb.initialised)
    # With more outputs than codes, initial codes are distinct encoder outputs.
    assert len({tuple(c) for c in fresh.codebook.tolist()}) == 4


def test_nearest_matches_brute_force():
    torch.manual_seed(0)
    cb = Codebook(codebook_size=32, emb_width=8, ema_decay=0.99, restart_threshold=1.0)
    cb.codebook.copy_(torch.randn(32, 8))
    x = torch.randn(100, 8)
    brute = torch.cdist(x, cb.codebook).argmin(1)
    assert torch.equal(cb.nearest(x), brute)
