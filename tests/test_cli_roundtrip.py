"""The VQ-VAE commands as a user runs them: encode → decode → eval."""

import json

import numpy as np
import soundfile as sf

from openjukebox.audio import load_audio
from openjukebox.codes import load_codes
from cli_runner import run_cli


cli = run_cli


def test_encode_decode_every_level_restores_length(tmp_path, tiny_run, music_dir):
    songs = sorted(music_dir.glob("*.wav"))[:2]
    codes_path = tmp_path / "codes.npz"
    result = cli("vqvae", "encode", *songs, "--model", tiny_run, "--out", codes_path, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    codes = load_codes(codes_path)
    n = load_audio(songs[0], sample_rate=16000).shape[1]  # 6 s at the tiny model's 16 kHz
    assert codes.clips[0].length == n == 96000
    assert [codes.codes(0, level).shape[0] for level in range(3)] == [n // 8, n // 32, n // 128]
    assert codes.sample_rate == 16000 and codes.hop_lengths == (8, 32, 128)
    assert codes.clips[0].source == str(songs[0]) and codes.clips[0].duration == 6.0
    for level in range(3):
        out = tmp_path / f"level{level}.wav"
        result = cli("vqvae", "decode", codes_path, "--model", tiny_run, "--level", level, "--clip", 0,
                     "--out", out, "--device", "cpu")
        assert result.returncode == 0, result.stderr
        audio, rate = sf.read(out)
        assert rate == 16000 and audio.shape == (n,)
        assert np.isfinite(audio).all()


def test_encode_offset_and_duration(tmp_path, tiny_run, music_dir):
    song = sorted(music_dir.glob("*.wav"))[0]
    out = tmp_path / "part.npz"
    result = cli("vqvae", "encode", song, "--model", tiny_run, "--out", out, "--offset", 1.0, "--duration", 2.0)
    assert result.returncode == 0, result.stderr
    clip = load_codes(out).clips[0]
    assert (clip.offset, clip.duration, clip.length) == (1.0, 2.0, 32000)


def test_eval_json_reports_every_level_and_the_step(tmp_path, tiny_run, music_dir):
    result = cli("vqvae", "eval", "--model", tiny_run, "--data", music_dir, "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["step"] == 60
    assert [e["level"] for e in report["levels"]] == [0, 1, 2]
    for entry in report["levels"]:
        assert 0 < entry["codebook_usage"] <= 1
        assert np.isfinite(entry["spectral_convergence_db"]) and entry["l2"] >= 0
    table = cli("vqvae", "eval", "--model", tiny_run, "--data", music_dir, "--device", "cpu")
    assert table.returncode == 0 and "spectral conv. dB" in table.stdout
