"""Artist and genre ids of the released models: same ids as the original where it finds a name, refusals otherwise."""

from __future__ import annotations

import importlib.util
import random
import unicodedata
from pathlib import Path

import pytest

from openjukebox.label_table import LabelTable, load_label_table
from openjukebox.errors import ConfigError


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def v2(tmp_path) -> LabelTable:
    artists = _write(tmp_path / "v2_artist_ids.txt",
                     ["unknown;0", "various;0", ";0", "the_beatles;1", "beyonce;2", "bj_rk;3", "Queen;4"])
    genres = _write(tmp_path / "v2_genre_ids.txt", ["unknown;0", "pop;1", "rock;2", "hip;3", "hop;4", "jazz;5"])
    return load_label_table(artists, genres, 2)


@pytest.fixture
def v3(tmp_path) -> LabelTable:
    artists = _write(tmp_path / "v3_artist_ids.txt", ["unknown;0", "beyoncé;1", "the beatles;2", "Björk;3"])
    genres = _write(tmp_path / "v3_genre_ids.txt", ["unknown;0", "pop rock;1", "música popular;2"])
    return load_label_table(artists, genres, 3)


def test_case_is_ignored(v2, v3):
    assert v2.artist_id("The Beatles") == v2.artist_id("THE  BEATLES") == 1
    assert v2.artist_id("QUEEN") == 4  # names are lowercased on load too
    assert v3.artist_id("THE BEATLES") == 2
    assert v3.genre_ids("Pop Rock") == [1]


def test_accents_are_ignored(v2, v3):
    assert v3.artist_id("Beyoncé") == v3.artist_id("Beyonce") == v3.artist_id("BEYONCE") == 1
    assert v2.artist_id("Beyoncé") == v2.artist_id("beyonce") == 2
    assert v3.artist_id("bjork") == 3
    assert v3.genre_ids("Musica Popular") == [2]
    assert v2.artist_id("Björk") == 3  # the original's own keying: 'ö' is not a-z, so 'bj_rk'


def test_v2_genres_are_a_bag_of_words(v2):
    assert v2.genre_ids("Pop Rock") == [1, 2]
    assert v2.genre_ids("Hip-Hop") == [3, 4]
    assert v2.genre_ids("jazz/pop/rock/hip/hop") == [5, 1, 2, 3, 4]


def test_v2_genres_of_more_than_five_words_are_refused(v2):
    with pytest.raises(ConfigError, match="has 6 words .*at most 5"):
        v2.genre_ids("pop rock jazz pop rock jazz")


def test_unknown_names_are_refused_with_suggestions_on_one_line(v2, v3):
    with pytest.raises(ConfigError) as e:
        v3.artist_id("The Beetles")
    assert str(e.value) == "unknown artist 'The Beetles'; did you mean 'the beatles'?"
    with pytest.raises(ConfigError) as e:
        v2.genre_ids("Pop Rokc")
    assert str(e.value) == "unknown genre word 'rokc' in 'Pop Rokc'; did you mean 'rock'?"
    with pytest.raises(ConfigError, match=r"^unknown artist 'zzzzzz' \(6 known, e\.g\. 'unknown', ") as e:
        v2.artist_id("zzzzzz")
    assert "\n" not in str(e.value)


def test_unknown_is_allowed_by_name_but_not_as_a_fallback(v2, v3):
    assert v2.artist_id("Unknown") == v2.artist_id("various") == v3.artist_id("unknown") == 0
    assert v2.genre_ids("unknown") == [0]
    with pytest.raises(ConfigError, match="unknown artist '周杰伦'"):
        v2.artist_id("周杰伦")  # the original keys it as '' and so as ';0'


def test_names_list_each_id_with_the_names_sharing_it(v2):
    assert v2.names("artist") == ["unknown | various", "the_beatles", "beyonce", "bj_rk", "queen"]
    assert v2.artist_names[0] == "unknown | various"
    with pytest.raises(ConfigError, match="unknown label kind 'album'"):
        v2.names("album")


def test_keys_that_fold_together_are_not_guessed_between():
    table = LabelTable(3, {"beyoncé": 1, "beyoncè": 2}, {"pop": 0})
    assert table.artist_id("Beyoncé") == 1
    with pytest.raises(ConfigError, match=r"^ambiguous artist 'Beyonce': it matches 'beyoncè' \(id 2\), "):
        table.artist_id("Beyonce")


def test_bad_tables_are_refused_naming_file_and_line(tmp_path):
    genres = _write(tmp_path / "genres.txt", ["pop;0"])
    no_id = _write(tmp_path / "no_id.txt", ["unknown;0", "", "the beatles"])
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'no_id.txt'}, line 3: expected 'name;id'"):
        load_label_table(no_id, genres, 3)
    bad_id = _write(tmp_path / "bad_id.txt", ["unknown;0", "the beatles;two"])
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'bad_id.txt'}, line 2: id 'two' is not an integer"):
        load_label_table(bad_id, genres, 3)
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'missing.txt'}: no such id table$"):
        load_label_table(tmp_path / "missing.txt", genres, 3)
    with pytest.raises(ConfigError, match="version must be 2 .* or 3"):
        load_label_table(genres, genres, 1)


# The original's own processor and id tables, from jukebox-infer (MIT). Its module is loaded from its file, as
# importing the package would pull in torch and librosa for a few string functions.
def _reference_module():
    spec = importlib.util.find_spec("jukebox_infer")
    if spec is None:
        pytest.skip("jukebox-infer is not installed (pip install -e .[parity])")
    path = Path(spec.submodule_search_locations[0]) / "data" / "artist_genre_processor.py"
    module_spec = importlib.util.spec_from_file_location("_reference_artist_genre_processor", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def released():
    """(our table, the original's processor, its keying) for v2 and v3."""
    module = _reference_module()
    out = {}
    for version in (2, 3):
        processor = module.ArtistGenreProcessor(v3=version == 3)
        table = load_label_table(processor.artist_id_file, processor.genre_id_file, version)
        out[version] = (table, processor, module.norm if version == 2 else str.lower)
    return out


def _variants(names: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    sample = rng.sample(names, min(300, len(names)))
    return names + [v for n in sample for v in (n.upper(), n.title(), n.replace("_", " ").replace(" ", "  "),
                                                  f" {n.replace('_', '-')} ")]


@pytest.mark.parametrize("version", [2, 3])
def test_released_artist_ids_match_the_original(released, version):
    table, processor, key = released[version]
    compared = 0
    for name in _variants(list(processor.artist_ids), version):
        if key(name) in processor.artist_ids and key(name):
            assert table.artist_id(name) == processor.get_artist_id(name), name
            compared += 1
    assert compared > len(processor.artist_ids)


def _v2_genre_phrases(words: list[str], rng: random.Random) -> list[str]:
    return [rng.choice([" ", "-", " & ", "/"]).join(rng.choice([str.title, str.upper, str])(w)
                                                     for w in rng.sample(words, rng.randint(1, 5)))
            for _ in range(300)]


@pytest.mark.parametrize("version", [2, 3])
def test_released_genre_ids_match_the_original(released, version):
    table, processor, key = released[version]
    names = list(processor.genre_ids)
    if version == 2:
        names = _v2_genre_phrases(names, random.Random(0))
    compared = 0
    for name in _variants(names, version):
        keys = key(name).split("_") if version == 2 else [key(name)]
        if all(k in processor.genre_ids and k for k in keys) and len(keys) <= 5:
            assert table.genre_ids(name) == processor.get_genre_ids(name), name
            compared += 1
    assert compared > 300


def test_released_v3_names_are_found_without_their_accents(released):
    table, processor, _ = released[3]
    accented = [n for n in processor.artist_ids if unicodedata.normalize("NFKD", n) != n]
    assert len(accented) > 50
    for name in accented:
        plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
        if plain not in processor.artist_ids:
            assert table.artist_id(plain.upper()) == processor.artist_ids[name], name
