"""Lyrics priors of our own: model surgery that changes nothing until training, presets, training on music with
lyrics (the lyrics loss is learned), and sampling from a lyrics bundle with a lyrics file."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from openjukebox.vqvae.code_cache import build_code_cache, load_code_cache
from openjukebox.prior.attention import ENCODER_DECODER
from openjukebox.prior.conditioning import Labels
from openjukebox.prior.config import prior_preset
from openjukebox.prior.evaluation import evaluate_prior
from openjukebox.prior.model import Prior
from openjukebox.prior.surgery import add_lyrics, lyrics_layout
from openjukebox.lyrics.text import lyrics_window
from openjukebox.prior.training import sample_windows, train_prior
from openjukebox.prior.transformer import TransformerConfig
from test_cli_bad_inputs import assert_fails, assert_succeeds, run_cli
from test_lyrics_timing import one_song_cache

ENCODER = TransformerConfig(width=16, depth=3, heads=2, n_ctx=16, blocks=4)


def random_labels(batch=2, n_tokens=16):
    g = torch.Generator().manual_seed(3)
    return Labels(torch.tensor([1, 2]), torch.tensor([[0], [1]]), torch.tensor([160000, 80000]),
                  torch.tensor([0, 16000]), torch.randint(1, 80, (batch, n_tokens), generator=g))


@pytest.mark.parametrize("depth", [3, 12])
def test_surgery_keeps_the_predictions_exactly(depth):
    torch.manual_seed(0)
    config = prior_preset("tiny", 2, 64, 128, 16000, 3, 2)
    config = dataclasses.replace(config, transformer=dataclasses.replace(config.transformer, depth=depth))
    before = Prior(config).eval()
    after = add_lyrics(before, 16, ENCODER).eval()
    patterns = after.config.transformer.layer_patterns()
    assert patterns.count(ENCODER_DECODER) == max(1, depth // 9)
    assert [p for p in patterns if p != ENCODER_DECODER] == before.config.transformer.layer_patterns()
    codes = torch.randint(0, 64, (2, 64))
    with torch.no_grad():
        assert (before(codes, random_labels()) - after(codes, random_labels())).abs().max() <= 1e-6


def test_surgery_of_a_72_layer_prior_gives_the_released_5b_lyrics_layout():
    config = TransformerConfig(width=4800, depth=72, heads=8, n_ctx=8192, blocks=128, attn_order=2)
    layout = lyrics_layout(config)
    assert (layout.depth, layout.attn_order) == (79, 10)
    assert [p for p in layout.layer_patterns() if p != ENCODER_DECODER] == config.layer_patterns()


@pytest.fixture(scope="module")
def lyrics_cache(tmp_path_factory, tiny_run, music_dir):
    out = tmp_path_factory.mktemp("lyrics-codes")
    songs = sorted(music_dir.glob("*.wav"))
    lines = "".join(f'{p.name},artist{i % 2},rock,"la la la, song number {i}\nthe end ({i})"\n' for i, p in enumerate(songs))
    (music_dir / "metadata.csv").write_text("path,artist,genre,lyrics\n" + lines)
    try:
        build_code_cache(tiny_run, music_dir, out)
    finally:
        (music_dir / "metadata.csv").unlink()
    return out


def test_add_lyrics_then_train_learns_the_lyrics(tmp_path, lyrics_cache):
    top = tmp_path / "top"
    train_prior(lyrics_cache, 2, top, "tiny", steps=4, batch_size=2, save_every=4, progress=False)
    lyrical = tmp_path / "top-lyrics"
    assert_succeeds(run_cli("prior", "add-lyrics", "--from", top, "--out", lyrical, "--n-tokens", "16"))
    assert train_prior(lyrics_cache, 2, lyrical, "tiny", steps=60, batch_size=4, lr=3e-3, save_every=30,
                       progress=False) == 60
    rows = (lyrical / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("lyrics_nats_per_token")
    first, last = float(rows[1].split(",")[column]), float(rows[-1].split(",")[column])
    assert last < first and last < math.log(80)  # learned the lyrics' characters
    config = json.loads((lyrical / "config.json").read_text())
    assert config["n_tokens"] == 16 and config["lyrics_encoder"]["n_ctx"] == 16
    error = assert_fails(run_cli("prior", "add-lyrics", "--from", lyrical, "--out", tmp_path / "again"))
    assert "without lyrics" in error


def test_jitter_moves_each_training_window_of_lyrics_by_up_to_n_characters():
    rate, hop, n_ctx, length = 1000, 10, 20, 20000
    text = "".join(np.random.default_rng(0).choice(list("abcdefghijklmnopqrstuvwxyz"), 600))  # windows unique
    cache, config, lyrics = one_song_cache({"lyrics": text}, length, rate, hop)
    tokens = lyrics[0][0]

    def shifts(jitter: int) -> set[int]:
        batch = sample_windows(cache, 2, n_ctx, 200, np.random.default_rng(1), False, 1, lyrics, config.n_tokens,
                               jitter)
        found = set()
        for offset, window in zip(batch.labels.offset.tolist(), batch.labels.lyrics.tolist()):
            same = [s for s in range(-40, 41)
                    if lyrics_window(tokens, config.n_tokens, length, offset, n_ctx * hop, shift=s)[0] == window]
            assert same, "a window that no shift of the heuristic gives"
            found.add(min(same, key=abs))
        return found

    assert shifts(0) == {0}
    assert shifts(5) == set(range(-5, 6))


def test_lyrics_jitter_is_refused_where_it_cannot_apply(tmp_path, lyrics_cache):
    top = tmp_path / "top"
    train_prior(lyrics_cache, 2, top, "tiny", steps=2, batch_size=2, save_every=2, progress=False)
    train = ("prior", "train", "--level", "2", "--codes", lyrics_cache, "--steps", "4", "--batch-size", "2")
    error = assert_fails(run_cli(*train, "--out", top, "--lyrics-jitter", "4"))
    assert "lyrics_jitter (--lyrics-jitter) 4: only a lyrics prior reads lyrics" in error
    lyrical = tmp_path / "top-lyrics"
    assert_succeeds(run_cli("prior", "add-lyrics", "--from", top, "--out", lyrical, "--n-tokens", "16"))
    for bad in ("9", "-1"):
        error = assert_fails(run_cli(*train, "--out", lyrical, "--lyrics-jitter", bad))
        assert f"lyrics_jitter (--lyrics-jitter) {bad}: it must be between 0 and half the lyrics window " \
               "(8 characters)" in error
    assert not (lyrical / "checkpoints").exists()
    assert_succeeds(run_cli(*train, "--out", lyrical, "--lyrics-jitter", "8"))


def test_tiny_lyrics_bundle_samples_with_a_lyrics_file(tmp_path):
    bundle, lyrics = tmp_path / "bundle", tmp_path / "lyrics.txt"
    lyrics.write_text("Ünïcödé lyrics with émojis 🎵 and\nnew lines\\and backslashes " * 5)
    assert_succeeds(run_cli("init", "--preset", "tiny-lyrics", "--out", bundle))
    out = tmp_path / "song"
    assert_succeeds(run_cli("sample", "--model", bundle, "--duration", "0.5", "--out", out, "--lyrics-file", lyrics))
    assert sorted(p.name for p in out.glob("*.wav")) == [f"sample-0-level{l}.wav" for l in range(3)]
    long = tmp_path / "long.txt"
    long.write_text("a very long song that never ends, " * 500)  # 17 k characters: windows move through it
    assert_succeeds(run_cli("sample", "--model", bundle, "--duration", "0.5", "--out", tmp_path / "long",
                            "--lyrics-file", long, "--levels", "2"))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_succeeds(run_cli("sample", "--model", bundle, "--duration", "0.5", "--out", tmp_path / "instrumental",
                            "--lyrics-file", empty, "--levels", "2"))
    assert_fails(run_cli("sample", "--model", bundle, "--duration", "0.5", "--out", tmp_path / "missing",
                         "--lyrics-file", tmp_path / "nope.txt"), mentions="nope.txt")


def test_alignment_is_written_beside_the_audio_in_order(tmp_path):
    bundle, lyrics = tmp_path / "bundle", tmp_path / "lyrics.txt"
    text = "Here comes the sun\nand I say\nit's all right\n" * 4
    lyrics.write_text(text)
    assert_succeeds(run_cli("init", "--preset", "tiny-lyrics", "--out", bundle))
    out = tmp_path / "song"
    assert_succeeds(run_cli("sample", "--model", bundle, "--duration", "3", "--out", out, "--lyrics-file", lyrics,
                            "--levels", "2", "--n", "2"))
    for i in range(2):
        data = json.loads((out / f"sample-{i}-lyrics.json").read_text())
        words = data["words"]
        assert [w["word"] for w in words] == text.split()
        starts = [w["start"] for w in words]
        assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= 3.0
        lrc = (out / f"sample-{i}-lyrics.lrc").read_text().splitlines()
        assert len(lrc) == len([line for line in text.split("\n") if line])
        assert all(line.startswith("[") and "<" in line for line in lrc)
    # Another head can be read; the model's own head, named explicitly, gives the same alignment as the default.
    from openjukebox.bundle import load_bundle

    config = load_bundle(bundle).priors[2].config
    layer = config.alignment_layer_index()
    audio = out / "sample-0-level2.wav"
    assert_succeeds(run_cli("align", audio, "--model", bundle, "--lyrics-file", lyrics, "--out", tmp_path / "own"))
    assert_succeeds(run_cli("align", audio, "--model", bundle, "--lyrics-file", lyrics, "--out", tmp_path / "named",
                            "--layer", str(layer), "--head", str(config.alignment_head)))
    assert (tmp_path / "own" / "lyrics.json").read_text() == (tmp_path / "named" / "lyrics.json").read_text()
    assert_succeeds(run_cli("align", audio, "--model", bundle, "--lyrics-file", lyrics, "--out", tmp_path / "other",
                            "--layer", str(layer), "--head", "1"))
    assert_fails(run_cli("align", audio, "--model", bundle, "--lyrics-file", lyrics, "--out", tmp_path / "bad",
                         "--layer", "0"), mentions="does not attend to the lyrics")
    assert_fails(run_cli("align", audio, "--model", bundle, "--lyrics-file", lyrics, "--out", tmp_path / "bad",
                         "--layer", str(layer), "--head", "9"), mentions="alignment head 9")


def test_monotone_path_is_the_best_path_by_exhaustive_search():
    """On small random attention, the Viterbi path equals the best of every path that starts at character 0
    and moves on by 0 or 1 character per code, scored by summed log attention."""
    import itertools

    import numpy as np

    from openjukebox.sample.alignment import monotone_path

    rng = np.random.default_rng(0)
    for steps, characters in ((6, 4), (7, 3), (5, 6)):
        attention = rng.dirichlet(np.ones(characters), size=steps)
        log_attention = np.log(attention + 1e-4)
        best, best_path = -np.inf, None
        for moves in itertools.product((0, 1), repeat=steps - 1):
            path = np.concatenate(([0], np.cumsum(moves)))
            if path[-1] >= characters:
                continue
            score = log_attention[np.arange(steps), path].sum()
            if score > best:
                best, best_path = score, path
        assert monotone_path(attention).tolist() == best_path.tolist()


def test_word_times_from_a_known_attention():
    """Codes look at characters 0, 1, 2, 3, 3, 0, 4, 5, 6 of 'la di\nda end'. The stray look back at 0 cannot be
    followed (singing does not go back), so the path is 0, 1, 2, 3, 3, 3, 4, 5, 6 (or 3, 4 at code 5: the same
    cost). At 0.5 s per code: 'la' (char 0) starts at code 0, 'di' (char 3) at code 3 (1.5 s), 'da' (char 6) at
    code 8 (4.0 s), and 'end' (char 9) is never reached: the last code, 4.0 s."""
    import numpy as np

    from openjukebox.sample.alignment import monotone_path, to_lrc, word_timings

    text = "la di\nda end"
    looks = [0, 1, 2, 3, 3, 0, 4, 5, 6]
    attention = np.zeros((len(looks), len(text)))
    attention[np.arange(len(looks)), looks] = 1.0
    path = monotone_path(attention).tolist()
    assert path[:5] == [0, 1, 2, 3, 3] and path[5] in (3, 4) and path[6:] == [4, 5, 6]
    words = word_timings(text, attention, 0.5)
    assert [(w.word, w.start, w.reached) for w in words] == [("la", 0.0, True), ("di", 1.5, True),
                                                              ("da", 4.0, True), ("end", 4.0, False)]
    assert to_lrc(text, words) == "[00:00.00]<00:00.00>la <00:01.50>di\n[00:04.00]<00:04.00>da <00:04.00>end\n"


def test_eval_tells_how_much_a_lyrics_prior_listens_to_the_lyrics(lyrics_cache):
    cache = load_code_cache(lyrics_cache)
    c = cache.codes
    config = prior_preset("tiny", 2, c.codebook_size, c.hop_lengths[2], c.sample_rate, len(cache.labels.artists),
                          len(cache.labels.genres))
    torch.manual_seed(0)
    deaf = add_lyrics(Prior(config), 16, ENCODER).eval()  # new layers' outputs start at zero: lyrics change nothing
    report = evaluate_prior(deaf, cache, windows=8, batch_size=4)
    assert report["other_lyrics_nats_per_token"] == pytest.approx(report["nats_per_token"], abs=1e-6)
    with torch.no_grad():
        for parameter in deaf.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    report = evaluate_prior(deaf, cache, windows=16, batch_size=8)
    assert abs(report["other_lyrics_nats_per_token"] - report["nats_per_token"]) > 1e-4
    plain = evaluate_prior(Prior(config).eval(), cache, windows=8, batch_size=4)
    assert "other_lyrics_nats_per_token" not in plain


def test_a_clip_later_in_the_song_reads_the_lyrics_from_later_in_them(tmp_path):
    """song_start S: the top prior reads the lyrics window that a steady pace through the song puts at S seconds
    (built here by hand from lyrics_window), with the labels' offset S; the alignment is still written. The random
    prior's zero-initialised projections are perturbed so that the lyrics change the codes."""
    from openjukebox.bundle import init_bundle, load_bundle
    from openjukebox.lyrics.text import vocabulary_of_size
    from openjukebox.lyrics.timing import TimedLyrics, encode_timed
    from openjukebox.sample.ancestral import sample_level
    from openjukebox.sample.pipeline import SampleRequest, sample

    text = " ".join(f"word{i}" for i in range(400))
    bundle = load_bundle(init_bundle("tiny-lyrics", tmp_path / "bundle"))
    prior, rate = bundle.prior(2), bundle.vqvae.config.sample_rate
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in prior.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    sample(bundle, tmp_path / "song", SampleRequest(duration=1, song_seconds=8, song_start=5, lyrics=text, levels=[2],
                                                    seed=3), progress=False)
    config = prior.config
    tokens, _ = encode_timed(vocabulary_of_size(config.n_vocab), TimedLyrics(text), rate)
    song, fixed = 8 * rate, bundle.labels(None, [], 8 * rate, 1, 2)

    def by_hand(start):
        def labels_at(offset):
            window, _ = lyrics_window(tokens, config.n_tokens, song, start + offset, config.window_samples)
            return dataclasses.replace(fixed, offset=torch.tensor([start + offset]), lyrics=torch.tensor([window]))
        return sample_level(prior, -(-rate // bundle.vqvae.hop_lengths[2]), labels_at, seed=3 * 3 + 2).numpy()

    codes = np.load(tmp_path / "song" / "level2.npz")["codes"]
    assert np.array_equal(codes, by_hand(5 * rate)) and not np.array_equal(codes, by_hand(0))
    assert json.loads((tmp_path / "song" / "sample-0-lyrics.json").read_text())["words"]
