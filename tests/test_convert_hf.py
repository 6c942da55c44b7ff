"""`convert_hf` on the Hugging Face format of the released Jukebox models, checked against transformers 4.40.2 (the
last release with Jukebox; installed by the test extra, used here as the reference only).

Small random-weight `JukeboxModel`s of the two published structures are built and saved by transformers itself:
1b_lyrics (lyrics and music in one sequence, prefix layers 15 and 31, tied output, labels v3) and 5b_lyrics
(a lyrics encoder read by an encoder-decoder layer, merged decoder, labels v2), each with both upsamplers (the
level-1 one res-scaled) and a small VQ-VAE of the released structure (level 0 twice as wide and deep). The 1b one is
saved as transformers saves it (sharded `pytorch_model.bin`, the tokenizer's files); the 5b one as a safetensors
file (which keeps one name of a tied tensor, here once each way) with the hub's one-file `vocab.json`. The
converted bundle must give the same codes and audio, the same logits, and the same label ids as transformers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import JukeboxConfig, JukeboxModel, JukeboxTokenizer

from openjukebox.bundle import load_bundle
from test_cli_bad_inputs import assert_succeeds, run_cli
from test_download import bucket  # noqa: F401 (a fixture)
from openjukebox.compat.hf import convert_hf, hf_config_to_original, read_hf_folder, released_preset
from openjukebox.compat.released import RELEASED, prior_config, vqvae_config
from openjukebox.errors import CheckpointError, ConfigError
from openjukebox.lyrics.text import vocabulary_of_size
from openjukebox.prior.conditioning import Labels

SR = 8000
N_CTX = 64
VQVAE = dict(nb_discrete_codes=32, embed_dim=8, res_conv_width=8, res_conv_depth=2, multipliers=[2, 1, 1],
             res_dilation_growth_rate=3, sample_length=8192)
PRIOR = dict(mask=True, n_ctx=N_CTX, hidden_size=32, blocks=8, music_vocab_size=32)
UPSAMPLER = dict(PRIOR, n_heads=1, num_layers=3, attention_pattern="raw_column_previous_row_attention",
                 is_encoder_decoder=False, nb_relevant_lyric_tokens=0, merged_decoder=False, res_conv_width=16,
                 res_conv_depth=3, res_dilation_growth_rate=3, res_dilation_cycle=2, metadata_dims=[6, 9])
MODELS = {
    "1b_lyrics": dict(
        top=dict(PRIOR, n_heads=2, num_layers=32, attention_pattern="enc_dec_with_lyrics", blocks=4,
                 is_encoder_decoder=True, nb_relevant_lyric_tokens=12, lyric_vocab_size=79, merged_decoder=False,
                 metadata_dims=[7, 11], alignment_layer=31, alignment_head=1),
        shared=dict(timing_dims=16, min_duration=1.0, max_duration=30.0, max_nb_genres=1),
        versions=["v3", "v2", "v2"]),
    "5b_lyrics": dict(
        top=dict(PRIOR, n_heads=2, num_layers=19, attention_pattern="large_separated_enc_dec_w_lyrics",
                 is_encoder_decoder=False, nb_relevant_lyric_tokens=16, lyric_vocab_size=80, merged_decoder=True,
                 metadata_dims=[6, 9], alignment_layer=18, alignment_head=1,
                 encoder_config=dict(mask=True, hidden_size=16, num_layers=3, n_heads=2, blocks=4,
                                     attention_pattern="raw_column_previous_row_attention",
                                     nb_relevant_lyric_tokens=16)),
        shared=dict(timing_dims=16, min_duration=1.0, max_duration=30.0, max_nb_genres=3),
        versions=["v2", "v2", "v2"]),
}
# The tokenizer's vocabularies as the hub holds them: v3 keys are the original's, v2 keys the original's + '.v2'.
ARTISTS = {"unknown": 0, "the beatles": 3, "alan jackson": 10, "r.e.m.": 2,
           "unknown.v2": 0, "the_beatles.v2": 4, "alan_jackson.v2": 8, "r_e_m.v2": 6}
GENRES = {"unknown": 0, "pop rock": 2, "country": 6, "unknown.v2": 0, "pop.v2": 1, "rock.v2": 5, "country.v2": 3}
_V2_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:;!?-+'\"()[] \t\n"
LYRICS_V3 = {c: i for i, c in enumerate(_V2_CHARS.replace("+", ""), 1)}  # v3: the v2 characters without '+'


def jukebox(name: str) -> JukeboxModel:
    """transformers' model of the structure, with random weights large enough that the logits differ."""
    spec = MODELS[name]
    config = JukeboxConfig(vqvae_config=VQVAE, sampling_rate=SR, **spec["shared"], prior_config_list=[
        spec["top"], dict(UPSAMPLER, conv_res_scale=True), dict(UPSAMPLER, conv_res_scale=False)])
    torch.manual_seed(0)
    model = JukeboxModel(config).eval()
    with torch.no_grad():
        for name_, p in model.priors.named_parameters():
            p.normal_(mean=1.0 if "layer_norm" in name_ and name_.endswith("weight") else 0.0, std=0.1)
        # codebooks drawn from the encoders' outputs (as training starts them), so that the codes vary
        audio = torch.randn(1, 1, 8192) * 0.1
        for level, block in enumerate(model.vqvae.bottleneck.level_blocks):
            latents = model.vqvae.encoders[level](audio)[-1][0].t()
            block.codebook.copy_(latents[torch.randperm(len(latents))[: len(block.codebook)]])
    return model


def tokenizer(folder: Path, name: str) -> JukeboxTokenizer:
    folder.mkdir(parents=True, exist_ok=True)
    for file, vocab in (("artists.json", ARTISTS), ("genres.json", GENRES), ("lyrics.json", LYRICS_V3)):
        (folder / file).write_text(json.dumps(vocab))
    return JukeboxTokenizer(folder / "artists.json", folder / "genres.json", folder / "lyrics.json",
                            version=MODELS[name]["versions"], n_genres=MODELS[name]["shared"]["max_nb_genres"])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{name: (folder in the Hugging Face format, transformers' model, transformers' tokenizer)}."""
    root = tmp_path_factory.mktemp("hf")
    models = {}
    # 1b_lyrics as transformers saves it: sharded pytorch_model.bin and the tokenizer's own files.
    model, folder = jukebox("1b_lyrics"), root / "jukebox-1b-lyrics"
    model.save_pretrained(folder, safe_serialization=False, max_shard_size="200KB")
    tok = tokenizer(root / "tok-1b", "1b_lyrics")
    tok.save_pretrained(folder)
    assert len(set(json.loads((folder / "pytorch_model.bin.index.json").read_text())["weight_map"].values())) > 1
    models["1b_lyrics"] = (folder, model, tok)
    # 5b_lyrics as one safetensors file (a tied tensor is stored once: the first upsampler keeps the embedding's
    # name, the other the output layer's) with the three vocabularies in one vocab.json.
    model, folder = jukebox("5b_lyrics"), root / "jukebox-5b-lyrics"
    model.config.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if k not in ("priors.1.prior.fc_proj_out.weight", "priors.2.prior.embed_tokens.weight")}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "vocab.json").write_text(json.dumps({"artist": ARTISTS, "genres": GENRES, "lyrics": LYRICS_V3}))
    models["5b_lyrics"] = (folder, model, tokenizer(root / "tok-5b", "5b_lyrics"))
    return models


@pytest.fixture(scope="module")
def bundles(saved, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles")
    return {name: load_bundle(convert_hf(folder, out / name)) for name, (folder, _, _) in saved.items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_vqvae_gives_the_same_codes_and_audio_as_transformers(name, saved, bundles):
    reference, ours = saved[name][1].vqvae, bundles[name].vqvae
    audio = torch.randn(2, 1, 8192, generator=torch.Generator().manual_seed(2)) * 0.1
    with torch.no_grad():
        expected = reference.encode(audio.transpose(1, 2))  # transformers is channels-last
        codes = ours.encode(audio, chunk_seconds=None)
        for level in range(3):
            assert codes[level].shape == expected[level].shape == (2, 8192 // (8, 32, 128)[level])
            assert torch.equal(codes[level], expected[level])
            assert len(codes[level].unique()) > 4  # a real test: the codes vary
            expected_audio = reference.decode(expected[level:level + 1], start_level=level, end_level=level + 1)
            torch.testing.assert_close(ours.decode(codes[level], level, chunk_seconds=None),
                                       expected_audio.transpose(1, 2), atol=1e-5, rtol=0)


def inputs(reference, config, batch=2):
    """Codes, the level above's codes and labels, as transformers' metadata tensor and as our Labels."""
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, config.bins, (batch, N_CTX), generator=g)
    upper = torch.randint(0, config.upper_bins, (batch, N_CTX // 4), generator=g) if config.upper_bins else None
    total, offset = torch.tensor([20 * SR, 5 * SR]), torch.tensor([3 * SR, 0])
    artist = torch.tensor([3, 5])
    genres = torch.tensor([[1, 4, -1], [2, -1, -1]])[:, : reference.metadata_embedding.max_nb_genres]
    lyrics = torch.randint(1, max(config.n_vocab, 2), (batch, config.n_tokens), generator=g)
    metadata = torch.cat([total[:, None], offset[:, None], torch.full((batch, 1), int(reference.sample_length)),
                          artist[:, None], genres, lyrics], dim=1)
    return codes, upper, metadata, Labels(artist, genres, total, offset, lyrics if config.n_tokens else None)


def reference_logits(reference, codes, upper, metadata):
    """transformers' teacher-forced logits: the body of JukeboxPrior.forward_tokens without its losses (which
    fail for a prior without lyrics and, for a batch of more than one, view non-contiguous lyric columns)."""
    audio_conditioning, metadata_conditioning, lyrics = reference.get_cond([] if upper is None else [upper], metadata)
    if reference.is_encoder_decoder:
        tokens, audio_conditioning = reference.prior_preprocess([lyrics, codes], [None, audio_conditioning])
        return reference.prior(tokens, audio_conditioning, metadata_conditioning, get_sep_loss=True,
                               get_preds=True)[1]
    encoder_states = reference.get_encoder_states(lyrics)
    return reference.prior(codes, audio_conditioning, metadata_conditioning, encoder_states, get_preds=True)[1]


@pytest.mark.parametrize("level", [2, 1, 0])
@pytest.mark.parametrize("name", list(MODELS))
def test_each_prior_gives_the_logits_of_transformers(name, level, saved, bundles):
    reference, ours = saved[name][1].priors[2 - level], bundles[name].priors[level].eval()
    codes, upper, metadata, labels = inputs(reference, ours.config)
    with torch.no_grad():
        expected = reference_logits(reference, codes, upper, metadata)
        logits = ours(codes, labels, upper)
    lead = ours.config.lead
    assert logits.shape == expected.shape == (2, lead + N_CTX, ours.config.code_shift + 32)
    assert expected.std() > 0.5  # logits that differ from position to position and code to code
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


def test_the_bundle_records_the_structure(saved, bundles):
    b1, b5 = bundles["1b_lyrics"], bundles["5b_lyrics"]
    assert b1.priors[2].config.merged_lyrics and b1.priors[2].config.lyrics_encoder is None
    assert b5.priors[2].config.lyrics_encoder is not None and b5.priors[2].config.merged_decoder
    assert [b1.priors[2].config.alignment_layer, b1.priors[2].config.alignment_head] == [31, 1]
    assert [b5.priors[level].config.cond_res_scale for level in (0, 1)] == [False, True]
    for name in MODELS:
        manifest = json.loads((bundles[name].path / "manifest.json").read_text())
        assert manifest["preset"] is None  # small models: not a released structure


@pytest.mark.parametrize("name", list(MODELS))
def test_label_ids_are_the_tokenizers(name, saved, bundles):
    """Artist and genre ids as transformers' tokenizer gives the top prior; lyrics as it tokenizes them."""
    tok, encoder = saved[name][2], bundles[name].label_encoder
    n_genres = MODELS[name]["shared"]["max_nb_genres"]
    assert encoder.table.version == (3 if name == "1b_lyrics" else 2)
    agreed = [("The Beatles", "Country"), ("Alan Jackson", "unknown"), ("the beatles", "COUNTRY")]
    agreed += [("Alan Jackson", "Pop Rock")] if name == "1b_lyrics" else [("Alan Jackson", "Pop")]
    lyrics = "Hello, world!\nIt's (4) you -- yeah [x2]"
    for artist, genre in agreed:
        ids = tok(artist, genre, lyrics)["input_ids"][0][0].tolist()  # the top prior's: [0, 0, 0, artist, ...]
        assert encoder.artist_id(artist) == ids[3] != 0 or artist == "unknown"
        assert encoder.genre_ids([genre]) == [i for i in ids[4:4 + n_genres] if i >= 0]
        assert vocabulary_of_size(bundles[name].priors[2].config.n_vocab).encode(lyrics) == ids[4 + n_genres:]
        for level in (1, 0) if " " not in genre else ():  # v2 splits 'Pop Rock' (the tokenizer does not)
            # each upsampler with its own ids: v2 ones below a v3 top prior (1b_lyrics)
            ids = tok(artist, genre, lyrics)["input_ids"][2 - level][0].tolist()
            labels = bundles[name].labels(artist, [genre], 10 * SR, 1, level)
            assert labels.artist.tolist() == [ids[3]]
            assert [g for g in labels.genres[0].tolist() if g >= 0] == [i for i in ids[4:4 + n_genres] if i >= 0]
    # Where transformers' tokenizer departs from the original, we follow the original. '+' is a v2 character and
    # not a v3 one: transformers drops it from v2 lyrics and gives v3 lyrics a padding token (0) for it.
    plus = tok("Alan Jackson", "unknown", "a+b")["input_ids"][0][0].tolist()[4 + n_genres:]
    ours = vocabulary_of_size(bundles[name].priors[2].config.n_vocab).encode("a+b")
    assert (plus, ours) == (([27, 0, 28], [27, 28]) if name == "1b_lyrics" else ([27, 28], [27, 70, 28]))
    if name == "5b_lyrics":
        # v2 names: it keeps '.' ('r.e.m..v2', not the original's 'r_e_m') and splits genres on '_' before
        # normalising, so 'Pop Rock' is one unknown word to it, the words 'pop' and 'rock' to the original.
        ids = tok("R.E.M.", "Pop Rock", "")["input_ids"][0][0].tolist()
        assert ids[3:5] == [0, 0] and encoder.artist_id("R.E.M.") == 6 and encoder.genre_ids(["Pop Rock"]) == [1, 5]


def test_sharded_safetensors_read_as_one_file(saved, tmp_path):
    folder = saved["5b_lyrics"][0]
    config, state = read_hf_folder(folder)
    names = sorted(state)
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, part in halves.items():
        save_file({k: state[k] for k in part}, str(tmp_path / file))
    index = {"metadata": {}, "weight_map": {k: file for file, part in halves.items() for k in part}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    config2, state2 = read_hf_folder(tmp_path)
    assert config2 == config and sorted(state2) == names
    assert all(torch.equal(state2[k], state[k]) for k in names)


def hub_config(name: str) -> dict:
    """config.json of the published model, as transformers writes it, from the released hyperparameters (RELEASED)
    in transformers' names: the released VQ-VAE is JukeboxVQVAEConfig's defaults."""
    top = RELEASED[f"prior_{name}"]
    ups = [RELEASED[f"upsampler_level_{level}"] for level in (1, 0)]
    upsamplers = [dict(mask=True, hidden_size=u["prior_width"], num_layers=u["prior_depth"], n_heads=u["heads"],
                       attention_pattern="raw_column_previous_row_attention", blocks=u["blocks"], n_ctx=u["n_ctx"],
                       is_encoder_decoder=False, nb_relevant_lyric_tokens=0, merged_decoder=False,
                       res_conv_width=u["cond_width"], res_conv_depth=u["cond_depth"], res_dilation_growth_rate=3,
                       res_dilation_cycle=u["cond_dilation_cycle"], conv_res_scale=u["cond_res_scale"],
                       metadata_dims=list(u["y_bins"])) for u in ups]
    prior = dict(mask=True, hidden_size=top["prior_width"], num_layers=top["prior_depth"], n_heads=top["heads"],
                 blocks=top["blocks"], n_ctx=top["n_ctx"], nb_relevant_lyric_tokens=top["n_tokens"],
                 lyric_vocab_size=top["n_vocab"], merged_decoder=top["merged_decoder"],
                 metadata_dims=list(top["y_bins"]), alignment_layer=top["alignment_layer"],
                 alignment_head=top["alignment_head"])
    if name == "1b_lyrics":
        prior.update(attention_pattern="enc_dec_with_lyrics", is_encoder_decoder=True)
    else:
        encoder = dict(mask=True, hidden_size=top["prime_width"], num_layers=top["prime_depth"],
                       n_heads=top["prime_heads"], attention_pattern="raw_column_previous_row_attention",
                       blocks=top["prime_blocks"])
        prior.update(attention_pattern="large_separated_enc_dec_w_lyrics", is_encoder_decoder=False,
                     encoder_config=encoder)
    config = JukeboxConfig(vqvae_config={}, prior_config_list=[prior, *upsamplers], timing_dims=top["t_bins"],
                           min_duration=top["min_duration"], max_duration=top["max_duration"],
                           max_nb_genres=top["max_bow_genre_size"])
    return json.loads(config.to_json_string())  # use_diff, as save_pretrained: vqvae_config is {} + model_type


@pytest.mark.parametrize("name", ["1b_lyrics", "5b_lyrics"])
def test_published_configs_are_the_released_models(name):
    vq_hps, prior_hps = hf_config_to_original(hub_config(name))
    vq = vqvae_config(vq_hps)
    assert vq == vqvae_config(RELEASED["vqvae"])
    priors = {level: prior_config(hps, vq) for level, hps in enumerate(prior_hps)}
    assert released_preset(vq, priors) == name
    assert priors[2].transformer == prior_config(RELEASED[f"prior_{name}"], vq).transformer
    plain = dataclasses.replace(priors[1], cond_res_scale=False)
    assert released_preset(vq, {**priors, 1: plain}) is None  # level 1 without its res-scaled conditioner


def break_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def _no_config(folder):
    (folder / "config.json").unlink()


def _other_models_weights(folder, saved):
    shutil.copy(saved["1b_lyrics"][0] / "config.json", folder / "config.json")


def _a_shorter_tensor(folder, saved):
    _, state = read_hf_folder(folder)
    state["priors.0.prior.pos_emb.pos_emb"] = state["priors.0.prior.pos_emb.pos_emb"][:60].clone()
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")


def _truncated_weights(folder, saved):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _unmasked(folder, saved):
    break_config(folder, lambda c: c["prior_config_list"][1].update(mask=False))


def _another_vocabulary(folder, saved):
    (folder / "vocab.json").write_text(json.dumps({"artist": {**ARTISTS, "someone.v2": 50}, "genres": GENRES}))


def _unknown_pattern(folder, saved):
    break_config(folder, lambda c: c["prior_config_list"][0].update(attention_pattern="summary_attention"))


@pytest.mark.parametrize("damage, error, mentions", [
    (lambda f, s: _no_config(f), CheckpointError, "no config.json"),
    (_other_models_weights, CheckpointError, "weights do not fit config.json (missing"),
    (_a_shorter_tensor, CheckpointError, "pos_emb is (60, 32), config.json gives (64, 32)"),
    (_truncated_weights, CheckpointError, "model.safetensors: truncated or corrupt weights"),
    (_unmasked, ConfigError, "prior 1 (level 1): mask=False is not supported"),
    (_unknown_pattern, ConfigError, "attention_pattern 'summary_attention' is not supported"),
    (_another_vocabulary, ConfigError, "run from 0 to 50, but the level-2 prior has 9 artist embeddings"),
], ids=["no config", "another model's config", "a tensor of another shape", "truncated", "unmasked",
        "unknown attention", "another vocabulary"])
def test_bad_folders_are_refused_in_one_line(damage, error, mentions, saved, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved["5b_lyrics"][0], folder)
    damage(folder, saved)
    out = tmp_path / "bundle"
    with pytest.raises(error) as caught:
        convert_hf(folder, out)
    message = str(caught.value)
    assert "\n" not in message and mentions in message, message
    assert str(folder) in message
    assert not out.exists()


def test_the_cli_converts_a_folder_and_a_released_name_falls_back_to_the_hub_copy(saved, bundles, bucket,
                                                                                 monkeypatch, tmp_path):
    """`convert-hf` writes what the API writes; `sample --model 1b_lyrics --download` with no original source
    answering fetches the Hub copy (here a local stand-in serving the small 1b_lyrics-like folder), converts it
    once and samples."""
    folder = saved["1b_lyrics"][0]
    assert_succeeds(run_cli("convert-hf", folder, "--out", tmp_path / "cli"))
    ours, api = load_bundle(tmp_path / "cli"), bundles["1b_lyrics"]
    for level in range(3):
        pairs = zip(ours.priors[level].state_dict().items(), api.priors[level].state_dict().items())
        assert all(torch.equal(a, b) for (_, a), (_, b) in pairs)
    monkeypatch.setenv("OPENJUKEBOX_HF_URL", os.environ["OPENJUKEBOX_DOWNLOAD_URL"])
    bucket.files = {f"openai/jukebox-1b-lyrics/resolve/main/{p.name}": p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setenv("OPENJUKEBOX_DOWNLOAD_URL", os.environ["OPENJUKEBOX_DOWNLOAD_URL"].replace("/models/", "/x/"))
    assert_succeeds(run_cli("sample", "--model", "1b_lyrics", "--download", "--duration", "0.3", "--levels", "2",
                            "--device", "cpu", "--out", tmp_path / "song"))
    converted = load_bundle(tmp_path / "cache" / "converted" / "1b_lyrics")
    assert converted.priors[2].config == api.priors[2].config
    assert (tmp_path / "song" / "sample-0-level2.wav").is_file()
