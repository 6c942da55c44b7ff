"""Factorized attention: who sees whom, checked against masks built independently; KV-cache decoding equals a
full forward pass."""

import pytest
import torch
import torch.nn.functional as F

from openjukebox.prior.attention import (COLUMN, DENSE, ENCODER_DECODER, PREFIX, PREVIOUS_ROW, ROW,
                                        SELF_ATTENTION_PATTERNS as PATTERNS, factorized_attention)
from openjukebox.prior.transformer import Transformer, TransformerConfig, layer_patterns

N_CTX, BLOCK_LEN = 12, 4
PREFIX_KEYS = 6  # a prefix layer's keys: the lyrics of a merged sequence, rounded up


def reference_mask(pattern: int, n: int, block_len: int) -> torch.Tensor:
    """mask[i, j] = query i may see key j, written out position by position from the pattern's definition."""
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            bi, oi = divmod(i, block_len)
            bj, oj = divmod(j, block_len)
            if pattern == DENSE:
                mask[i, j] = j <= i
            elif pattern == ROW:
                mask[i, j] = bi == bj and oj <= oi
            elif pattern == COLUMN:
                mask[i, j] = oi == oj and bj <= bi
            elif pattern == PREVIOUS_ROW:
                mask[i, j] = bj == bi - 1
            elif pattern == PREFIX:
                mask[i, j] = j <= i and j < PREFIX_KEYS
    return mask


def visibility(pattern: int, n: int, block_len: int) -> torch.Tensor:
    """Which keys influence which outputs, found by perturbing one value at a time (no mask involved)."""
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, n, 8), torch.randn(1, 1, n, 8)
    v = torch.zeros(1, 1, n, 8)
    base = factorized_attention(q, k, v, pattern, block_len, PREFIX_KEYS)
    seen = torch.zeros(n, n, dtype=torch.bool)
    for j in range(n):
        v2 = v.clone()
        v2[0, 0, j] = 1.0
        seen[:, j] = (factorized_attention(q, k, v2, pattern, block_len, PREFIX_KEYS) - base).abs().sum(-1)[0, 0] > 0
    return seen


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("n", [N_CTX, 10, 3])  # whole blocks, a partial last block, less than one block
def test_each_pattern_sees_exactly_its_positions(pattern, n):
    assert torch.equal(visibility(pattern, n, BLOCK_LEN), reference_mask(pattern, n, BLOCK_LEN))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_equals_dense_attention_with_the_reference_mask(pattern):
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, N_CTX, 8) for _ in range(3))
    mask = reference_mask(pattern, N_CTX, BLOCK_LEN)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    expected[:, :, ~mask.any(1)] = 0.0  # previous-row queries of block 0 see nothing: output 0, as released
    torch.testing.assert_close(factorized_attention(q, k, v, pattern, BLOCK_LEN, PREFIX_KEYS), expected, atol=1e-6, rtol=1e-5)


def test_released_layer_cycle():
    assert layer_patterns(2, 7) == [ROW, COLUMN, PREVIOUS_ROW, ROW, COLUMN, PREVIOUS_ROW, ROW]
    assert layer_patterns(0, 3) == [DENSE] * 3


def test_released_lyrics_layer_cycles():
    """As the original code builds them: 5b_lyrics has encoder-decoder layers at 18, 28, ..., 78 of 79; 1b_lyrics
    has prefix, prefix, dense where d % 16 == 15 (layers 15, 31, 47, 63: d % 3 = 0, 1, 2, 0)."""
    order_10 = layer_patterns(10, 79)
    assert [d for d, p in enumerate(order_10) if p == ENCODER_DECODER] == list(range(18, 79, 10))
    assert [p for p in order_10 if p != ENCODER_DECODER] == [(ROW, COLUMN, PREVIOUS_ROW)[d % 3] for d in range(72)]
    assert layer_patterns(6, 8) == [ROW, COLUMN, PREVIOUS_ROW, ENCODER_DECODER] * 2
    order_12 = layer_patterns(12, 72)
    assert [(d, order_12[d]) for d in (15, 31, 47, 63)] == [(15, PREFIX), (31, PREFIX), (47, DENSE), (63, PREFIX)]
    assert [order_12[d] for d in range(15)] == [(ROW, COLUMN, PREVIOUS_ROW)[d % 3] for d in range(15)]


def model_and_inputs(attn_order: int, seed: int) -> tuple[Transformer, torch.Tensor, torch.Tensor]:
    """A small transformer of a released attention order with enough layers to include an encoder-decoder or
    prefix layer (those start at zero; made to count), inputs and encoder states."""
    torch.manual_seed(seed)
    depth = {10: 19, 12: 16}.get(attn_order, 6)
    config = TransformerConfig(width=32, depth=depth, heads=2, n_ctx=N_CTX, blocks=N_CTX // BLOCK_LEN,
                               attn_order=attn_order, prefix_len=4)
    model = Transformer(config).eval()
    for p in model.parameters():
        if not p.any():
            torch.nn.init.normal_(p, std=0.2)
    return model, torch.randn(2, N_CTX, 32), torch.randn(2, 5, 32)


@pytest.mark.parametrize("attn_order", [0, 2, 10, 12])
def test_kv_cache_decoding_equals_full_forward(attn_order):
    model, x, states = model_and_inputs(attn_order, seed=2)
    with torch.no_grad():
        full = model(x, states)
        caches = model.new_caches(2, x.device, encoder_states=states)
        steps = torch.cat([model.step(x[:, t: t + 1], caches, torch.tensor([t])) for t in range(N_CTX)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=0)


def test_caches_hold_only_what_the_pattern_needs():
    config = TransformerConfig(width=32, depth=3, heads=2, n_ctx=N_CTX, blocks=3, attn_order=2)
    slots = [c.keys.shape[2] for c in Transformer(config).new_caches(1, torch.device("cpu"))]
    assert slots == [BLOCK_LEN, N_CTX, 2 * BLOCK_LEN]  # row, column, previous row


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(3)
    config = TransformerConfig(width=32, depth=3, heads=2, n_ctx=N_CTX, blocks=3)
    plain = Transformer(config)
    checkpointed = Transformer(TransformerConfig(**{**config.__dict__, "checkpoint_activations": True}))
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, N_CTX, 32)
    plain(x).square().sum().backward()
    checkpointed(x).square().sum().backward()
    for a, b in zip(plain.parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("attn_order", [0, 2, 10, 12])
@pytest.mark.parametrize("known", [1, 3, 5, 8, 11])  # within, at and across block boundaries
def test_prefill_then_steps_equals_full_forward(attn_order, known):
    model, x, states = model_and_inputs(attn_order, seed=4)
    with torch.no_grad():
        full = model(x, states)
        caches = model.new_caches(2, x.device, encoder_states=states)
        out = [model.prefill(x[:, :known], caches)]
        out += [model.step(x[:, t: t + 1], caches, torch.tensor([t])) for t in range(known, N_CTX)]
    torch.testing.assert_close(torch.cat(out, dim=1), full, atol=1e-5, rtol=0)
