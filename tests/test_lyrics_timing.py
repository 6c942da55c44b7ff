"""Timed lyrics (paper section 4.2): LRC files, windows of lyrics placed by them, and their use in a dataset,
in training, in sampling and in alignment."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from openjukebox.codes import CodedClip, CodesFile
from openjukebox.vqvae.code_cache import CodeCache, build_code_cache, load_code_cache
from openjukebox.data.dataset import AudioFolder
from openjukebox.errors import DataError
from openjukebox.labels import LabelEncoder
from openjukebox.sample.alignment import WordTiming, to_lrc
from openjukebox.lyrics.text import lyrics_window, sung_position, vocabulary
from openjukebox.lyrics.timing import TimedLyrics, anchors_from_json, encode_timed, parse_lrc, read_timed_lyrics
from openjukebox.prior.config import prior_preset
from openjukebox.prior.training import encoded_lyrics, sample_windows
from test_cli_bad_inputs import assert_fails, assert_succeeds, run_cli


def test_word_level_lrc():
    timed = parse_lrc("[ar:Somebody]\n[ti:A song]\n"
                      "[00:01.00]<00:01.00>Sun <00:01.50>moon\n"
                      "[00:03.00]\n"  # a break: nothing sung from 3 s until the next line
                      "[00:04.00] river  <00:04.70>gold <00:05.25>\n")
    assert timed.text == "Sun moon\nriver  gold"
    #                     0   4    9      16   20 (the end)
    assert timed.anchors == ((1.0, 0), (1.0, 0), (1.5, 4), (3.0, 9), (4.0, 9), (4.7, 16), (5.25, 20))


def test_line_level_lrc_with_repeated_lines_an_offset_and_other_stamp_forms():
    timed = parse_lrc("[offset:+500]\n[00:05.00][01:01.5]la la\n[00:03:20]di\n[length: 2:00]\n\n")
    # lines in order of time; the offset makes every line 0.5 s earlier
    assert timed.text == "di\nla la\nla la"
    assert timed.anchors == ((2.7, 0), (4.5, 3), (61.0, 9))


def test_a_blank_lrc_is_an_instrumental_as_a_blank_lyrics_file_is():
    assert parse_lrc(" \n") == TimedLyrics("")


@pytest.mark.parametrize("text, message", [
    ("[00:01.00]one\ntwo\n", "song.lrc: line 2 has no [mm:ss.xx] time stamp: 'two'"),
    ("[00:02.00]one <00:01.00>two\n", "song.lrc: line 1: time 00:01.00 comes before 00:02.00"),
    ("[ar:Me]\n", "song.lrc: no timed lines ([mm:ss.xx] before a line of lyrics)"),
    ("[offset:soon]\n[00:01.00]a\n", "song.lrc: line 1: [offset:soon] is not whole milliseconds"),
])
def test_bad_lrc_is_refused_in_one_line(text, message):
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        parse_lrc(text, "song.lrc")


def test_the_alignment_sampling_writes_reads_back_as_timed_lyrics():
    text = "Here comes the sun\nand I say"
    starts = [0.0, 0.41, 1.2, 1.57, 59.999, 61.0, 63.456]
    words = [WordTiming(m.group(), t, m.start(), True) for m, t in zip(re.finditer(r"\S+", text), starts)]
    timed = parse_lrc(to_lrc(text, words))
    assert timed.text == text
    anchors = sorted(set(timed.anchors))  # a line's own stamp repeats its first word's
    assert [index for _, index in anchors] == [w.character for w in words]
    assert [at for at, _ in anchors] == pytest.approx(starts, abs=0.005)


def test_token_timing_follows_characters_that_cleaning_drops_or_expands():
    timed = TimedLyrics("Æ 🎵 naïve", ((1.0, 0), (2.0, 2), (3.0, 4)))  # Æ, the emoji, the n
    # cleaned: "AE  naive"; Æ → "AE" (two tokens), the emoji is dropped
    assert vocabulary(2).clean(timed.text) == "AE  naive"
    assert encode_timed(vocabulary(2), timed, 100) == (vocabulary(2).encode(timed.text), [(100, 0), (200, 3), (300, 4)])


def test_timed_window_follows_the_anchors():
    tokens = list(range(1, 101))  # the token at index i is i + 1
    timing = [(200, 10), (400, 80)]  # token 10 sung at sample 200, token 80 at 400; song of 1000 samples
    # windows of 100 samples: the middle of [offset, offset + 100) is offset + 50
    assert sung_position(timing, 100, 1000, 100) == 5.0  # from the song's start to the first anchor
    assert sung_position(timing, 300, 1000, 100) == 45.0  # between anchors
    assert sung_position(timing, 700, 1000, 100) == 90.0  # from the last anchor to the song's end
    assert lyrics_window(tokens, 10, 1000, 250, 100, timing) == (tokens[40:50], list(range(40, 50)))
    assert lyrics_window(tokens, 10, 1000, 650, 100, timing) == (tokens[85:95], list(range(85, 95)))
    # the linear heuristic puts both elsewhere
    assert lyrics_window(tokens, 10, 1000, 250, 100)[1] == list(range(25, 35))
    # an intro: nothing sung before the first anchor holds the window at the start
    assert sung_position([(500, 0)], 400, 1000, 100) == 0.0


def test_anchors_at_the_song_ends_give_the_linear_windows():
    rng = np.random.default_rng(0)
    tokens = list(range(1, 301))
    for _ in range(200):
        total = int(rng.integers(1000, 10 ** 7))
        offset, duration = int(rng.integers(0, total)), int(rng.integers(1, 10 ** 5))
        assert lyrics_window(tokens, 64, total, offset, duration, [(0, 0), (total, 300)]) == \
            lyrics_window(tokens, 64, total, offset, duration)


def one_song_cache(labels: dict, length: int, rate: int, hop: int):
    """A codes cache of one silent song of `length` samples with these labels (artist x, genre y), the
    `tiny-lyrics` top prior's config for it, and the song's encoded lyrics."""
    codes = CodesFile([np.zeros((1, length // hop), np.int64)] * 3,
                      [CodedClip("song.wav", 0.0, length / rate, length, {"artist": "x", "genre": "y", **labels})],
                      rate, (hop, hop, hop), 16, "test")
    cache = CodeCache(codes, LabelEncoder(["unknown", "x"], ["unknown", "y"]))
    config = prior_preset("tiny-lyrics", 2, 16, hop, rate, 2, 2)
    return cache, config, encoded_lyrics(cache, config)


def test_training_takes_its_lyrics_windows_from_the_timing():
    """A song whose second line is sung from 1 s on, of 8 s: the linear heuristic would put it after 4 s."""
    rate, hop, n_ctx, length = 1000, 10, 20, 8000
    text = "a" * 40 + "\n" + "b" * 40
    timed = TimedLyrics(text, ((0.0, 0), (1.0, 41)))
    cache, config, lyrics = one_song_cache({"lyrics": text, "lyrics_timing": timed.anchors_json()}, length, rate, hop)
    batch = sample_windows(cache, 2, n_ctx, 64, np.random.default_rng(0), False, 1, lyrics, config.n_tokens)
    b = vocabulary(2).encode("b")[0]
    middles = batch.labels.offset.numpy() + n_ctx * hop / 2
    centre = batch.labels.lyrics[:, config.n_tokens // 2].numpy()
    assert (middles > 1500).sum() > 40 and (centre[middles > 1500] == b).all()
    assert (centre[middles < 900] != b).all()


@pytest.fixture
def songs_with_lrc(tmp_path, music_dir):
    data = tmp_path / "data"
    shutil.copytree(music_dir, data)
    song = sorted(data.glob("*.wav"))[0]
    song.with_suffix(".lrc").write_text("[00:00.50]<00:00.50>la <00:01.00>la\n[00:03.00]the end\n")
    return data, song


def test_an_lrc_beside_the_audio_gives_its_lyrics_and_timing_to_the_codes_cache(tmp_path, songs_with_lrc, tiny_run):
    data, song = songs_with_lrc
    cache = build_code_cache(tiny_run, data, tmp_path / "codes")
    clip = next(c for c in load_code_cache(tmp_path / "codes").codes.clips if c.source == song.name)
    assert clip.labels["lyrics"] == "la la\nthe end"
    assert anchors_from_json(clip.labels["lyrics_timing"]) == ((0.5, 0), (0.5, 0), (1.0, 3), (3.0, 6))
    assert all("lyrics_timing" not in c.labels for c in cache.codes.clips if c.source != song.name)


def test_an_lrc_that_sings_other_lyrics_than_the_metadata_is_refused(tmp_path, songs_with_lrc):
    data, song = songs_with_lrc
    (data / "metadata.csv").write_text(f"path,artist,genre,lyrics\n{song.name},a,b,\"la la\nthe  end\"\n")
    assert AudioFolder(data, 16000, tmp_path / "cache").files[0].lyrics == "la la\nthe end"  # spacing aside, same
    (data / "metadata.csv").write_text(f"path,artist,genre,lyrics\n{song.name},a,b,other words\n")
    with pytest.raises(DataError, match="^" + re.escape(f"{song.with_suffix('.lrc')}: its lyrics differ")):
        AudioFolder(data, 16000, tmp_path / "cache")


def test_sample_and_align_with_an_lrc_file(tmp_path):
    bundle, lrc = tmp_path / "bundle", tmp_path / "song.lrc"
    lrc.write_text("[00:00.20]Here comes the sun\n[00:01.50]and I say\n[00:02.40]it's all right\n")
    assert read_timed_lyrics(lrc).text == "Here comes the sun\nand I say\nit's all right"
    assert_succeeds(run_cli("init", "--preset", "tiny-lyrics", "--out", bundle))
    out = tmp_path / "song"
    args = ("sample", "--model", bundle, "--duration", "3", "--out", out, "--lyrics-file", lrc, "--levels", "2")
    assert_succeeds(run_cli(*args))
    request = json.loads((out / "request.json").read_text())
    assert request["lyrics_timing"] == [[0.2, 0], [1.5, 19], [2.4, 29]]
    words = json.loads((out / "sample-0-lyrics.json").read_text())["words"]
    assert [w["word"] for w in words] == "Here comes the sun and I say it's all right".split()
    assert_succeeds(run_cli(*args))  # the same request again: nothing to redo, not "a different request"
    lrc.write_text("[00:00.20]Here comes the sun\n[00:01.00]and I say\n[00:02.40]it's all right\n")
    assert_fails(run_cli(*args), mentions="different sampling request")
    assert_succeeds(run_cli("align", out / "sample-0-level2.wav", "--model", bundle, "--lyrics-file", lrc,
                            "--out", tmp_path / "aligned"))
    assert (tmp_path / "aligned" / "lyrics.lrc").is_file()
    bad = tmp_path / "bad.lrc"
    bad.write_text("no stamps here\n")
    assert_fails(run_cli("sample", "--model", bundle, "--duration", "1", "--out", tmp_path / "x", "--lyrics-file", bad),
                 mentions="bad.lrc: line 1 has no [mm:ss.xx] time stamp")


def test_a_run_saved_before_timed_lyrics_existed_continues(tmp_path):
    bundle, lyrics = tmp_path / "bundle", tmp_path / "lyrics.txt"
    lyrics.write_text("la la la\n")
    assert_succeeds(run_cli("init", "--preset", "tiny-lyrics", "--out", bundle))
    out = tmp_path / "song"
    args = ("sample", "--model", bundle, "--duration", "1", "--out", out, "--lyrics-file", lyrics, "--levels", "2")
    assert_succeeds(run_cli(*args))
    saved = json.loads((out / "request.json").read_text())
    del saved["lyrics_timing"]
    (out / "request.json").write_text(json.dumps(saved))
    assert_succeeds(run_cli(*args))
