"""openjukebox.data: audio folders as training sets (labels, crops, mixing down, the decode cache, bad files)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import openjukebox.data.dataset as dataset_module
from openjukebox.data.dataset import AudioFolder, downmix
from openjukebox.data.metadata import read_metadata
from openjukebox.errors import DataError

RATE = 16000


def ramp(n: int) -> np.ndarray:
    """-1 … 1 over n samples: sample i holds -1 + 2 i / (n - 1), so a value gives back its index."""
    return (-1.0 + 2.0 * np.arange(n) / (n - 1)).astype(np.float32)


def ramp_index(values: np.ndarray, n: int) -> np.ndarray:
    return np.rint((np.asarray(values, np.float64) + 1.0) * (n - 1) / 2.0).astype(np.int64)


def write(path: Path, data: np.ndarray, rate: int = RATE) -> Path:
    """Write (channels, samples) or (samples,) as float WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(data, np.float32)
    sf.write(path, data.T if data.ndim == 2 else data, rate, subtype="FLOAT")
    return path


def folder(data_dir: Path, cache: Path, **kwargs) -> AudioFolder:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy folder gives no warning
        return AudioFolder(data_dir, RATE, cache, **kwargs)


# ----------------------------------------------------------------------------------------------- metadata


@pytest.fixture
def labelled_dir(tmp_path) -> Path:
    data = tmp_path / "data"
    for name in ("a.wav", "sub/b.wav", "c.wav"):
        write(data / name, np.full(500, 0.1))
    return data


def labels_by_path(ds: AudioFolder) -> dict[str, tuple[str, str, str]]:
    return {f.path: (f.artist, f.genre, f.lyrics) for f in ds.files}


EXPECTED_LABELS = {
    "a.wav": ("Ann Artist", "jazz", "la la, \"la\"\nsecond line"),
    os.path.join("sub", "b.wav"): ("Björk Ō", "électro", "ünïcödé ♪"),
    "c.wav": ("", "", ""),  # not in the table
}


def test_metadata_csv_labels_the_right_files(labelled_dir, tmp_path):
    (labelled_dir / "metadata.csv").write_text(
        "path,genre,artist,lyrics\n"  # columns in any order
        "sub/b.wav,électro,Björk Ō,ünïcödé ♪\n"
        "a.wav,jazz,Ann Artist,\"la la, \"\"la\"\"\nsecond line\"\n",
        encoding="utf-8")
    ds = folder(labelled_dir, tmp_path / "cache")
    assert labels_by_path(ds) == EXPECTED_LABELS


def test_metadata_csv_with_byte_order_mark(labelled_dir, tmp_path):
    # Spreadsheet programs save "UTF-8 CSV" with a byte-order mark in front of the first column's name.
    (labelled_dir / "metadata.csv").write_text(
        "path,artist,genre,lyrics\na.wav,Ann Artist,jazz,hi\n", encoding="utf-8-sig")
    ds = folder(labelled_dir, tmp_path / "cache")
    assert labels_by_path(ds)["a.wav"] == ("Ann Artist", "jazz", "hi")


def test_metadata_jsonl_labels_the_right_files(labelled_dir, tmp_path):
    rows = [
        {"path": "a.wav", "artist": "Ann Artist", "genre": "jazz", "lyrics": "la la, \"la\"\nsecond line"},
        {"path": "./sub/b.wav", "artist": "Björk Ō", "genre": "électro", "lyrics": "ünïcödé ♪", "extra": 1},
    ]
    (labelled_dir / "metadata.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=i == 0) for i, r in enumerate(rows)) + "\n\n", encoding="utf-8")
    ds = folder(labelled_dir, tmp_path / "cache")
    assert labels_by_path(ds) == EXPECTED_LABELS


def test_metadata_given_explicitly(labelled_dir, tmp_path):
    table = labelled_dir / "labels.jsonl"
    table.write_text(json.dumps({"path": "c.wav", "artist": "Cee", "genre": "rock"}) + "\n")
    ds = folder(labelled_dir, tmp_path / "cache", metadata=table)
    assert labels_by_path(ds)["c.wav"] == ("Cee", "rock", "")
    assert labels_by_path(ds)["a.wav"] == ("", "", "")


def test_missing_label_columns_are_empty(tmp_path):
    table = tmp_path / "metadata.csv"
    table.write_text("path,artist\nx.wav,Someone\n")
    assert read_metadata(table) == {"x.wav": {"artist": "Someone", "genre": "", "lyrics": ""}}


@pytest.mark.parametrize("name,content,reason", [
    ("metadata.csv", "file,artist\na.wav,Ann\n", "'path'"),
    ("metadata.csv", "path,artist\n,Ann\n", "'path'"),
    ("metadata.jsonl", '{"path": "a.wav"}\n{"path": "c.wav", "artist": \n', "line 2"),
    ("metadata.jsonl", '["a.wav", "Ann"]\n', "line 1"),
    ("metadata.jsonl", '{"artist": "Ann"}\n', "'path'"),
    ("metadata.jsonl", '{"path": 7, "artist": "Ann"}\n', "'path'"),
])
def test_bad_metadata_raises_data_error(labelled_dir, tmp_path, name, content, reason):
    table = labelled_dir / name
    table.write_text(content)
    with pytest.raises(DataError) as info:
        read_metadata(table)
    assert str(table) in str(info.value) and reason in str(info.value)
    with pytest.raises(DataError):
        AudioFolder(labelled_dir, RATE, tmp_path / "cache")


def test_metadata_not_utf8_or_wrong_kind(tmp_path):
    latin = tmp_path / "metadata.csv"
    latin.write_bytes("path,artist\na.wav,Bj\xf6rk\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        read_metadata(latin)
    other = tmp_path / "metadata.txt"
    other.write_text("path\n")
    with pytest.raises(DataError, match=r"\.csv or \.jsonl"):
        read_metadata(other)
    with pytest.raises(DataError, match="no such"):
        read_metadata(tmp_path / "absent.csv")


# ----------------------------------------------------------------------------------------------- crops


RAMP_LENGTHS = {"one.wav": 2000, "two.wav": 1200, "three.wav": 1601}


@pytest.fixture
def ramp_dir(tmp_path) -> Path:
    """Mono files whose every sample value encodes its own index (2000 samples → 1e-3 per step, far above
    the float16 cache's rounding)."""
    data = tmp_path / "ramps"
    for name, n in RAMP_LENGTHS.items():
        write(data / name, ramp(n))
    return data


def test_lengths_and_paths(ramp_dir, tmp_path):
    ds = folder(ramp_dir, tmp_path / "cache")
    assert sorted(f.path for f in ds.files) == sorted(RAMP_LENGTHS)
    for f, length in zip(ds.files, ds.lengths):
        assert f.length == length == RAMP_LENGTHS[f.path]
        assert f.channels == 1
    assert len(ds) == 3
    assert ds.total_seconds == pytest.approx(sum(RAMP_LENGTHS.values()) / RATE)


def test_lengths_after_resampling(music_dir, tmp_path):
    # The conftest folder: four 6-second files at 22.05 kHz, read at 16 kHz.
    ds = folder(music_dir, tmp_path / "cache")
    assert len(ds) == 4
    assert all(abs(int(n) - 6 * RATE) <= 1 for n in ds.lengths)
    assert all(f.channels == 2 for f in ds.files)


def test_crop_holds_the_file_samples_at_the_offset(ramp_dir, tmp_path):
    ds = folder(ramp_dir, tmp_path / "cache")
    for i, f in enumerate(ds.files):
        n = RAMP_LENGTHS[f.path]
        for offset in (0, 1, 137, n - 256):
            crop = ds.crop(i, offset, 256)
            assert crop.shape == (1, 256) and crop.dtype == np.float32
            np.testing.assert_array_equal(ramp_index(crop[0], n), np.arange(offset, offset + 256))


def test_crop_past_the_end_is_zero_padded(ramp_dir, tmp_path):
    ds = folder(ramp_dir, tmp_path / "cache")
    i = [f.path for f in ds.files].index("two.wav")
    crop = ds.crop(i, 1100, 256)
    np.testing.assert_array_equal(ramp_index(crop[0, :100], 1200), np.arange(1100, 1200))
    assert np.all(crop[0, 100:] == 0)
    assert np.all(ds.crop(i, 5000, 16) == 0)


def test_stereo_crop_keeps_channels(tmp_path):
    n = 2000
    write(tmp_path / "data" / "s.wav", np.stack([ramp(n), -ramp(n)]))
    ds = folder(tmp_path / "data", tmp_path / "cache")
    crop = ds.crop(0, 300, 100)
    assert crop.shape == (2, 100)
    np.testing.assert_array_equal(ramp_index(crop[0], n), np.arange(300, 400))
    np.testing.assert_array_equal(ramp_index(-crop[1], n), np.arange(300, 400))


@pytest.mark.parametrize("train", [True, False])
def test_batch_crops_carry_offset_and_total_length(ramp_dir, tmp_path, train):
    ds = folder(ramp_dir, tmp_path / "cache")
    length = 512
    batch = ds.sample_batch(32, length, np.random.default_rng(3), train=train)
    assert batch.audio.shape == (32, 1, length)
    assert batch.audio.dtype.is_floating_point and str(batch.audio.dtype) == "torch.float32"
    for b in range(32):
        f = ds.files[int(batch.file_index[b])]
        n = RAMP_LENGTHS[f.path]
        offset = int(batch.offset[b])
        assert int(batch.total_length[b]) == n
        assert 0 <= offset <= n - length
        # The crop's first sample says where in the file it starts.
        np.testing.assert_array_equal(ramp_index(batch.audio[b, 0].numpy(), n), np.arange(offset, offset + length))


def test_files_shorter_than_the_crop_are_zero_padded(tmp_path):
    write(tmp_path / "data" / "short.wav", ramp(100))
    ds = folder(tmp_path / "data", tmp_path / "cache")
    batch = ds.sample_batch(4, 256, np.random.default_rng(0), train=True)
    assert batch.audio.shape == (4, 1, 256)
    assert batch.offset.tolist() == [0] * 4
    assert batch.total_length.tolist() == [100] * 4
    for b in range(4):
        np.testing.assert_array_equal(ramp_index(batch.audio[b, 0, :100].numpy(), 100), np.arange(100))
        assert np.all(batch.audio[b, 0, 100:].numpy() == 0)


def test_same_seed_same_batch(music_dir, tmp_path):
    ds = folder(music_dir, tmp_path / "cache")
    a = ds.sample_batch(6, 1024, np.random.default_rng(42))
    b = ds.sample_batch(6, 1024, np.random.default_rng(42))
    c = ds.sample_batch(6, 1024, np.random.default_rng(43))
    assert a.audio.equal(b.audio) and a.file_index.equal(b.file_index) and a.offset.equal(b.offset)
    assert a.total_length.equal(b.total_length)
    assert not (a.offset.equal(c.offset) and a.audio.equal(c.audio))
    # A second folder object on the same cache gives the same batch too.
    d = folder(music_dir, tmp_path / "cache").sample_batch(6, 1024, np.random.default_rng(42))
    assert a.audio.equal(d.audio) and a.offset.equal(d.offset)


def test_files_are_drawn_in_proportion_to_their_length(tmp_path):
    write(tmp_path / "data" / "short.wav", np.full(1000, 0.25))
    write(tmp_path / "data" / "long.wav", np.full(3000, -0.25))
    ds = folder(tmp_path / "data", tmp_path / "cache")
    batch = ds.sample_batch(4000, 8, np.random.default_rng(0), train=False)
    long_index = [f.path for f in ds.files].index("long.wav")
    share = float((batch.file_index == long_index).float().mean())
    assert share == pytest.approx(0.75, abs=0.03)
    # and each crop holds its own file's value
    expected = np.where(batch.file_index.numpy() == long_index, -0.25, 0.25)
    np.testing.assert_array_equal(batch.audio[:, 0, 0].numpy(), expected)


def test_windows_are_inside_their_files_and_do_not_overlap(ramp_dir, tmp_path):
    ds = folder(ramp_dir, tmp_path / "cache")
    length = 400
    windows = ds.windows(length, max_per_file=3)
    for i, f in enumerate(ds.files):
        starts = sorted(s for j, s in windows if j == i)
        assert len(starts) == min(3, RAMP_LENGTHS[f.path] // length)
        assert all(0 <= s <= RAMP_LENGTHS[f.path] - length for s in starts)
        assert all(b - a >= length for a, b in zip(starts, starts[1:]))


# ----------------------------------------------------------------------------------------------- downmix


def test_downmix_with_generator_is_a_convex_combination():
    clip = np.stack([np.ones(100), np.zeros(100)]).astype(np.float32)  # L = 1, R = 0
    rng = np.random.default_rng(0)
    values = []
    for _ in range(400):
        out = downmix(clip, rng)
        assert out.shape == (1, 100)
        assert np.all(out == out[0, 0])  # one weight per channel, the same for every sample
        assert 0.0 <= out[0, 0] <= 1.0
        values.append(float(out[0, 0]))
    assert min(values) < 0.02 and max(values) > 0.98
    assert np.mean(values) == pytest.approx(0.5, abs=0.05)


def test_downmix_six_channels_weights_are_convex():
    rng = np.random.default_rng(1)
    for _ in range(50):
        weights = downmix(np.eye(6, dtype=np.float32), rng)[0]  # channel c is 1 only at sample c
        assert np.all(weights >= 0)
        assert weights.sum() == pytest.approx(1.0, abs=1e-6)


def test_downmix_without_generator_is_the_mean():
    clip = np.random.default_rng(2).uniform(-1, 1, (6, 50)).astype(np.float32)
    np.testing.assert_allclose(downmix(clip, None), clip.astype(np.float64).sum(0, keepdims=True) / 6, atol=1e-6)
    stereo = np.array([[0.5, -1.0], [0.25, 1.0]], np.float32)
    np.testing.assert_allclose(downmix(stereo, None), [[0.375, 0.0]])


def test_downmix_mono_is_unchanged():
    clip = np.random.default_rng(3).uniform(-1, 1, (1, 30)).astype(np.float32)
    np.testing.assert_array_equal(downmix(clip, np.random.default_rng(0)), clip)
    np.testing.assert_array_equal(downmix(clip, None), clip)


def test_training_batches_mix_stereo_randomly_and_evaluation_averages(tmp_path):
    write(tmp_path / "data" / "lr.wav", np.stack([np.full(800, 0.5), np.full(800, -0.5)]))
    ds = folder(tmp_path / "data", tmp_path / "cache")
    evaluation = ds.sample_batch(8, 64, np.random.default_rng(0), train=False)
    assert np.all(evaluation.audio.numpy() == 0)
    training = ds.sample_batch(64, 64, np.random.default_rng(0), train=True).audio.numpy()[:, 0]
    assert np.all(training == training[:, :1])  # each crop: one constant mix
    assert np.all(np.abs(training) <= 0.5)
    assert training.std() > 0.1  # the mix differs between crops


# ----------------------------------------------------------------------------------------------- cache


def test_index_cache_is_reused_without_decoding(music_dir, tmp_path, monkeypatch):
    first = folder(music_dir, tmp_path / "cache")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file that is already cached")

    monkeypatch.setattr(dataset_module, "load_audio", no_decoding)
    second = folder(music_dir, tmp_path / "cache")
    assert [f.path for f in second.files] == [f.path for f in first.files]
    assert second.lengths.tolist() == first.lengths.tolist()
    np.testing.assert_array_equal(second.crop(2, 1000, 500), first.crop(2, 1000, 500))


def test_cache_decodes_only_new_or_changed_files(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write(data / "a.wav", np.full(300, 0.1))
    write(data / "b.wav", np.full(400, 0.2))
    folder(data, tmp_path / "cache")

    decoded = []
    real_load = dataset_module.load_audio

    def counting_load(path, *args, **kwargs):
        decoded.append(Path(path).name)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(dataset_module, "load_audio", counting_load)
    write(data / "c.wav", np.full(500, 0.3))
    write(data / "b.wav", np.full(700, -0.2))  # rewritten: new size
    ds = folder(data, tmp_path / "cache")
    assert sorted(decoded) == ["b.wav", "c.wav"]
    lengths = dict(zip((f.path for f in ds.files), ds.lengths.tolist()))
    assert lengths == {"a.wav": 300, "b.wav": 700, "c.wav": 500}
    assert np.all(ds.crop([f.path for f in ds.files].index("b.wav"), 0, 700) == np.float32(np.float16(-0.2)))


def test_two_folders_sharing_a_cache_keep_each_others_entries(tmp_path, monkeypatch):
    """A VQ-VAE run caches its training and evaluation folders in one place: indexing one must not make the other
    decode everything again."""
    write(tmp_path / "train" / "a.wav", np.full(300, 0.1))
    write(tmp_path / "heldout" / "b.wav", np.full(400, 0.2))
    folder(tmp_path / "train", tmp_path / "cache")
    folder(tmp_path / "heldout", tmp_path / "cache")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file that is already cached")

    monkeypatch.setattr(dataset_module, "load_audio", no_decoding)
    assert folder(tmp_path / "train", tmp_path / "cache").lengths.tolist() == [300]
    assert folder(tmp_path / "heldout", tmp_path / "cache").lengths.tolist() == [400]


def test_cache_is_per_sample_rate(tmp_path):
    write(tmp_path / "data" / "a.wav", np.zeros(8000), rate=8000)
    low = AudioFolder(tmp_path / "data", 8000, tmp_path / "cache")
    high = AudioFolder(tmp_path / "data", 16000, tmp_path / "cache")
    assert low.lengths.tolist() == [8000]
    assert abs(int(high.lengths[0]) - 16000) <= 1


def test_a_corrupt_index_is_rebuilt(music_dir, tmp_path):
    folder(music_dir, tmp_path / "cache")
    (index,) = (tmp_path / "cache").rglob("index.json")
    index.write_text("{ not json")
    ds = folder(music_dir, tmp_path / "cache")
    assert len(ds) == 4


# ----------------------------------------------------------------------------------------------- bad folders


def write_bad_files(data: Path) -> list[str]:
    (data / "notes.wav").write_text("not audio at all\n" * 10)
    (data / "empty.ogg").write_bytes(b"")
    full = data / "full.flac"
    sf.write(full, np.random.default_rng(0).uniform(-0.5, 0.5, (22050, 2)), 22050, format="FLAC")
    raw = full.read_bytes()
    full.unlink()
    (data / "cut.flac").write_bytes(raw[: len(raw) // 2])
    nan = np.zeros(100, np.float32)
    nan[5] = np.nan
    write(data / "nan.wav", nan)
    return ["notes.wav", "empty.ogg", "cut.flac", "nan.wav"]


def test_unreadable_files_are_skipped_with_one_warning(tmp_path):
    data = tmp_path / "data"
    write(data / "good1.wav", np.full(300, 0.1))
    write(data / "deep" / "good2.wav", np.full(300, 0.2))
    bad = write_bad_files(data)
    (data / "readme.txt").write_text("not an audio extension: ignored silently")

    for attempt in range(2):  # the second time from the cache: still reported, still once
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = AudioFolder(data, RATE, tmp_path / "cache")
        assert sorted(f.path for f in ds.files) == sorted(["good1.wav", os.path.join("deep", "good2.wav")])
        assert len(caught) == 1, [str(w.message) for w in caught]
        message = str(caught[0].message)
        assert "4 unreadable" in message
        for name in bad:
            assert name in message
        assert "good1" not in message and "readme" not in message


@pytest.mark.parametrize("content", ["nothing", "text-only", "unreadable-only"])
def test_folder_without_usable_audio_raises(tmp_path, content):
    data = tmp_path / "data"
    data.mkdir()
    if content == "text-only":
        (data / "notes.txt").write_text("hello")
        (data / "sub").mkdir()
    if content == "unreadable-only":
        write_bad_files(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError) as info:
            AudioFolder(data, RATE, tmp_path / "cache")
    assert str(data) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_folder_or_a_file_raises(tmp_path):
    with pytest.raises(DataError, match="no such"):
        AudioFolder(tmp_path / "absent", RATE, tmp_path / "cache")
    write(tmp_path / "a.wav", np.zeros(10))
    with pytest.raises(DataError, match="is a file"):
        AudioFolder(tmp_path / "a.wav", RATE, tmp_path / "cache")


def test_unwritable_cache_raises_data_error(tmp_path):
    write(tmp_path / "data" / "a.wav", np.zeros(100))
    (tmp_path / "cache").write_text("a file where the cache folder should go")
    with pytest.raises(DataError) as info:
        AudioFolder(tmp_path / "data", RATE, tmp_path / "cache")
    assert "cache" in str(info.value)
