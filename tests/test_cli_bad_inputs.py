"""The `openjukebox vqvae` commands against bad inputs a user can give, run as a user runs them.

A failure must exit non-zero with exactly one `openjukebox: error: ...` line on stderr (no traceback) and leave
nothing behind in the output folder; the inputs that must work (silence, very short clips, any sample rate or
channel count) must encode and decode to audio of the input's length.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_runner import CliResult, run_cli

MODEL_RATE = 16000  # the tiny preset's sample rate
HOPS = (8, 32, 128)  # every preset's hop lengths, levels 0..2 (docs/architecture.md: Contracts)


def dot_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")] if folder.is_dir() else []


def assert_fails(result: CliResult, out_dir: Path | None = None, mentions: str = "") -> str:
    """A clean failure: non-zero exit, one error line, no traceback, nothing left in `out_dir`."""
    stderr = result.stderr
    assert result.returncode != 0, f"expected a failure, got exit 0\nstdout: {result.stdout}\nstderr: {stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("openjukebox: error: ")]
    assert len(errors) == 1, stderr
    others = [line for line in lines if line not in errors and not line.startswith("openjukebox: warning: ")]
    assert others == [], stderr
    assert mentions in errors[0], errors[0]
    assert "wrote" not in result.stdout
    if out_dir is not None:
        assert list(out_dir.iterdir()) == [], f"left behind: {list(out_dir.iterdir())}"
    return errors[0]


def assert_succeeds(result: CliResult, out_dir: Path | None = None) -> None:
    assert result.returncode == 0, f"stdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr and "openjukebox: error" not in result.stderr, result.stderr
    if out_dir is not None:
        assert dot_files(out_dir) == []


def write_wav(path: Path, frames_by_channels: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(frames_by_channels, np.float32), rate, subtype="FLOAT")
    return path


def put(path: Path, content: bytes | str | None) -> Path:
    """Create `path` holding `content` (a folder when None) and return it."""
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def tone(rate: int, frames: int, channels: int) -> np.ndarray:
    t = np.arange(frames) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)], 1)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def codebook_size(tiny_run) -> int:
    return json.loads((tiny_run / "config.json").read_text())["codebook_size"]


@pytest.fixture(scope="module")
def good_clip(tmp_path_factory) -> Path:
    return write_wav(tmp_path_factory.mktemp("clip") / "clip.wav", tone(MODEL_RATE, MODEL_RATE // 2, 1), MODEL_RATE)


@pytest.fixture(scope="module")
def good_codes(tmp_path_factory, tiny_run, good_clip) -> Path:
    """A valid codes file of one 0.5-second clip, made by the tiny run's model."""
    from openjukebox.vqvae.loading import load_vqvae
    from openjukebox.vqvae.transcode import encode_audio_files

    model, _ = load_vqvae(tiny_run, "cpu")
    path = tmp_path_factory.mktemp("codes") / "good.npz"
    encode_audio_files(model, [good_clip], path)
    return path


# ----------------------------------------------------------------------------------------------- encode


def truncated(path: Path, fmt: str, subtype: str, keep: float) -> Path:
    full = path.with_name("whole" + path.suffix)
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (3 * 22050, 2))
    sf.write(full, data, 22050, format=fmt, subtype=subtype)
    raw = full.read_bytes()
    full.unlink()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def with_bad_sample(path: Path, value: float) -> Path:
    data = tone(MODEL_RATE, 4000, 2)
    data[1234, 1] = value
    return write_wav(path, data, MODEL_RATE)


BAD_AUDIO = {
    "missing": lambda d: [d / "nowhere.wav"],
    "empty": lambda d: [put(d / "empty.wav", b"")],
    "text": lambda d: [put(d / "lyrics.wav", "la la la\n" * 100)],
    "random-bytes": lambda d: [put(d / "noise.wav", np.random.default_rng(1).bytes(9000))],
    "truncated-flac": lambda d: [truncated(d / "cut.flac", "FLAC", "PCM_16", 0.5)],
    "truncated-ogg": lambda d: [truncated(d / "cut.ogg", "OGG", "VORBIS", 0.5)],
    "directory-without-audio": lambda d: [put(d / "folder", None)],
    "nan": lambda d: [with_bad_sample(d / "nan.wav", np.nan)],
    "inf": lambda d: [with_bad_sample(d / "inf.wav", np.inf)],
    "too-short-to-resample": lambda d: [write_wav(d / "blip.wav", np.full((2, 1), 0.3), 96000)],
    # every input is checked before anything is written: a good file then a bad one writes nothing
    "good-then-bad": lambda d: [write_wav(d / "good.wav", tone(MODEL_RATE, 3000, 1), MODEL_RATE),
                                put(d / "bad.wav", "nope")],
}


@pytest.mark.parametrize("case", list(BAD_AUDIO))
def test_encode_refuses_bad_audio(tmp_path, out_dir, tiny_run, case):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    paths = BAD_AUDIO[case](inputs)
    result = run_cli("vqvae", "encode", *paths, "--model", tiny_run, "--out", out_dir / "codes.npz", "--device", "cpu")
    error = assert_fails(result, out_dir)
    assert str(paths[-1]) in error


# (name, sample rate, frames, channels, signal) of inputs that must encode and decode
GOOD_AUDIO = [
    ("silence", MODEL_RATE, MODEL_RATE, 2, "zeros"),
    ("shorter-than-a-window", MODEL_RATE, 50, 1, "tone"),
    ("one-sample", MODEL_RATE, 1, 1, "tone"),
    ("not-a-multiple-of-the-top-hop", MODEL_RATE, 128 * 7 + 3, 1, "tone"),
    ("8kHz-mono", 8000, 4000, 1, "tone"),
    ("96kHz-stereo", 96000, 24000, 2, "tone"),
    ("44.1kHz-6-channels", 44100, 13230, 6, "tone"),
    ("22.05kHz-stereo", 22050, 11025, 2, "tone"),
]


@pytest.mark.parametrize("name,rate,frames,channels,signal", GOOD_AUDIO, ids=[g[0] for g in GOOD_AUDIO])
def test_encode_and_decode_unusual_audio(tmp_path, out_dir, tiny_run, codebook_size, name, rate, frames, channels,
                                         signal):
    data = np.zeros((frames, channels)) if signal == "zeros" else tone(rate, frames, channels)
    clip = write_wav(tmp_path / "in" / f"{name}.wav", data, rate)
    codes_path = out_dir / "codes.npz"
    assert_succeeds(run_cli("vqvae", "encode", clip, "--model", tiny_run, "--out", codes_path, "--device", "cpu"),
                    out_dir)

    expected = frames * MODEL_RATE / rate  # the clip's length at the model's rate
    with np.load(codes_path) as npz:
        metadata = json.loads(str(npz["metadata"]))
        length = metadata["clips"][0]["length"]
        assert abs(length - expected) <= 1
        for level, hop in enumerate(HOPS):
            codes = npz[f"level_{level}"]
            assert codes.shape == (1, math.ceil(length / hop))
            assert codes.min() >= 0 and codes.max() < codebook_size

    level = {"silence": 0, "8kHz-mono": 1}.get(name, 2)
    audio_path = out_dir / "decoded.wav"
    assert_succeeds(run_cli("vqvae", "decode", codes_path, "--model", tiny_run, "--level", level, "--out", audio_path,
                            "--device", "cpu"), out_dir)
    decoded, decoded_rate = sf.read(audio_path, always_2d=True)
    assert decoded_rate == MODEL_RATE
    assert decoded.shape == (length, 1)
    assert np.isfinite(decoded).all()
    assert sorted(p.name for p in out_dir.iterdir()) == ["codes.npz", "decoded.wav"]


def test_encode_several_files_then_decode_each(tmp_path, out_dir, tiny_run):
    lengths = {"a.wav": (8000, 3000, 1), "b.wav": (MODEL_RATE, 777, 2)}
    clips = [write_wav(tmp_path / "in" / n, tone(r, f, c), r) for n, (r, f, c) in lengths.items()]
    assert_succeeds(run_cli("vqvae", "encode", *clips, "--model", tiny_run, "--out", out_dir / "codes.npz",
                            "--device", "cpu"), out_dir)
    assert_succeeds(run_cli("vqvae", "decode", out_dir / "codes.npz", "--model", tiny_run, "--level", 0,
                            "--out", out_dir / "song.flac", "--device", "cpu"), out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == ["codes.npz", "song-0.flac", "song-1.flac"]
    assert abs(sf.info(out_dir / "song-0.flac").frames - 6000) <= 1  # 3000 samples at 8 kHz
    assert sf.info(out_dir / "song-1.flac").frames == 777


def test_encode_offset_and_duration(tmp_path, out_dir, tiny_run):
    clip = write_wav(tmp_path / "in.wav", tone(MODEL_RATE, MODEL_RATE, 1), MODEL_RATE)
    assert_succeeds(run_cli("vqvae", "encode", clip, "--model", tiny_run, "--out", out_dir / "c.npz",
                            "--offset", "0.25", "--duration", "0.5", "--device", "cpu"), out_dir)
    with np.load(out_dir / "c.npz") as npz:
        clip_meta = json.loads(str(npz["metadata"]))["clips"][0]
    assert clip_meta["length"] == MODEL_RATE // 2
    assert clip_meta["offset"] == pytest.approx(0.25)
    assert_fails(run_cli("vqvae", "encode", clip, "--model", tiny_run, "--out", out_dir / "d.npz",
                         "--offset", "2", "--device", "cpu"), mentions="--offset")
    assert sorted(p.name for p in out_dir.iterdir()) == ["c.npz"]


@pytest.mark.parametrize("target", ["existing-directory", "under-a-file", "wrong-extension"])
def test_encode_refuses_bad_out(tmp_path, out_dir, tiny_run, good_clip, target):
    if target == "existing-directory":
        out = out_dir / "codes.npz"
        out.mkdir()
    elif target == "under-a-file":
        (out_dir / "file").write_text("keep me")
        out = out_dir / "file" / "codes.npz"
    else:
        out = out_dir / "codes.txt"
    before = {p.name for p in out_dir.iterdir()}
    assert_fails(run_cli("vqvae", "encode", good_clip, "--model", tiny_run, "--out", out, "--device", "cpu"))
    assert {p.name for p in out_dir.iterdir()} == before
    assert dot_files(out_dir) == []
    if target == "under-a-file":
        assert (out_dir / "file").read_text() == "keep me"


# ----------------------------------------------------------------------------------------------- decode


def rewrite_codes(src: Path, dst: Path, metadata=None, **levels) -> Path:
    with np.load(src) as npz:
        arrays = dict(npz)
    meta = json.loads(str(arrays["metadata"]))
    if metadata:
        metadata(meta)
    arrays["metadata"] = np.array(json.dumps(meta))
    for name, change in levels.items():
        arrays[name] = change(arrays[name].copy())
    np.savez(dst, **arrays)
    return dst


def save_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def set_value(index: int, value):
    def change(a):
        a[0, index] = value
        return a
    return change


BAD_CODES = {
    "missing": (lambda src, d, k: d / "nowhere.npz", "no such"),
    "empty-file": (lambda src, d, k: put(d / "e.npz", b""), ""),
    "random-bytes": (lambda src, d, k: put(d / "r.npz", np.random.default_rng(2).bytes(4000)), ""),
    "text": (lambda src, d, k: put(d / "t.npz", "level_0: 1 2 3"), ""),
    "truncated": (lambda src, d, k: put(d / "cut.npz", src.read_bytes()[:300]), ""),
    "pickled-array": (lambda src, d, k: save_npz(d / "p.npz", metadata=np.array([{"x": 1}], dtype=object),
                                                 level_0=np.zeros((1, 3), np.int64)), ""),
    "other-model-fingerprint": (lambda src, d, k: rewrite_codes(src, d / "fp.npz",
                                                                lambda m: m.update(fingerprint="0123456789abcdef")),
                                "another model"),
    "other-codebook-size": (lambda src, d, k: rewrite_codes(src, d / "cb.npz", lambda m: m.update(codebook_size=2 * k)),
                            "codebook"),
    "other-format-version": (lambda src, d, k: rewrite_codes(src, d / "fv.npz", lambda m: m.update(format_version=2)),
                             "format"),
    "code-equal-to-codebook-size": (lambda src, d, k: rewrite_codes(src, d / "hi.npz", level_0=set_value(3, k)),
                                    "outside"),
    "huge-code": (lambda src, d, k: rewrite_codes(src, d / "huge.npz", level_1=set_value(0, 2 ** 40)), "outside"),
    "negative-code": (lambda src, d, k: rewrite_codes(src, d / "neg.npz", level_0=set_value(5, -7)), "outside"),
    "padding-inside-the-clip": (lambda src, d, k: rewrite_codes(src, d / "pad.npz", level_0=set_value(5, -1)),
                                "outside"),
    "length-beyond-the-codes": (lambda src, d, k: rewrite_codes(src, d / "long.npz", lambda m: m["clips"][0].update(
        length=m["clips"][0]["length"] * 4)), "needs"),
    "zero-length": (lambda src, d, k: rewrite_codes(src, d / "zero.npz", lambda m: m["clips"][0].update(length=0)),
                    "length"),
    "text-length": (lambda src, d, k: rewrite_codes(src, d / "tl.npz", lambda m: m["clips"][0].update(length="8000")),
                    "length"),
    "zero-hop": (lambda src, d, k: rewrite_codes(src, d / "hop.npz", lambda m: m.update(hop_lengths=[0, 32, 128])),
                 "hop"),
    "float-codes": (lambda src, d, k: rewrite_codes(src, d / "f.npz", level_0=lambda a: a.astype(np.float32) + 0.5),
                    "integer"),
    "missing-level": (lambda src, d, k: rewrite_codes(src, d / "ml.npz", metadata=lambda m: m.update(
        hop_lengths=[8, 32, 128, 512])), ""),
}


@pytest.mark.parametrize("case", list(BAD_CODES))
def test_decode_refuses_bad_codes(tmp_path, out_dir, tiny_run, good_codes, codebook_size, case):
    make, reason = BAD_CODES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    codes = make(good_codes, inputs, codebook_size)
    result = run_cli("vqvae", "decode", codes, "--model", tiny_run, "--level", 0, "--out", out_dir / "x.wav",
                     "--device", "cpu")
    error = assert_fails(result, out_dir, mentions=reason)
    assert str(codes) in error


def test_codes_from_a_differently_trained_model(tmp_path, out_dir, music_dir, good_codes):
    """A second tiny model (same config, other seed, a few steps) refuses the first one's codes."""
    other = tmp_path / "other-run"
    assert_succeeds(run_cli("vqvae", "train", "--data", music_dir, "--out", other, "--preset", "tiny", "--steps", 2,
                            "--batch-size", 1, "--seed", 7))
    assert_fails(run_cli("vqvae", "decode", good_codes, "--model", other, "--level", 2, "--out", out_dir / "x.wav",
                         "--device", "cpu"), out_dir, mentions="another model")


@pytest.mark.parametrize("args,mentions", [
    (["--clip", "3"], "--clip"),
    (["--clip", "-1"], "--clip"),
    (["--level", "3"], "--level"),
    (["--out", "{out}/x.mp3"], ".wav or .flac"),
    (["--out", "{out}/x"], ".wav or .flac"),
])
def test_decode_refuses_bad_options(out_dir, tiny_run, good_codes, args, mentions):
    args = [a.replace("{out}", str(out_dir)) for a in args]
    defaults = {"--level": "0", "--out": str(out_dir / "x.wav")}
    for i in range(0, len(args), 2):
        defaults.pop(args[i], None)
    rest = [x for kv in defaults.items() for x in kv]
    assert_fails(run_cli("vqvae", "decode", good_codes, "--model", tiny_run, *rest, *args, "--device", "cpu"),
                 out_dir, mentions=mentions)


def test_decode_onto_an_existing_directory(out_dir, tiny_run, good_codes):
    (out_dir / "x.wav").mkdir()
    assert_fails(run_cli("vqvae", "decode", good_codes, "--model", tiny_run, "--level", 0, "--out", out_dir / "x.wav",
                         "--device", "cpu"), mentions="x.wav")
    assert [p.name for p in out_dir.iterdir()] == ["x.wav"] and list((out_dir / "x.wav").iterdir()) == []


def test_decode_overwrites_an_existing_file_completely(out_dir, tiny_run, good_codes):
    (out_dir / "x.wav").write_text("old")
    assert_succeeds(run_cli("vqvae", "decode", good_codes, "--model", tiny_run, "--level", 1, "--out",
                            out_dir / "x.wav", "--device", "cpu"), out_dir)
    assert sf.info(out_dir / "x.wav").frames == MODEL_RATE // 2
    assert [p.name for p in out_dir.iterdir()] == ["x.wav"]


# ----------------------------------------------------------------------------------------------- checkpoints


def latest(run: Path) -> Path:
    return run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()


def copy_run(tiny_run: Path, dst: Path) -> Path:
    shutil.copytree(tiny_run, dst)
    return dst


def truncate(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


BAD_MODELS = {
    "truncated-weights": (lambda r: truncate(latest(r) / "model.safetensors"), "model.safetensors"),
    "weights-cut-to-8-bytes": (lambda r: truncate(latest(r) / "model.safetensors", 8 / 180000), "model.safetensors"),
    "empty-weights": (lambda r: (latest(r) / "model.safetensors").write_bytes(b""), "model.safetensors"),
    "random-weights-file": (lambda r: (latest(r) / "model.safetensors").write_bytes(
        np.random.default_rng(3).bytes(5000)), "model.safetensors"),
    "no-weights": (lambda r: (latest(r) / "model.safetensors").unlink(), "model.safetensors"),
    "other-format-version": (lambda r: edit_json(latest(r) / "meta.json", format_version=99), "format"),
    "other-kind": (lambda r: edit_json(latest(r) / "meta.json", kind="prior"), "prior"),
    "corrupt-meta": (lambda r: (latest(r) / "meta.json").write_text("{\"format_version\": "), "meta.json"),
    "no-meta": (lambda r: (latest(r) / "meta.json").unlink(), ""),
    "config-from-a-newer-version": (lambda r: edit_json(latest(r) / "config.json", quantum_width=3), "quantum_width"),
    "config-that-does-not-fit": (lambda r: edit_json(latest(r) / "config.json", width=16), ""),
    "latest-points-nowhere": (lambda r: shutil.rmtree(latest(r)), "latest"),
    "no-checkpoint": (lambda r: shutil.rmtree(r / "checkpoints"), "no checkpoint"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_encode_refuses_bad_checkpoints(tmp_path, out_dir, tiny_run, good_clip, case):
    sabotage, reason = BAD_MODELS[case]
    run = copy_run(tiny_run, tmp_path / "run")
    sabotage(run)
    assert_fails(run_cli("vqvae", "encode", good_clip, "--model", run, "--out", out_dir / "c.npz", "--device", "cpu"),
                 out_dir, mentions=reason)


@pytest.mark.parametrize("model", ["missing", "a-file"])
def test_encode_refuses_a_model_path_that_is_not_a_run(tmp_path, out_dir, good_clip, model):
    path = tmp_path / "model"
    if model == "a-file":
        path.write_text("weights?")
    assert_fails(run_cli("vqvae", "encode", good_clip, "--model", path, "--out", out_dir / "c.npz", "--device", "cpu"),
                 out_dir, mentions=str(path))


class CreateMarker:
    """Unpickling this object calls open(marker, 'w'): a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def torch_payload(path: Path, marker: Path) -> None:
    torch.save({"optimizer": CreateMarker(marker), "step": 60, "rng": []}, path)


def pickle_payload(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump({"optimizer": CreateMarker(marker), "step": 60}, f)


@pytest.mark.parametrize("write_payload", [torch_payload, pickle_payload], ids=["torch-save", "plain-pickle"])
def test_resume_never_executes_a_pickle(tmp_path, tiny_run, music_dir, write_payload):
    # First prove the payload is live: loaded as a plain pickle it does create its marker.
    probe_marker = tmp_path / "probe-marker"
    write_payload(tmp_path / "probe.pt", probe_marker)
    if write_payload is torch_payload:
        torch.load(tmp_path / "probe.pt", weights_only=False)
    else:
        with open(tmp_path / "probe.pt", "rb") as f:
            pickle.load(f)
    assert probe_marker.exists()

    run = copy_run(tiny_run, tmp_path / "run")
    ckpt = latest(run)
    marker = tmp_path / "PWNED"
    write_payload(ckpt / "training_state.pt", marker)
    result = run_cli("vqvae", "train", "--data", music_dir, "--out", run, "--steps", 61, "--batch-size", 1)
    assert_fails(result, mentions="training_state.pt")
    assert not marker.exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted(
        p.name for p in (tiny_run / "checkpoints").iterdir())  # no new checkpoint, none removed
    assert dot_files(run / "checkpoints") == []


RESUME_SABOTAGE = {
    "truncated-training-state": (lambda r: truncate(latest(r) / "training_state.pt"), "training_state.pt"),
    "empty-training-state": (lambda r: (latest(r) / "training_state.pt").write_bytes(b""), "training_state.pt"),
    "truncated-weights": (lambda r: truncate(latest(r) / "model.safetensors"), "model.safetensors"),
    "other-format-version": (lambda r: edit_json(latest(r) / "meta.json", format_version=2), "format"),
}


@pytest.mark.parametrize("case", list(RESUME_SABOTAGE))
def test_resume_refuses_a_broken_checkpoint(tmp_path, tiny_run, music_dir, case):
    sabotage, reason = RESUME_SABOTAGE[case]
    run = copy_run(tiny_run, tmp_path / "run")
    ckpt = latest(run)
    sabotage(run)
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    result = run_cli("vqvae", "train", "--data", music_dir, "--out", run, "--steps", 61, "--batch-size", 1)
    assert_fails(result, mentions=reason)
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before  # the evidence is left as it was
    assert dot_files(run / "checkpoints") == []


# ----------------------------------------------------------------------------------------------- train / eval


def test_unknown_preset(tmp_path, music_dir):
    result = run_cli("vqvae", "train", "--data", music_dir, "--out", tmp_path / "run", "--preset", "enormous",
                     "--steps", 1)
    assert_fails(result, mentions="enormous")
    assert not (tmp_path / "run").exists()


def test_resume_with_another_preset(tmp_path, tiny_run, music_dir):
    run = copy_run(tiny_run, tmp_path / "run")
    assert_fails(run_cli("vqvae", "train", "--data", music_dir, "--out", run, "--preset", "small", "--steps", 61),
                 mentions="preset")


def test_train_out_is_an_existing_file(tmp_path, music_dir):
    out = tmp_path / "run"
    out.write_text("my notes")
    assert_fails(run_cli("vqvae", "train", "--data", music_dir, "--out", out, "--steps", 1), mentions=str(out))
    assert out.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("data", ["missing", "empty", "text-only", "a-file", "unreadable-only"])
def test_train_and_eval_refuse_folders_without_audio(tmp_path, tiny_run, data):
    folder = tmp_path / "data"
    if data == "a-file":
        write_wav(folder.with_suffix(".wav"), tone(MODEL_RATE, 100, 1), MODEL_RATE)
        folder = folder.with_suffix(".wav")
    elif data != "missing":
        folder.mkdir()
        if data == "text-only":
            (folder / "readme.txt").write_text("no music here")
        if data == "unreadable-only":
            (folder / "a.wav").write_text("not audio")
            (folder / "b.flac").write_bytes(b"")
    run = tmp_path / "run"
    assert_fails(run_cli("vqvae", "train", "--data", folder, "--out", run, "--steps", 1), mentions=str(folder))
    assert not (run / "checkpoints").exists()
    assert dot_files(run) == []
    cache = tmp_path / "cache"
    assert_fails(run_cli("vqvae", "eval", "--model", tiny_run, "--data", folder, "--cache", cache, "--device", "cpu"),
                 mentions=str(folder))
    assert dot_files(cache) == []


@pytest.mark.parametrize("option,value", [("--steps", "0"), ("--batch-size", "0"), ("--lr", "-1"), ("--lr", "nan"),
                                          ("--steps", "ten")])
def test_train_refuses_bad_numbers(tmp_path, music_dir, option, value):
    args = {"--steps": "1", "--batch-size": "1", option: value}
    result = run_cli("vqvae", "train", "--data", music_dir, "--out", tmp_path / "run",
                     *[x for kv in args.items() for x in kv])
    assert_fails(result, mentions=option)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_eval_survives_unusual_audio(tmp_path, tiny_run):
    data = tmp_path / "data"
    write_wav(data / "silence.wav", np.zeros((MODEL_RATE, 2)), MODEL_RATE)
    write_wav(data / "short.wav", tone(MODEL_RATE, 50, 1), MODEL_RATE)
    write_wav(data / "low.wav", tone(8000, 8000, 1), 8000)
    write_wav(data / "high.wav", tone(96000, 48000, 2), 96000)
    write_wav(data / "six.wav", tone(44100, 22050, 6), 44100)
    result = run_cli("vqvae", "eval", "--model", tiny_run, "--data", data, "--cache", tmp_path / "cache", "--json",
                     "--device", "cpu")
    assert_succeeds(result)
    report = json.loads(result.stdout)
    assert report["windows"] == 5  # every file is shorter than two windows: one each
    assert [e["hop_length"] for e in report["levels"]] == list(HOPS)
    assert all(math.isfinite(e["l2"]) for e in report["levels"])


def test_cuda_device_without_cuda(out_dir, tiny_run, good_clip):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_fails(run_cli("vqvae", "encode", good_clip, "--model", tiny_run, "--out", out_dir / "c.npz",
                         "--device", "cuda"), out_dir, mentions="CUDA")


def test_usage_mistakes_are_one_line(tmp_path):
    for args in (["vqvae"], ["vqvae", "decode"], ["vqvae", "encode", "x.wav"], ["nonsense"],
                 ["vqvae", "decode", "c.npz", "--model", "m", "--level", "7", "--out", "x.wav"]):
        result = run_cli(*args)
        assert result.returncode == 2
        assert_fails(result)
