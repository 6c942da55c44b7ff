"""The compiled static-shape decode step (sample/decode.py) against the same step run eagerly, and the counter-based
sampling noise (sample/noise.py) against an independent plain-Python hash and the distribution it must draw from.

Compiling is slow on 2 cores (inductor, ~15 s a structure), so each structure is compiled once and every check of
it runs on that compilation: priors of one transformer structure share one traced step. Here the matrix products
are always inductor's own CPP kernels: sampling lets autotuning choose between them and ATen's by timing, which
would leave untested whichever lost, and costs a quarter of the compilation."""

import dataclasses
import functools
import math
import warnings
import weakref

import pytest
import torch

from openjukebox.prior.attention import COLUMN, DENSE, ENCODER_DECODER, PREFIX, PREVIOUS_ROW, ROW
from openjukebox.prior.conditioning import Labels
from openjukebox.prior.model import Prior, PriorConfig
from openjukebox.prior.transformer import TransformerConfig
from openjukebox.sample import decode
from openjukebox.sample.ancestral import sample_level
from openjukebox.sample.decode import Decoder, Filters, compiled_decode_step, decode_step
from openjukebox.sample.noise import code_keys, draw, exponential_noise, mix32, sample_keys

N_CTX, BLOCKS = 24, 6  # blocks of 4: every window crosses several block boundaries
BATCH = 2


def _transformer(**kw) -> TransformerConfig:
    return TransformerConfig(**{"width": 32, "depth": 3, "heads": 2, "n_ctx": N_CTX, "blocks": BLOCKS, **kw})


LABELLED = dict(n_artists=3, n_genres=4, max_genres=2, sample_rate=16000)
STRUCTURES = {
    # attention order 0, merged decoder (as the released 5b), timing signal
    "dense top prior": PriorConfig(level=2, bins=16, transformer=_transformer(attn_order=0, depth=2), hop_length=128,
                                   timing_bins=8, min_duration=1.0, max_duration=60.0, merged_decoder=True, **LABELLED),
    # attention order 2 (row, column, previous row), conditioned on the level above
    "upsampler": PriorConfig(level=1, bins=16, transformer=_transformer(), hop_length=32, upper_bins=16, cond_width=8,
                             cond_depth=2, cond_res_scale=True, **LABELLED),
    # the layer kinds of order 10 (5b_lyrics): factorized layers and an encoder-decoder layer over a lyrics encoder
    "lyrics encoder-decoder prior": PriorConfig(
        level=2, bins=16, transformer=_transformer(depth=4, patterns=(ROW, COLUMN, PREVIOUS_ROW, ENCODER_DECODER)),
        hop_length=128, timing_bins=8, min_duration=1.0, max_duration=60.0, merged_decoder=True, n_vocab=10,
        n_tokens=8, lyrics_encoder=TransformerConfig(width=16, depth=2, heads=2, n_ctx=8, blocks=2), **LABELLED),
    # the layer kinds of order 12 (1b_lyrics): one merged sequence of 6 lyric tokens then 18 codes, with prefix and
    # dense layers
    "merged lyrics prior": PriorConfig(
        level=2, bins=16, transformer=_transformer(depth=6, prefix_len=6,
                                                   patterns=(ROW, COLUMN, PREVIOUS_ROW, PREFIX, PREFIX, DENSE)),
        hop_length=128, timing_bins=8, min_duration=1.0, max_duration=60.0, n_vocab=10, n_tokens=6, **LABELLED),
}


@pytest.fixture(autouse=True, scope="module")
def only_cpp_gemm_kernels():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decode, "_CPU_OPTIONS", {**decode._CPU_OPTIONS, "max_autotune_gemm_backends": "CPP"})
        yield


@functools.cache  # one prior per structure for the whole module: its compiled step is made once
def build(name: str) -> tuple[Prior, Labels, torch.Tensor | None]:
    torch.manual_seed(0)
    prior = Prior(STRUCTURES[name]).eval()
    for p in prior.parameters():  # zero-initialised layers (encoder-decoder) must count too
        if not p.any():
            torch.nn.init.normal_(p, std=0.1)
    config = prior.config
    lyrics = torch.randint(1, 10, (BATCH, config.n_tokens)) if config.n_tokens else None
    labels = Labels(torch.tensor([0, 2]), torch.tensor([[1, -1], [3, 0]]), torch.full((BATCH,), 16000 * 20),
                    torch.zeros(BATCH, dtype=torch.long), lyrics)
    upper = torch.randint(0, 16, (BATCH, 6 * N_CTX)) if config.upper_bins else None
    return prior, labels, upper


# The dense top prior's layer kinds are all in the other three (dense layers in the merged lyrics prior, the merged
# decoder and timing signal in the encoder-decoder one): compiling it too would add a minute and no coverage.
COMPILED = [name for name in STRUCTURES if name != "dense top prior"]


@pytest.mark.slow
@pytest.mark.parametrize("name", COMPILED)
def test_compiled_step_gives_the_eager_logits_and_codes(name):
    """Two windows, one drawn from nothing and one after a known prefix that ends inside a block; at every position
    the compiled step's logits are within 1e-5 of the eager step's, and the codes drawn are identical. Then the
    whole sampler, windowed, compiled and not: the same codes."""
    prior, labels, upper = build(name)
    compiled = compiled_decode_step(prior)
    eager, traced = (Decoder(prior, BATCH, Filters(), compile=False) for _ in range(2))
    n_codes = prior.config.n_ctx
    known = torch.randint(0, 16, (BATCH, 7))
    with torch.no_grad():
        for prefix in (known[:, :0], known):
            windows = [d.load_window(prefix, n_codes, labels, None if upper is None else upper[:, : n_codes // 4 + 1],
                                     seed=3, first_code=40) for d in (eager, traced)]
            first, last = windows[0]
            for p in range(first, last):
                pos = torch.tensor([p])
                expected = decode_step(prior, eager.state, pos, Filters())
                got = compiled(prior, traced.state, pos, Filters())
                torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
            assert torch.equal(traced.codes(last), eager.codes(last))
            assert torch.equal(traced.codes(last)[:, : prefix.shape[1]], prefix)

        song = 3 * n_codes
        options = dict(labels=labels, seed=5, upper_codes=upper, hop_fraction=0.5, batch=BATCH)
        assert torch.equal(sample_level(prior, song, compile=True, **options),
                           sample_level(prior, song, compile=False, **options))


@pytest.mark.slow
def test_one_compilation_serves_every_window_and_a_resumed_run():
    """Recompilations (torch._dynamo's count of compiled graphs) do not grow with the number of windows, nor for a
    run resumed from saved codes; that run equals an uninterrupted one, with compile on and off."""
    prior, labels, upper = build("upsampler")
    options = dict(labels=labels, seed=9, upper_codes=upper, hop_fraction=0.5, batch=BATCH)
    counters = torch._dynamo.utils.counters["stats"]
    sample_level(prior, N_CTX, compile=True, **options)  # compiles here, or found compiled by an earlier test
    graphs = counters["unique_graphs"]
    long = sample_level(prior, 6 * N_CTX, compile=True, **options)  # 11 windows
    resumed = sample_level(prior, 6 * N_CTX, prompt=long[:, : 2 * N_CTX], compile=True, **options)
    assert counters["unique_graphs"] == graphs
    uninterrupted = sample_level(prior, 6 * N_CTX, compile=False, **options)
    assert torch.equal(long, uninterrupted) and torch.equal(resumed, uninterrupted)
    assert torch.equal(sample_level(prior, 6 * N_CTX, prompt=long[:, :30], compile=False, **options), uninterrupted)

    # The compiled code holds the weights it was compiled with: changed weights are compiled anew, not ignored.
    with torch.no_grad():
        prior.transformer.blocks[0].mlp.c_fc.weight.mul_(3.0)
    assert torch.equal(sample_level(prior, 2 * N_CTX, compile=True, **options),
                       sample_level(prior, 2 * N_CTX, compile=False, **options))


@pytest.mark.slow
def test_without_a_cpp_compiler_sampling_falls_back_to_eager_with_one_warning(monkeypatch):
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", (None, "/nonexistent/c++"))
    monkeypatch.setattr(decode, "_compiled", weakref.WeakKeyDictionary())
    monkeypatch.setattr(decode, "_unavailable", [])
    torch._dynamo.reset()
    prior, labels, _ = build("dense top prior")
    options = dict(labels=labels, seed=2, hop_fraction=0.5, batch=BATCH)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            codes = sample_level(prior, 2 * N_CTX, compile=True, **options)
            again = sample_level(prior, 2 * N_CTX, compile=True, **options)
    finally:
        torch._dynamo.reset()  # nothing compiled under the broken compiler stays for later tests
    ours = [str(w.message) for w in caught if "torch.compile" in str(w.message)]
    assert len(ours) == 1 and "C++ compiler" in ours[0] and "\n" not in ours[0]
    expected = sample_level(prior, 2 * N_CTX, compile=False, **options)
    assert torch.equal(codes, expected) and torch.equal(again, expected)


def _lowbias32(x: int) -> int:
    """The hash written out with Python's unbounded ints, wrapping by masking after each product."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash_equals_lowbias32_computed_with_unbounded_integers():
    values = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF] + torch.randint(0, 2**32, (500,)).tolist()
    assert mix32(torch.tensor(values)).tolist() == [_lowbias32(v) for v in values]
    assert [mix32(v) for v in values[:6]] == [_lowbias32(v) for v in values[:6]]
    assert _lowbias32(1) != _lowbias32(2)


def test_draws_follow_the_probabilities():
    """20 000 positions drawn from one distribution: chi-square of the counts against the probabilities, with 4
    degrees of freedom, below its 0.1 % critical value (18.47). The noise is deterministic, so this cannot flake."""
    probs = torch.tensor([[0.4, 0.3, 0.15, 0.1, 0.05]])
    keys = sample_keys(11, torch.arange(1))
    noise = exponential_noise(keys, torch.arange(20_000), code_keys(5))[0]
    counts = torch.bincount(draw(probs.expand(20_000, 5), noise), minlength=5).double()
    expected = probs[0].double() * 20_000
    assert ((counts - expected) ** 2 / expected).sum() < 18.47
    # the exponential's mean and variance are 1
    assert abs(noise.mean().item() - 1) < 0.01 and abs(noise.var().item() - 1) < 0.03


def test_noise_differs_by_seed_sample_position_and_code():
    keys = sample_keys(0, torch.arange(3))
    noise = exponential_noise(keys, torch.arange(50), code_keys(64))  # (3, 50, 64)
    flat = noise.reshape(-1)
    assert flat.unique().numel() > 0.99 * flat.numel()
    other_seed = exponential_noise(sample_keys(1, torch.arange(3)), torch.arange(50), code_keys(64))
    assert torch.corrcoef(torch.stack([flat, other_seed.reshape(-1)]))[0, 1].abs() < 0.02
    # neighbouring positions and neighbouring samples are uncorrelated
    assert torch.corrcoef(torch.stack([noise[:, 1:].reshape(-1), noise[:, :-1].reshape(-1)]))[0, 1].abs() < 0.02
    assert torch.corrcoef(torch.stack([noise[0].reshape(-1), noise[1].reshape(-1)]))[0, 1].abs() < 0.05
    assert math.isfinite(flat.max().item()) and flat.min().item() > 0


def test_samples_drawn_apart_equal_samples_drawn_together():
    """What lets torchrun split a request's samples across processes: a sample's codes depend on its index in the
    request, not on the batch it was drawn in."""
    prior, labels, upper = build("upsampler")
    options = dict(seed=4, hop_fraction=0.5)
    together = sample_level(prior, 2 * N_CTX, labels, upper_codes=upper, batch=BATCH, **options)
    for i in range(BATCH):
        row = Labels(labels.artist[i: i + 1], labels.genres[i: i + 1], labels.total_length[i: i + 1],
                     labels.offset[i: i + 1])
        alone = sample_level(prior, 2 * N_CTX, row, upper_codes=upper[i: i + 1], batch=1,
                             sample_ids=torch.tensor([i]), **options)
        assert torch.equal(alone[0], together[i])


def test_a_narrow_prior_samples_on_one_thread_and_draws_the_same_codes(monkeypatch):
    """A prior narrower than ONE_THREAD_BELOW_WIDTH steps on one CPU thread (its operations are too small to share,
    and on a busy machine they would wait for a second thread); a wider one keeps the threads it was given; the
    thread count is restored after, and the codes do not depend on it."""
    from openjukebox.sample import ancestral

    seen = []

    def recording_step(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return decode_step(*args, **kwargs)

    narrow, labels, upper = build("upsampler")
    wide = Prior(dataclasses.replace(narrow.config, transformer=dataclasses.replace(
        narrow.config.transformer, width=ancestral.ONE_THREAD_BELOW_WIDTH))).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(decode, "decode_step", recording_step)
            one = sample_level(narrow, 2 * N_CTX, labels, seed=4, upper_codes=upper, batch=BATCH, compile=False)
            assert set(seen) == {1} and torch.get_num_threads() == 2
            seen.clear()
            sample_level(wide, N_CTX, labels, seed=4, upper_codes=upper, batch=BATCH, compile=False)
            assert set(seen) == {2}
        monkeypatch.setattr(ancestral, "ONE_THREAD_BELOW_WIDTH", 0)  # as before: every prior on all threads
        assert torch.equal(one, sample_level(narrow, 2 * N_CTX, labels, seed=4, upper_codes=upper, batch=BATCH,
                                             compile=False))
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_gpu_suite_runs_at_tiny_sizes_on_cpu(tmp_path):
    """benchmarks/gpu_suite.py, the script a lent GPU runs, end to end at tiny sizes (eager steps only: the
    compiled step is checked above)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "gpu_suite.py"
    out = tmp_path / "gpu.json"
    result = subprocess.run([sys.executable, str(script), "--sizes", "tiny", "--device", "cpu", "--dtype", "float32",
                             "--batch", "1", "2", "--inductor-batch", "--tokens", "8", "--music-seconds", "1",
                             "--out", str(out)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    for key in ("top", "upsampler"):
        row = figures["priors"][key]
        assert set(row["batches"]) == {"1", "2"}
        assert all(t["ms_per_token"] > 0 and t["mode"] == "eager" for t in row["batches"]["1"])
    assert figures["one_minute"]["compute_minutes"] > figures["one_minute"]["floor_minutes"] > 0
    assert "| top (" in result.stdout
