"""Released prior architectures, checked against an independent implementation (jukebox-infer, MIT): small
random-weight models of each released structure are built by the reference from original hyperparameter dicts,
converted by `openjukebox.compat`, and must give the same logits (full forward and KV-cached decoding, within
1e-4) and, given the same random draws, the same sampled codes.

The reference assumes CUDA tensors in its type checks and draws with the global RNG; the harness adapts those two
things (never our code)."""

import pytest
import torch

from openjukebox.compat.openai import convert_prior_state_dict
from openjukebox.compat.released import prior_config, vqvae_config
from openjukebox.prior.conditioning import Labels
from openjukebox.prior.model import Prior
from openjukebox.sample.ancestral import sample_window
from openjukebox.sample.noise import code_keys, draw, exponential_noise, sample_keys

hparams = pytest.importorskip("jukebox_infer.hparams")
make_models = pytest.importorskip("jukebox_infer.make_models")

VQVAE_HPS = dict(sr=8000, levels=3, downs_t=(3, 2, 2), strides_t=(2, 2, 2), l_bins=32, emb_width=8, width=8, depth=1,
                 dilation_growth_rate=3, hvqvae_multipliers=(1, 1, 1), sample_length=8192)
N_CTX = 64
LABELS_V2 = dict(sr=8000, labels=True, y_bins=(6, 9), t_bins=16, max_bow_genre_size=3, min_duration=1.0, max_duration=30.0)
TOP = dict(level=2, n_ctx=N_CTX, prior_width=32, heads=2, blocks=8, **LABELS_V2)
UPSAMPLER = dict(n_ctx=N_CTX, prior_width=32, prior_depth=3, heads=1, attn_order=2, blocks=8, cond_width=16,
                 cond_depth=3, cond_dilation_growth_rate=3, cond_dilation_cycle=2, cond_c_res=1, **LABELS_V2)
MODELS = {
    # the released 5b's structure: merged decoder, fp16-rounded Conv1D weights, row/column/previous-row cycle
    "5b": dict(TOP, prior_depth=6, attn_order=2, merged_decoder=True, fp16_params=True),
    # 5b_lyrics: a lyrics encoder read by encoder-decoder layers (attn_order 10: layer 18 of 19)
    "5b_lyrics": dict(TOP, prior_depth=19, attn_order=10, merged_decoder=True, use_tokens=True, n_tokens=16,
                      n_vocab=80, prime_width=16, prime_depth=3, prime_heads=2, prime_attn_order=2, prime_blocks=4,
                      prime_loss_fraction=0.4),
    # 1b_lyrics: one merged lyrics+music sequence, labels v3, prefix layers at 15 and 31, tied output
    "1b_lyrics": dict(TOP, prior_depth=32, attn_order=12, blocks=4, labels_v3=True, y_bins=(6, 9),
                      max_bow_genre_size=1, use_tokens=True, n_tokens=12, n_vocab=79, single_enc_dec=True,
                      prime_loss_fraction=0.4),
    "upsampler_level_1": dict(UPSAMPLER, level=1, cond_res_scale=True),
    "upsampler_level_0": dict(UPSAMPLER, level=0, cond_c_res=0),  # the other conditioner naming
    "unconditional_dense": dict(sr=8000, level=2, n_ctx=N_CTX, prior_width=32, prior_depth=2, heads=2, attn_order=0,
                                labels=False),
}


@pytest.fixture(autouse=True)
def cpu_reference(monkeypatch):
    """jukebox-infer checks `isinstance(x, torch.cuda.LongTensor)`; on CPU the CPU type is the right one."""
    monkeypatch.setattr(torch.cuda, "LongTensor", torch.LongTensor)


class SameDraws:
    """Stands in for torch.distributions.Categorical in the reference: draws with the same noise as openjukebox's
    sampler (softmax, then the exponential race with the noise of the seed, the row and the code's position; the
    reference draws the codes in order, one call per position)."""

    seed: int
    position: int

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits

    def sample(self) -> torch.Tensor:
        probs = torch.softmax(self.logits.float(), dim=-1).reshape(-1, self.logits.shape[-1])
        keys = sample_keys(SameDraws.seed, torch.arange(probs.shape[0]))
        noise = exponential_noise(keys, torch.tensor([SameDraws.position]), code_keys(probs.shape[-1]))[:, 0]
        SameDraws.position += 1
        return draw(probs, noise).reshape(self.logits.shape[:-1])


def build(name: str):
    torch.manual_seed(0)
    vq_hps = hparams.setup_hparams("", VQVAE_HPS)
    hps = hparams.setup_hparams("", MODELS[name])
    vqvae = make_models.make_vqvae(vq_hps, "cpu")
    reference = make_models.make_prior(hps, vqvae, "cpu")
    for p in reference.parameters():  # zero-initialised layers (encoder-decoder) must count too
        if not p.any():
            p.data.normal_(std=0.05)
    config = prior_config(hps, vqvae_config(vq_hps))
    ours = Prior(config).eval()
    ours.load_saved_state(convert_prior_state_dict(reference.state_dict(), not config.merged_decoder))
    return reference, ours


def inputs(reference, ours, batch=2):
    """Random codes, the level above's codes and labels, as the reference's `y` and as our Labels."""
    config = ours.config
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, config.bins, (batch, N_CTX), generator=g)
    upper = torch.randint(0, config.bins, (batch, N_CTX // 4), generator=g) if config.upper_bins else None
    if not config.conditioned_on_labels:
        return codes, upper, None, None
    total = torch.tensor([20 * 8000, 5 * 8000])
    offset = torch.tensor([3 * 8000, 0])
    genres = torch.tensor([[1, 4, -1], [2, -1, -1]])[:, : config.max_genres]
    artist = torch.tensor([3, 7])
    lyrics = torch.randint(1, max(config.n_vocab, 2), (batch, config.n_tokens), generator=g)
    y = torch.cat([total[:, None], offset[:, None], torch.full((batch, 1), reference.sample_length), artist[:, None],
                   genres, lyrics], dim=1)
    return codes, upper, y, Labels(artist, genres, total, offset, lyrics if config.n_tokens else None)


def reference_logits(reference, codes, upper, y):
    """The reference's teacher-forced logits (its z_forward without the loss, whose lyrics loss needs a
    contiguous `y` slice that only a batch of one gives)."""
    x_cond, y_cond, prime = reference.get_cond([] if upper is None else [upper], y)
    if reference.single_enc_dec:
        sequence, x_cond = reference.prior_preprocess([prime, codes], [None, x_cond])
        return reference.prior(sequence, x_cond, y_cond, get_preds=True, get_sep_loss=True)[1]
    encoder_kv = reference.get_encoder_kv(prime) if reference.n_tokens else None
    return reference.prior(codes, x_cond, y_cond, encoder_kv, get_preds=True)[1]


@pytest.mark.parametrize("name", list(MODELS))
def test_full_forward_logits_match_the_reference(name):
    reference, ours = build(name)
    codes, upper, y, labels = inputs(reference, ours)
    with torch.no_grad():
        expected = reference_logits(reference, codes, upper, y)
        logits = ours(codes, labels, upper)
    assert logits.shape == expected.shape
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_cached_sampling_draws_the_same_codes_with_the_same_logits(name, monkeypatch):
    reference, ours = build(name)
    _, upper, y, labels = inputs(reference, ours)
    batch, config = 2, ours.config
    monkeypatch.setattr(torch.distributions, "Categorical", SameDraws)
    SameDraws.seed, SameDraws.position = 5, 0
    with torch.no_grad():
        x_cond, y_cond, prime = reference.get_cond([] if upper is None else [upper], y)
        if config.merged_lyrics:
            lyrics, x_cond = reference.prior_preprocess([prime], [None, x_cond])
            sequence, preds = reference.prior.primed_sample(batch, lyrics, x_cond, y_cond, get_preds=True)
            expected_codes = reference.prior_postprocess(sequence)
        else:
            encoder_kv = reference.get_encoder_kv(prime, sample=True) if config.n_tokens else None
            expected_codes, preds = reference.prior.sample(batch, x_cond, y_cond, encoder_kv, get_preds=True)
            sequence = expected_codes

        codes = sample_window(ours, N_CTX, torch.empty(batch, 0, dtype=torch.long), labels, upper, seed=5)
        assert torch.equal(codes, expected_codes)

        # our KV-cached logits along the drawn sequence (for a merged vocabulary it may hold lyric characters
        # where codes belong: as released, they are fed back as drawn, and kept as code 0)
        cond = ours.condition(labels, upper, batch, N_CTX)
        start, caches = ours.start(labels, batch), ours.new_caches(batch, ours.encoder_states(labels))
        steps = [ours.step(sequence[:, max(t - 1, 0)], torch.tensor([t]), cond, caches, start)
                 for t in range(sequence.shape[1])]
    torch.testing.assert_close(torch.stack(steps, dim=1), preds, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["5b_lyrics", "1b_lyrics"])
def test_lyrics_attention_for_alignment_matches_the_reference(name):
    """The attention weights a lyrics alignment is read from (the original's `get_attn_weights`)."""
    reference, ours = build(name)
    codes, upper, y, labels = inputs(reference, ours)
    layer = ours.config.alignment_layer_index()
    reference.prior.transformer.set_record_attn({layer})
    with torch.no_grad():
        reference_logits(reference, codes, upper, y)
    expected = reference.prior.transformer.ws[0]  # for a prefix layer, already music queries × lyric keys
    weights = ours.lyrics_attention(codes, labels)
    torch.testing.assert_close(weights, expected[:, ours.config.alignment_head].float(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_layer_activations_for_representations_match_the_reference(name):
    """The features `embed` reads (Castellon et al.'s JukeMIR): a middle layer's output at every code position,
    against the reference's block output caught by a forward hook; a merged lyrics prefix is left out."""
    reference, ours = build(name)
    codes, upper, y, labels = inputs(reference, ours)
    layer = max(1, ours.config.transformer.depth // 2)
    caught = []
    hook = reference.prior.transformer._attn_mods[layer - 1].register_forward_hook(
        lambda module, args, output: caught.append(output))
    with torch.no_grad():
        reference_logits(reference, codes, upper, y)
    hook.remove()
    expected = caught[0][:, ours.config.lead:]
    torch.testing.assert_close(ours.activations(codes, labels, layer, upper), expected, atol=1e-5, rtol=0)
