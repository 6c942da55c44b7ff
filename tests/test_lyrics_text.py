"""Lyrics text: the released vocabularies, cleaning close to the original's, its window heuristic, lyrics files."""

from __future__ import annotations

import ast
import importlib.util
import random
import re
from pathlib import Path

import pytest

from openjukebox.errors import ConfigError
from openjukebox.lyrics.text import LyricsVocabulary, lyrics_window, read_lyrics_file, vocabulary


def test_vocabulary_positions():
    v2, v3 = vocabulary(2), vocabulary(3)
    assert (v2.n_vocab, v3.n_vocab) == (80, 79)
    for vocab in (v2, v3):
        assert vocab.encode("Aa0.") == [1, 27, 53, 63]
    assert v2.encode("+'\n") == [70, 71, 79]
    assert v3.encode("+'\n") == [70, 78]  # no '+' in v3, so the characters after it move down one
    assert vocabulary(2) is v2 and v2 == LyricsVocabulary(2)


def test_unknown_version_is_refused():
    with pytest.raises(ConfigError, match=r"version must be 2 \(5b_lyrics\) or 3 \(1b_lyrics\), not 4"):
        vocabulary(4)


def test_clean_text_round_trips():
    text = 'Is this the real life?\n\t[Chorus] (x2): "Mama", oh-oh; I don\'t want to die!'
    for version in (2, 3):
        vocab = vocabulary(version)
        assert vocab.clean(text) == text
        assert vocab.decode(vocab.encode(text)) == text
    assert vocabulary(2).decode([0, 0, 1, 0, 27]) == "Aa"


def test_decode_refuses_tokens_outside_the_vocabulary():
    with pytest.raises(ConfigError, match=r"^lyric token 80 is outside 0\.\.79 of vocabulary v2$"):
        vocabulary(2).decode([1, 80])
    with pytest.raises(ConfigError, match=r"^lyric token -1 is outside 0\.\.78 of vocabulary v3$"):
        vocabulary(3).decode([-1])


def test_cleaning():
    vocab = vocabulary(2)
    assert vocab.encode("a\\b") == [27, 79, 28]  # a backslash is a line break
    assert vocab.clean("Beyoncé, Mötley Crüe, Straße, Łódź") == "Beyonce, Motley Crue, Strasse, Lodz"
    assert vocab.clean("hi 😀🎶 ❤️!") == "hi  !"
    assert vocab.clean("“Don’t” — ok… ¿sí?") == "\"Don't\" -- ok... ?si?"
    assert vocab.clean("a\u00a0b\r\nc & d / e") == "a b\nc  d  e"
    assert vocabulary(3).clean("1+1") == "11"
    # scripts the original romanises are romanised, not dropped (our romanisation may spell some letters otherwise)
    assert vocab.clean("Привет") == "Privet"
    assert vocab.clean("周杰伦") == "Zhou Jie Lun "


def test_window_pads_short_lyrics_on_the_left():
    assert lyrics_window([5, 6, 7], 6, 1000, 500, 100) == ([0, 0, 0, 5, 6, 7], [-1, -1, -1, 0, 1, 2])


def test_window_follows_the_audio_through_long_lyrics():
    tokens = list(range(1, 101))  # the token at index i is i + 1
    # 100 tokens over 1000 samples: audio [offset, offset + 100) has its middle at token 0.1 * (offset + 50)
    assert lyrics_window(tokens, 10, 1000, 0, 100) == (tokens[0:10], list(range(0, 10)))  # middle 5
    assert lyrics_window(tokens, 10, 1000, 450, 100) == (tokens[45:55], list(range(45, 55)))  # middle 50
    assert lyrics_window(tokens, 10, 1000, 999, 100) == (tokens[90:100], list(range(90, 100)))  # 104, kept at 95
    assert lyrics_window(tokens, 100, 1000, 999, 100) == (tokens, list(range(100)))


def test_a_shifted_window_moves_by_the_shift_and_stays_within_the_lyrics():
    tokens = list(range(1, 101))  # as above: audio [450, 550) of 1000 samples is centred on token 50
    assert lyrics_window(tokens, 10, 1000, 450, 100, shift=3) == (tokens[48:58], list(range(48, 58)))
    assert lyrics_window(tokens, 10, 1000, 450, 100, shift=-7) == (tokens[38:48], list(range(38, 48)))
    assert lyrics_window(tokens, 10, 1000, 450, 100, shift=-60) == (tokens[0:10], list(range(0, 10)))
    assert lyrics_window(tokens, 10, 1000, 450, 100, shift=60) == (tokens[90:100], list(range(90, 100)))
    assert lyrics_window([5, 6, 7], 6, 1000, 500, 100, shift=2) == ([0, 0, 0, 5, 6, 7], [-1, -1, -1, 0, 1, 2])


@pytest.mark.parametrize("n_tokens, offset, message", [
    (0, 0, "lyrics window of 0 tokens: it must be a positive even number"),
    (7, 0, "lyrics window of 7 tokens: it must be a positive even number"),
    (8, 1000, "lyrics window offset 1000 is outside the song of 1000 samples"),
    (8, -1, "lyrics window offset -1 is outside the song of 1000 samples"),
])
def test_window_refuses_bad_arguments(n_tokens, offset, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        lyrics_window(list(range(20)), n_tokens, 1000, offset, 100)


def test_read_lyrics_file(tmp_path):
    lyrics = tmp_path / "song.txt"
    lyrics.write_text("Héllo\nworld\n", encoding="utf-8")
    assert read_lyrics_file(lyrics) == "Héllo\nworld\n"
    lyrics.write_bytes("\ufeffHi\r\nthere".encode("utf-8"))
    assert read_lyrics_file(str(lyrics)) == "Hi\nthere"
    for blank in ("", " \n\t\n"):
        lyrics.write_text(blank, encoding="utf-8")
        assert read_lyrics_file(lyrics) == ""


@pytest.mark.parametrize("make, message", [
    (lambda path: None, "no such lyrics file"),
    (lambda path: path.mkdir(), "is a directory, not a lyrics file"),
    (lambda path: path.write_bytes(b"caf\xe9\n"), "lyrics file is not UTF-8 (byte 0xe9 at offset 3); save it as UTF-8"),
])
def test_read_lyrics_file_errors(tmp_path, make, message):
    path = tmp_path / "lyrics.txt"
    make(path)
    with pytest.raises(ConfigError, match=f"^{re.escape(f'{path}: {message}')}$"):
        read_lyrics_file(path)


# The original's window function and text processor, from jukebox-infer (MIT). Importing its package would pull in
# torch and librosa, so the window function is compiled from its source alone and the text processor (which needs
# only `re` and `unidecode`) is loaded from its file.
def _reference_file(name: str) -> Path:
    spec = importlib.util.find_spec("jukebox_infer")
    if spec is None:
        pytest.skip("jukebox-infer is not installed (pip install -e .[parity])")
    return Path(spec.submodule_search_locations[0]) / "data" / name


@pytest.fixture(scope="module")
def reference_window():
    tree = ast.parse(_reference_file("labels.py").read_text(encoding="utf-8"))
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "get_relevant_lyric_tokens")
    namespace: dict = {}
    exec(compile(ast.Module([function], type_ignores=[]), "labels.py", "exec"), namespace)
    return namespace["get_relevant_lyric_tokens"]


@pytest.fixture(scope="module")
def reference_processor():
    path = _reference_file("text_processor.py")
    pytest.importorskip("unidecode")
    spec = importlib.util.spec_from_file_location("_reference_text_processor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TextProcessor


def test_window_matches_the_original(reference_window):
    rng = random.Random(0)
    for _ in range(2000):
        tokens = [rng.randint(1, 79) for _ in range(rng.randint(0, 80))]
        n_tokens = 2 * rng.randint(1, 30)
        total_length = rng.randint(1, 10**7)
        offset = rng.randrange(total_length)
        duration = rng.randint(1, 10**6)
        assert lyrics_window(tokens, n_tokens, total_length, offset, duration) == \
            reference_window(tokens, n_tokens, total_length, offset, duration)


# Where our transliteration is expected to agree with the original's: Latin-script text, common punctuation,
# emoji, kana, whitespace. (CJK, Hangul, Cyrillic and Greek are romanised too, but some letters are spelt otherwise.)
CORPUS = [
    "Is this the real life? Is this just fantasy?\nCaught in a landslide, no escape from reality.\n[Chorus]\n"
    "I can't stop (no, no!) - 50+ \"times\"; ok: yes.\n\tTabbed line\n",
    "“Don’t stop” — she said… ‘maybe’ – then „nein“ ‚ja‘ ‛x‟ «guillemets» ¡Hola! ¿Qué?",
    "À la claire fontaine, m'en allant promener, j'ai trouvé l'eau si belle. Œuvre, cœur, Noël, garçon, naïve, où",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein. Straße, Mädchen, schön, Größe, GROẞE",
    "¿Dónde estás, corazón? Niño, mañana, pingüino, canción, ¡olé!",
    "Zażółć gęślą jaźń. Łódź, Kraków, Gdańsk, źdźbło, ŁĄKA",
    "Æøå ÆØÅ smørrebrød, Ísland, Þórr, Færøerne, Ðiðrik, Söderström, Åsa",
    "Beyoncé, Björk, Sigur Rós, Dvořák, Şişli, İstanbul, Đorđe, ﬁne ﬂower, ½ cup, 2², №5, ™ © ®, 10°C, 5 €, 3×4",
    "I love you ❤️ 😀🎶 ✨ so much 🔥🔥 ♪ la la ♫",
    "こんにちは、カタカナ「テスト」",
    "line one\\line two\\\\ and tab\there\r\nwindows\u00a0nbsp\u2009thin\u2028ls\u200bzw",
]
# Latin letters on which the original's transliteration differs from ours: 'ĸ' k/q, 'ŉ' 'n/n, 'Ŋ' NG/Ng.
LATIN_DIFFERENCES = set("ĸŉŊ")


@pytest.mark.parametrize("version", [2, 3])
def test_encode_matches_the_original(reference_processor, version):
    processor, vocab = reference_processor(v3=version == 3), vocabulary(version)
    assert vocab.n_vocab == processor.n_vocab
    for text in CORPUS:
        assert vocab.encode(text) == processor.tokenise(processor.clean(text)), text
    latin = [chr(c) for c in range(0xC0, 0x180) if chr(c) not in LATIN_DIFFERENCES]
    punctuation = [chr(c) for c in range(0x2000, 0x200C)] + list("‐‑‒–—―‘’‚‛“”„‟…\u2028\u2029¡¿«»·´×")
    for char in latin + punctuation:
        assert vocab.clean(char) == processor.clean(char), char
