"""The released VQ-VAE architecture, checked against an independent implementation (jukebox-infer, MIT):
same parameter count, and with the same random weights (converted from its state dict) the same codes and the
same decoded audio, at every level."""

import pytest
import torch

from openjukebox.compat.openai import convert_vqvae_state_dict
from openjukebox.vqvae import VQVAE, preset

reference = pytest.importorskip("jukebox_infer.vqvae.vqvae")


def released_vqvae():
    """jukebox-infer's VQ-VAE with the released hyperparameters (compat/released.py), random weights."""
    model = reference.VQVAE(input_shape=(8192, 1), levels=3, downs_t=(3, 2, 2), strides_t=(2, 2, 2), emb_width=64,
                            l_bins=2048, mu=0.99, commit=0.02, spectral=0.0, multispectral=1.0, multipliers=(2, 1, 1),
                            width=32, depth=4, m_conv=1.0, dilation_growth_rate=3, dilation_cycle=None,
                            reverse_decoder_dilation=True).eval()
    for block in model.bottleneck.level_blocks:
        block.k.copy_(torch.randn_like(block.k))
        block.init = True
    return model


def test_released_state_dict_loads_strictly_and_counts_match():
    torch.manual_seed(0)
    ref = released_vqvae()
    ref_params = sum(v.numel() for k, v in ref.state_dict().items() if not k.startswith("bottleneck"))
    ours = VQVAE(preset("paper"))
    ours.load_state_dict(convert_vqvae_state_dict(ref.state_dict()), strict=True)
    assert ref_params == sum(p.numel() for p in ours.parameters()) == 1_485_763


def test_same_codes_and_same_audio_as_the_reference():
    torch.manual_seed(0)
    ref = released_vqvae()
    ours = VQVAE(preset("paper")).eval()
    ours.load_state_dict(convert_vqvae_state_dict(ref.state_dict()), strict=True)
    audio = torch.randn(2, 1, 8192) * 0.1
    with torch.no_grad():
        ref_codes = ref.encode(audio.transpose(1, 2))  # the reference is channels-last
        codes = ours.encode(audio, chunk_seconds=None)
        for level in range(3):
            assert torch.equal(codes[level], ref_codes[level])
            ref_audio = ref.decode(ref_codes[level: level + 1], start_level=level, end_level=level + 1)
            torch.testing.assert_close(ours.decode(ref_codes[level], level, chunk_seconds=None),
                                       ref_audio.transpose(1, 2), atol=1e-6, rtol=1e-5)
