"""openjukebox.audio: decoding every supported format, resampling, mixing down, saving, and refusing bad files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import openjukebox.audio as audio_module
from openjukebox.audio import audio_info, load_audio, resample, save_audio
from openjukebox.errors import AudioError, OpenJukeboxError

# Per channel a different sine frequency (all below 4 kHz, the Nyquist frequency of 8 kHz audio),
# so both the content and the channel order can be checked after a lossy codec. The sixth is low because
# Vorbis encodes the sixth channel of 5.1 audio as the band-limited LFE channel.
CHANNEL_FREQS = (300.0, 500.0, 700.0, 900.0, 1100.0, 110.0)
SECONDS = 0.5


def sines(rate: int, channels: int, seconds: float = SECONDS, amplitude: float = 0.4) -> np.ndarray:
    """(frames, channels) float32: channel c is a sine at CHANNEL_FREQS[c]."""
    t = np.arange(int(rate * seconds)) / rate
    waves = [amplitude * np.sin(2 * np.pi * CHANNEL_FREQS[c] * t) for c in range(channels)]
    return np.stack(waves, 1).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    """The frequency (Hz) of the largest FFT bin of a 1-D signal, refined to a fraction of a bin."""
    x = np.asarray(x, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1: k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c)  # parabolic interpolation of the peak
    return (k + shift) * rate / len(x)


def mp3_writable(tmp_path: Path) -> bool:
    try:
        sf.write(tmp_path / "probe.mp3", np.zeros((4410, 1), np.float32), 44100, format="MP3")
    except Exception:
        return False
    finally:
        (tmp_path / "probe.mp3").unlink(missing_ok=True)
    return True


# (extension, format, subtype, lossless)
FORMATS = [
    ("wav", "WAV", "PCM_16", True),
    ("flac", "FLAC", "PCM_24", True),
    ("ogg", "OGG", "VORBIS", False),
    ("mp3", "MP3", "MPEG_LAYER_III", False),
]


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("rate", [8000, 44100, 96000])
@pytest.mark.parametrize("ext,fmt,subtype,lossless", FORMATS, ids=[f[0] for f in FORMATS])
def test_load_formats_rates_channels(tmp_path, ext, fmt, subtype, lossless, rate, channels):
    if fmt == "MP3":
        if not mp3_writable(tmp_path):
            pytest.skip("this libsndfile cannot write MP3")
        if rate > 48000:
            pytest.skip("MPEG audio has no sample rate above 48 kHz")
        if channels > 2:
            pytest.skip("MPEG-1/2 audio holds at most two channels")
    data = sines(rate, channels)
    path = tmp_path / f"clip.{ext}"
    sf.write(path, data, rate, format=fmt, subtype=subtype)

    audio = load_audio(path)
    assert audio.dtype == np.float32
    assert audio.flags.c_contiguous
    assert audio.shape[0] == channels
    assert audio_info(path)[:2] == (rate, channels)
    if lossless:
        assert audio.shape[1] == len(data)
        assert audio_info(path)[2] == len(data)
        tolerance = 1 / 2 ** 15 if subtype == "PCM_16" else 1 / 2 ** 23
        np.testing.assert_allclose(audio, data.T, atol=tolerance)
    else:
        # Lossy codecs add encoder delay and padding: length within 0.1 s, and each channel still
        # carries its own tone.
        assert abs(audio.shape[1] - len(data)) < 0.1 * rate
        for c in range(channels):
            assert peak_frequency(audio[c], rate) == pytest.approx(CHANNEL_FREQS[c], abs=5.0)


@pytest.mark.parametrize("from_rate,to_rate", [(44100, 16000), (8000, 16000), (96000, 22050), (16000, 44100),
                                              (22050, 22050)])
def test_resample_keeps_frequency_and_length(from_rate, to_rate):
    n = int(from_rate * 0.75)
    t = np.arange(n) / from_rate
    x = np.stack([0.5 * np.sin(2 * np.pi * 1000.0 * t), 0.5 * np.sin(2 * np.pi * 1500.0 * t)]).astype(np.float32)

    y = resample(x, from_rate, to_rate)

    assert y.dtype == np.float32
    assert y.shape[0] == 2
    assert abs(y.shape[1] - n * to_rate / from_rate) <= 1
    assert peak_frequency(y[0], to_rate) == pytest.approx(1000.0, abs=2.0)
    assert peak_frequency(y[1], to_rate) == pytest.approx(1500.0, abs=2.0)
    # Away from the filter's edges, the resampled sine is the same sine sampled at the new rate.
    expected = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(y.shape[1]) / to_rate)
    middle = slice(y.shape[1] // 4, 3 * y.shape[1] // 4)
    lag = np.argmax([np.dot(y[0, middle], np.roll(expected, s)[middle]) for s in range(-5, 6)]) - 5
    np.testing.assert_allclose(y[0, middle], np.roll(expected, lag)[middle], atol=0.01)


def test_load_audio_resamples_to_the_requested_rate(tmp_path):
    rate, target = 44100, 16000
    data = sines(rate, 2, seconds=1.0)
    path = tmp_path / "clip.wav"
    sf.write(path, data, rate, subtype="FLOAT")

    audio = load_audio(path, sample_rate=target)

    assert audio.shape[0] == 2
    assert abs(audio.shape[1] - target) <= 1  # one second
    assert peak_frequency(audio[0], target) == pytest.approx(CHANNEL_FREQS[0], abs=2.0)
    assert peak_frequency(audio[1], target) == pytest.approx(CHANNEL_FREQS[1], abs=2.0)


def test_load_audio_at_its_own_rate_is_unchanged(tmp_path):
    data = np.random.default_rng(0).uniform(-1, 1, (1000, 2)).astype(np.float32)
    sf.write(tmp_path / "x.wav", data, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "x.wav", sample_rate=16000), data.T)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_mono_mixdown_is_the_channel_mean(tmp_path, channels):
    data = np.random.default_rng(channels).uniform(-1, 1, (2000, channels)).astype(np.float32)
    sf.write(tmp_path / "x.wav", data, 22050, subtype="FLOAT")

    mono = load_audio(tmp_path / "x.wav", mono=True)

    assert mono.shape == (1, 2000)
    expected = data.astype(np.float64).sum(axis=1) / channels
    np.testing.assert_allclose(mono[0], expected, atol=1e-6)


def test_mono_mixdown_after_resampling(tmp_path):
    # L and R in antiphase cancel exactly: the mono mix of the resampled clip is silence.
    t = np.arange(8000) / 8000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "x.wav", np.stack([left, -left], 1).astype(np.float32), 8000, subtype="FLOAT")
    mono = load_audio(tmp_path / "x.wav", sample_rate=16000, mono=True)
    assert mono.shape[0] == 1 and abs(mono.shape[1] - 16000) <= 1
    assert np.abs(mono).max() < 1e-6


# ----------------------------------------------------------------------------------------------- saving


def test_save_wav_keeps_values_beyond_full_scale(tmp_path):
    audio = np.array([[0.0, 0.5, -1.0, 1.0, 1.75, -2.5, 3.0e-8, 1.0000001]], dtype=np.float32)
    path = save_audio(tmp_path / "out.wav", audio, 16000)
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 16000
    np.testing.assert_array_equal(data.T, audio)
    assert sf.info(path).subtype == "FLOAT"
    np.testing.assert_array_equal(load_audio(path), audio)


def test_save_accepts_one_dimensional_audio_as_mono(tmp_path):
    audio = np.linspace(-0.5, 0.5, 100, dtype=np.float32)
    save_audio(tmp_path / "out.wav", audio, 8000)
    assert load_audio(tmp_path / "out.wav").shape == (1, 100)


def test_save_multichannel_round_trip(tmp_path):
    audio = sines(16000, 6).T
    save_audio(tmp_path / "out.wav", audio, 16000)
    np.testing.assert_array_equal(load_audio(tmp_path / "out.wav"), audio)


def test_save_flac_is_peak_limited_not_clipped(tmp_path):
    t = np.arange(4000) / 16000
    shape = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)])
    audio = (2.0 * shape).astype(np.float32)  # peak 2.0: clipping would flatten every crest
    path = save_audio(tmp_path / "out.flac", audio, 16000)

    data, rate = sf.read(path, dtype="float64", always_2d=True)
    assert rate == 16000
    assert sf.info(path).subtype == "PCM_24"
    back = data.T
    scale = 1.0 / np.abs(audio).max()
    assert np.abs(back).max() == pytest.approx(1.0, abs=1e-6)
    # The same waveform, only scaled: every sample is the original times one factor.
    np.testing.assert_allclose(back, audio * scale, atol=2e-6)
    # A clipped waveform would hold many samples at full scale; a scaled sine only its crests.
    assert (np.abs(back) > 0.999).mean() < 0.05


def test_save_flac_within_full_scale_is_not_scaled(tmp_path):
    audio = (0.3 * sines(16000, 2).T / 0.4).astype(np.float32)  # peak 0.3
    save_audio(tmp_path / "out.flac", audio, 16000)
    np.testing.assert_allclose(load_audio(tmp_path / "out.flac"), audio, atol=2 / 2 ** 23)


def test_save_overwrites_an_existing_file(tmp_path):
    save_audio(tmp_path / "out.wav", np.zeros((1, 10), np.float32), 16000)
    save_audio(tmp_path / "out.wav", np.full((1, 20), 0.25, np.float32), 16000)
    np.testing.assert_array_equal(load_audio(tmp_path / "out.wav"), np.full((1, 20), 0.25, np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


@pytest.mark.parametrize("name,audio,reason", [
    ("out.wav", np.array([[0.0, np.nan, 0.0]], np.float32), "NaN"),
    ("out.flac", np.array([[0.0, np.inf, 0.0]], np.float32), "NaN or infinite"),
    ("out.aiff", np.zeros((1, 100), np.float32), ".aiff"),
    ("out", np.zeros((1, 100), np.float32), "no extension"),
    ("out.wav", np.zeros((1, 2, 100), np.float32), "shape"),
])
def test_save_refuses_bad_audio_and_writes_nothing(tmp_path, name, audio, reason):
    with pytest.raises(AudioError) as info:
        save_audio(tmp_path / name, audio, 16000)
    message = str(info.value)
    assert str(tmp_path / name) in message and reason in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_save_failure_leaves_no_temporary_file_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.wav"
    save_audio(target, np.full((1, 50), 0.5, np.float32), 16000)
    before = target.read_bytes()
    real_write = sf.write

    def write_half_then_fail(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audio_module.sf, "write", write_half_then_fail)
    with pytest.raises(AudioError) as info:
        save_audio(target, np.full((1, 1000), -0.5, np.float32), 16000)
    assert str(target) in str(info.value) and "No space left" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
    assert target.read_bytes() == before


def test_save_onto_a_directory_fails_cleanly(tmp_path):
    (tmp_path / "out.wav").mkdir()
    with pytest.raises(AudioError) as info:
        save_audio(tmp_path / "out.wav", np.zeros((1, 100), np.float32), 16000)
    assert str(tmp_path / "out.wav") in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]
    assert list((tmp_path / "out.wav").iterdir()) == []


def test_save_into_a_folder_that_cannot_exist_fails_cleanly(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(AudioError) as info:
        save_audio(tmp_path / "file" / "out.wav", np.zeros((1, 100), np.float32), 16000)
    assert "out.wav" in str(info.value)


# ----------------------------------------------------------------------------------------------- bad files


def _wav_bytes(tmp_path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "FLOAT") -> Path:
    path = tmp_path / "source.wav"
    sf.write(path, data, rate, subtype=subtype)
    return path


def make_missing(tmp_path):
    return tmp_path / "nowhere.wav"


def make_directory(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    return tmp_path / "folder.wav"


def make_empty(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    return tmp_path / "empty.wav"


def make_text(tmp_path):
    (tmp_path / "notes.wav").write_text("these are my lyrics, not audio\n" * 20)
    return tmp_path / "notes.wav"


def make_random_bytes(tmp_path):
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(20000))
    return tmp_path / "noise.wav"


def make_pickle_named_wav(tmp_path):
    (tmp_path / "data.wav").write_bytes(pickle.dumps({"audio": list(range(100))}))
    return tmp_path / "data.wav"


def make_truncated_wav_header(tmp_path):
    source = _wav_bytes(tmp_path, sines(16000, 1))
    (tmp_path / "cut.wav").write_bytes(source.read_bytes()[:20])
    return tmp_path / "cut.wav"


def _truncated(tmp_path, ext, fmt, subtype, keep):
    data = np.random.default_rng(1).uniform(-0.5, 0.5, (3 * 22050, 2)).astype(np.float32)
    full = tmp_path / f"full.{ext}"
    sf.write(full, data, 22050, format=fmt, subtype=subtype)
    raw = full.read_bytes()
    full.unlink()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def make_truncated_flac(tmp_path):
    return _truncated(tmp_path, "flac", "FLAC", "PCM_16", 0.5)


def make_truncated_flac_header(tmp_path):
    return _truncated(tmp_path, "flac", "FLAC", "PCM_16", 0.001)


def make_truncated_ogg(tmp_path):
    return _truncated(tmp_path, "ogg", "OGG", "VORBIS", 0.5)


def make_truncated_ogg_last_bytes(tmp_path):
    return _truncated(tmp_path, "ogg", "OGG", "VORBIS", 0.999)


def make_truncated_ogg_header(tmp_path):
    return _truncated(tmp_path, "ogg", "OGG", "VORBIS", 0.02)


def make_nan(tmp_path):
    data = sines(16000, 2)
    data[100, 1] = np.nan
    return _wav_bytes(tmp_path, data)


def make_inf(tmp_path):
    data = sines(16000, 1)
    data[-1, 0] = -np.inf
    return _wav_bytes(tmp_path, data)


def make_no_frames(tmp_path):
    # A valid WAV header that announces zero frames: not an empty file, but no audio either.
    return _wav_bytes(tmp_path, np.zeros((0, 1), np.float32))


BAD_FILES = {
    "missing": (make_missing, "no such file"),
    "directory": (make_directory, "directory"),
    "empty": (make_empty, "empty"),
    "text": (make_text, "not a readable audio file"),
    "random-bytes": (make_random_bytes, "not a readable audio file"),
    "pickle": (make_pickle_named_wav, "not a readable audio file"),
    "truncated-wav-header": (make_truncated_wav_header, ""),
    "truncated-flac": (make_truncated_flac, ""),
    "truncated-flac-header": (make_truncated_flac_header, ""),
    "truncated-ogg": (make_truncated_ogg, "truncated"),
    "truncated-ogg-last-bytes": (make_truncated_ogg_last_bytes, "truncated"),
    "truncated-ogg-header": (make_truncated_ogg_header, ""),
    "nan": (make_nan, "NaN"),
    "inf": (make_inf, "infinite"),
    "no-frames": (make_no_frames, "no audio"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_load_refuses_bad_files(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    for kwargs in ({}, {"sample_rate": 16000, "mono": True}):
        with pytest.raises(AudioError) as info:
            load_audio(path, **kwargs)
        message = str(info.value)
        assert isinstance(info.value, OpenJukeboxError)
        assert message.startswith(f"{path}: ")
        assert reason in message
        assert "\n" not in message


# audio_info reads headers only: bad samples, and a FLAC cut after its header, show up when decoding.
@pytest.mark.parametrize("case", [c for c in BAD_FILES if c not in ("nan", "inf", "no-frames", "truncated-flac",
                                                                   "truncated-flac-header")])
def test_audio_info_refuses_bad_files(tmp_path, case):
    path = BAD_FILES[case][0](tmp_path)
    with pytest.raises(AudioError) as info:
        audio_info(path)
    assert str(path) in str(info.value)


def test_too_short_to_resample_is_refused(tmp_path):
    # Two samples at 96 kHz are a third of a sample at 16 kHz: nothing a model could use.
    sf.write(tmp_path / "blip.wav", np.full((2, 1), 0.3, np.float32), 96000)
    with pytest.raises(AudioError) as info:
        load_audio(tmp_path / "blip.wav", sample_rate=16000)
    assert str(tmp_path / "blip.wav") in str(info.value)
    assert load_audio(tmp_path / "blip.wav").shape == (1, 2)  # at its own rate it is fine


@pytest.mark.parametrize("ext,subtype,rate", [("ogg", "VORBIS", 44100), ("opus", "OPUS", 48000)])
@pytest.mark.parametrize("frames", [441, 44100, 3 * 44100 + 17])
def test_complete_ogg_files_load(tmp_path, ext, subtype, rate, frames):
    """The truncation check must never refuse a whole Ogg file, whatever its length."""
    data = np.random.default_rng(frames).uniform(-0.3, 0.3, (frames, 2)).astype(np.float32)
    path = tmp_path / f"whole.{ext}"
    sf.write(path, data, rate, format="OGG", subtype=subtype)
    audio = load_audio(path)
    assert audio.shape[0] == 2 and audio.shape[1] > 0
    assert audio_info(path)[:2] == (rate, 2)


def test_an_ogg_whose_bytes_mention_oggs_still_loads(tmp_path):
    # "OggS" inside the stream's comments must not confuse the page scan at the end of the file.
    data = sines(44100, 1, seconds=0.2)
    path = tmp_path / "tagged.ogg"
    with sf.SoundFile(path, "w", 44100, 1, format="OGG", subtype="VORBIS") as f:
        f.comment = "OggS" * 50
        f.write(data)
    assert load_audio(path).shape[0] == 1


def test_unreadable_permission_is_an_audio_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can read files without read permission")
    path = _wav_bytes(tmp_path, sines(16000, 1))
    path.chmod(0)
    try:
        with pytest.raises(AudioError):
            load_audio(path)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("suffix", [".ogg", ".mp3"])
def test_lossy_formats_for_listening_are_written_peak_limited(tmp_path, suffix):
    """OGG (Vorbis) and MP3 are written for listening; like FLAC they cannot hold samples beyond ±1, so a louder
    signal is scaled to its peak rather than clipped."""
    t = np.arange(16000) / 16000
    tone = (1.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    path = save_audio(tmp_path / f"tone{suffix}", tone, 16000)
    back = load_audio(path)
    assert abs(back.shape[1] - 16000) < 1600 and 0.8 < np.abs(back).max() <= 1.05
    spectrum = np.abs(np.fft.rfft(back[0, 2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 440) < 5  # still the tone
