"""Shapes, sizes and chunking of the VQ-VAE."""

import pytest
import torch

from openjukebox.vqvae import VQVAE, preset


def test_paper_preset_has_the_released_parameter_count():
    model = VQVAE(preset("paper"))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 1_485_763
    assert [tuple(c.codebook.shape) for c in model.codebooks] == [(2048, 64)] * 3


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_every_preset_has_three_levels_with_hops_8_32_128(name):
    assert preset(name).hop_lengths == (8, 32, 128)


def test_released_layer_structure():
    """Level 0 twice as wide and deep; decoder dilations reversed; last transpose conv outputs emb_width."""
    model = VQVAE(preset("paper"))
    enc0_block = model.encoders[0][0][0]  # level 0, encoder block 0, first down step
    conv, resnet = enc0_block[0], enc0_block[1]
    assert (conv.kernel_size, conv.stride, conv.out_channels) == ((4,), (2,), 64)
    assert [b.conv.dilation[0] for b in resnet] == [3**d for d in range(8)]
    dec_resnet = model.decoders[1].blocks[0][1][0]
    assert [b.conv.dilation[0] for b in dec_resnet] == [27, 9, 3, 1]
    last_up = model.decoders[2].blocks[0][-1][1]
    assert isinstance(last_up, torch.nn.ConvTranspose1d) and last_up.out_channels == 64
    assert model.decoders[2].out.in_channels == 64 and model.decoders[2].out.out_channels == 1


@pytest.mark.parametrize("n", [4096, 5000, 130])
def test_encode_gives_n_over_hop_codes_and_decode_gives_n_samples(n):
    torch.manual_seed(0)
    model = VQVAE(preset("tiny")).eval()
    for cb in model.codebooks:
        cb.initialise(torch.randn(256, 16))
    audio = torch.randn(2, 1, n) * 0.1
    codes = model.encode(audio)
    assert [c.shape for c in codes] == [(2, -(-n // h)) for h in (8, 32, 128)]
    for level, c in enumerate(codes):
        assert c.dtype == torch.int64
        decoded = model.decode(c, level)[..., :n]
        assert decoded.shape == (2, 1, n)


def test_chunked_encode_and_decode_match_whole():
    torch.manual_seed(0)
    model = VQVAE(preset("tiny")).eval()
    for cb in model.codebooks:
        cb.initialise(torch.randn(256, 16))
    audio = torch.randn(1, 1, 16000) * 0.1
    whole = model.encode(audio, chunk_seconds=None)
    # 0.128 s chunks with 0.064 s margins: far more context than the tiny model's receptive field.
    chunked = model.encode(audio, chunk_seconds=0.128, margin_seconds=0.064)
    for w, c in zip(whole, chunked):
        assert w.shape == c.shape
        assert (w == c).float().mean() > 0.99
    for level in range(3):
        full = model.decode(whole[level], level, chunk_seconds=None)
        pieces = model.decode(whole[level], level, chunk_seconds=0.128, margin_seconds=0.064)
        torch.testing.assert_close(pieces, full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("hierarchical", [False, True])
def test_encode_runs_each_encoder_once_for_all_levels(hierarchical):
    """Each level's codes are its codebook's nearest codes for its own encoder's output (composed by hand here:
    non-hierarchical, each encoder reads the audio; hierarchical, the level below's output), whichever levels are
    asked and in what order; and one encode runs each encoder once per chunk, not once per level above it."""
    import dataclasses

    torch.manual_seed(0)
    model = VQVAE(dataclasses.replace(preset("tiny"), hierarchical=hierarchical)).eval()
    for cb in model.codebooks:
        cb.initialise(torch.randn(256, 16))
    audio = torch.randn(1, 1, 5000) * 0.1
    padded = torch.nn.functional.pad(audio, (0, -5000 % 128))
    with torch.no_grad():
        z, expected = padded, []
        for level in range(3):
            z = model.encoders[level](padded if not hierarchical else z)
            expected.append(model.codebooks[level](z, update=False).codes[:, :-(-5000 // model.hop_lengths[level])])
    calls = [0, 0, 0]
    for level, encoder in enumerate(model.encoders):
        encoder.register_forward_hook(lambda *_, level=level: calls.__setitem__(level, calls[level] + 1))
    for got, want in zip(model.encode(audio, chunk_seconds=None), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert calls == [1, 1, 1]
    two = model.encode(audio, levels=[2, 0], chunk_seconds=None)
    torch.testing.assert_close(two[0], expected[2], rtol=0, atol=0)
    torch.testing.assert_close(two[1], expected[0], rtol=0, atol=0)


def test_training_step_reduces_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = VQVAE(preset("tiny"))
    t = torch.arange(2048) / 16000
    audio = (0.5 * torch.sin(2 * torch.pi * 440 * t))[None, None]
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        out = model(audio)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_decoding_in_bfloat16_stays_close_to_float32():
    """The faster bf16 decode (autocast) keeps the float32 audio's shape and type, at > 20 dB signal-to-error."""
    torch.manual_seed(0)
    model = VQVAE(preset("tiny")).eval()
    codes = torch.randint(0, model.config.codebook_size, (2, 300))
    exact = model.decode(codes, 0)
    fast = model.decode(codes, 0, dtype=torch.bfloat16)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert -20 * torch.log10((fast - exact).norm() / exact.norm()) > 20
    assert torch.equal(model.decode(codes, 0, dtype=torch.float32), exact)
