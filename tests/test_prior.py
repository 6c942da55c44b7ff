"""Priors: teacher-forced logits equal cached step-by-step logits; overfitting and greedy reproduction;
labels matter; the unconditional path; windowed and primed sampling."""

import dataclasses

import pytest
import torch

from openjukebox.prior.conditioning import Labels
from openjukebox.prior.model import Prior, PriorConfig
from openjukebox.prior.transformer import TransformerConfig
from openjukebox.sample.ancestral import sample_level, sample_window, window_starts
from openjukebox.sample.decode import Filters, filter_logits

TRANSFORMER = TransformerConfig(width=32, depth=3, heads=2, n_ctx=16, blocks=4, attn_order=2)


def top_prior(**kw):
    return Prior(PriorConfig(level=2, bins=12, transformer=TRANSFORMER, hop_length=128, n_artists=3, n_genres=4,
                             max_genres=2, timing_bins=8, min_duration=1.0, max_duration=60.0, sample_rate=16000, **kw))


def labels(artist=0, batch=1):
    return Labels(artist=torch.full((batch,), artist), genres=torch.tensor([[1, -1]] * batch),
                  total_length=torch.full((batch,), 16000 * 20), offset=torch.zeros(batch, dtype=torch.long))


@pytest.mark.parametrize("kind", ["top", "top_merged", "upsampler", "unconditional"])
def test_cached_steps_give_the_teacher_forced_logits(kind):
    torch.manual_seed(0)
    upper = None
    if kind == "upsampler":
        prior = Prior(PriorConfig(level=1, bins=12, transformer=TRANSFORMER, hop_length=32, n_artists=3, n_genres=4,
                                  upper_bins=10, cond_width=8, cond_depth=2, cond_res_scale=True))
        upper = torch.randint(0, 10, (2, 4))
    elif kind == "unconditional":
        prior = Prior(PriorConfig(level=2, bins=12, transformer=TRANSFORMER, hop_length=128))
    else:
        prior = top_prior(merged_decoder=kind == "top_merged")
    prior.eval()
    y = None if kind == "unconditional" else labels(batch=2)
    codes = torch.randint(0, 12, (2, 16))
    with torch.no_grad():
        full = prior(codes, y, upper)
        cond = prior.condition(y, upper, 2, 16)
        start = prior.start(y, 2)
        caches = prior.new_caches(2)
        steps = torch.stack([prior.step(codes[:, max(t - 1, 0)], torch.tensor([t]), cond, caches, start)
                             for t in range(16)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=0)


def test_tiny_prior_overfits_and_reproduces_greedily():
    torch.manual_seed(0)
    prior = top_prior()
    target = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3]])
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(300):
        loss = prior.loss(target, labels())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    prior.eval()
    out = sample_window(prior, 16, target[:, :0], labels(), None, seed=0, filters=Filters(top_k=1))
    assert out.tolist() == target.tolist()


def test_changing_the_artist_changes_the_logits():
    torch.manual_seed(0)
    prior = top_prior().eval()
    codes = torch.randint(0, 12, (1, 16))
    with torch.no_grad():
        assert not torch.allclose(prior(codes, labels(artist=0)), prior(codes, labels(artist=1)))
        # Genre slots of −1 are absent: adding an absent genre changes nothing.
        y = labels()
        same = dataclasses.replace(y, genres=torch.tensor([[1, -1]]))
        torch.testing.assert_close(prior(codes, y), prior(codes, same))


def test_unconditional_prior_samples_without_labels():
    torch.manual_seed(0)
    prior = Prior(PriorConfig(level=2, bins=12, transformer=TRANSFORMER, hop_length=128)).eval()
    out = sample_level(prior, 40, None, seed=1, batch=3)
    assert out.shape == (3, 40) and out.min() >= 0 and out.max() < 12


def test_windowed_sampling_keeps_the_prompt_and_reaches_the_length():
    torch.manual_seed(0)
    prior = top_prior().eval()
    prompt = torch.randint(0, 12, (2, 10))
    out = sample_level(prior, 50, labels(batch=2), seed=0, prompt=prompt,
                       hop_fraction=0.5, batch=2)
    assert out.shape == (2, 50)
    assert torch.equal(out[:, :10], prompt)
    same = sample_level(prior, 50, labels(batch=2), seed=0, prompt=prompt,
                        hop_fraction=0.5, batch=2)
    assert torch.equal(out, same)  # same seed, same codes
    # Resuming from the codes of the first two windows gives the codes of the uninterrupted run.
    resumed = sample_level(prior, 50, labels(batch=2), seed=0, prompt=out[:, :24], hop_fraction=0.5, batch=2)
    assert torch.equal(resumed, out)


def test_window_starts_cover_the_song():
    assert window_starts(10, 16, 0.5) == [0]
    assert window_starts(40, 16, 0.5) == [0, 8, 16, 24]
    assert window_starts(40, 16, 0.5)[-1] + 16 == 40


def test_filter_logits_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, Filters(top_k=2))[0, 2:]).all()
    # Nucleus 0.7: 0.5 alone does not cover it, 0.5 + 0.3 does, so two tokens stay.
    kept = torch.isfinite(filter_logits(logits, Filters(top_p=0.7)))[0].tolist()
    assert kept == [True, True, False, False]
    torch.testing.assert_close(filter_logits(logits, Filters(temperature=2.0)), logits / 2)
