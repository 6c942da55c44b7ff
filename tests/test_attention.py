"""Factorized attention: who sees whom, checked against masks built independently; KV-cache decoding equals a
full forward pass."""

import pytest
import torch
import torch.nn.functional as F

from openjukebox.prior.attention import COLUMN, DENSE, PATTERNS, PREVIOUS_ROW, ROW, factorized_attention
from openjukebox.prior.transformer import Transformer, TransformerConfig, layer_patterns

N_CTX, BLOCK_LEN = 12, 4


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
    return mask


def visibility(pattern: int, n: int, block_len: int) -> torch.Tensor:
    """Which keys influence which outputs, found by perturbing one value at a time (no mask involved)."""
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, n, 8), torch.randn(1, 1, n, 8)
    v = torch.zeros(1, 1, n, 8)
    base = factorized_attention(q, k, v, pattern, block_len)
    seen = torch.zeros(n, n, dtype=torch.bool)
    for j in range(n):
        v2 = v.clone()
        v2[0, 0, j] = 1.0
        seen[:, j] = (factorized_attention(q, k, v2, pattern, block_len) - base).abs().sum(-1)[0, 0] > 0
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
    torch.testing.assert_close(factorized_attention(q, k, v, pattern, BLOCK_LEN), expected, atol=1e-6, rtol=1e-5)


def test_released_layer_cycle():
    assert layer_patterns(2, 7) == [ROW, COLUMN, PREVIOUS_ROW, ROW, COLUMN, PREVIOUS_ROW, ROW]
    assert layer_patterns(0, 3) == [DENSE] * 3


@pytest.mark.parametrize("attn_order", [0, 2])
def test_kv_cache_decoding_equals_full_forward(attn_order):
    torch.manual_seed(2)
    config = TransformerConfig(width=32, depth=6, heads=2, n_ctx=N_CTX, blocks=N_CTX // BLOCK_LEN, attn_order=attn_order)
    model = Transformer(config).eval()
    x = torch.randn(2, N_CTX, 32)
    with torch.no_grad():
        full = model(x)
        caches = model.new_caches(2, x.device)
        steps = torch.cat([model.step(x[:, t: t + 1], caches, t) for t in range(N_CTX)], dim=1)
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
