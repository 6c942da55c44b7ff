"""Audio in and out: the only module that touches soundfile and soxr.

Audio inside openjukebox is float32 in [-1, 1], shaped (channels, samples) for one clip and
(batch, channels, samples) for a batch.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError
from .fileio import atomic_path

# Largest possible Ogg page: 27-byte header, 255 lacing values, 255 segments of 255 bytes.
_MAX_OGG_PAGE = 27 + 255 + 255 * 255

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au"})


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) of a file without decoding it."""
    path = Path(path)
    _check_exists(path)
    _check_ogg_complete(path)
    try:
        with _quiet_native_stderr():
            info = sf.info(str(path))
    except Exception as e:  # soundfile raises several types for bad headers
        raise AudioError(f"{path}: not a readable audio file ({_reason(e)})") from None
    return int(info.samplerate), int(info.channels), int(info.frames)


def load_audio(path: str | os.PathLike, sample_rate: int | None = None, mono: bool = False) -> np.ndarray:
    """Decode a file to float32 (channels, samples), resampled to `sample_rate` when given.

    Non-finite samples and empty files are refused here so that no model ever sees them.
    """
    path = Path(path)
    _check_exists(path)
    _check_ogg_complete(path)
    _check_wav_complete(path)
    try:
        with _quiet_native_stderr():
            if sf.info(str(path)).samplerate < MIN_SAMPLE_RATE:
                raise AudioError(f"{path}: its header gives a sample rate of {sf.info(str(path)).samplerate} Hz, "
                                 f"below {MIN_SAMPLE_RATE} Hz: not audio (a damaged header?)")
            data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{path}: not a readable audio file ({_reason(e)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: the audio contains NaN or infinite samples")
    audio = data.T
    if sample_rate is not None and file_rate != sample_rate:
        audio = resample(audio, file_rate, sample_rate)
        if audio.shape[1] == 0:
            raise AudioError(f"{path}: too short: {data.shape[0]} sample(s) at {file_rate} Hz is less than one "
                             f"sample at {sample_rate} Hz")
    if mono:
        audio = audio.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(audio, dtype=np.float32)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample (channels, samples) with soxr's high-quality filter."""
    if from_rate == to_rate:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio.T), from_rate, to_rate, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


# What save_audio writes besides 32-bit float WAV: (libsndfile format, subtype).
SAVED_FORMATS = {".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS"), ".mp3": ("MP3", "MPEG_LAYER_III")}


def save_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write (channels, samples) or (samples,) audio as WAV (float), FLAC (24-bit), or, for listening, OGG (Vorbis)
    or MP3, atomically.

    WAV is written as 32-bit float so model output beyond [-1, 1] is kept rather than wrapped; the others
    cannot hold floats, so they are peak-limited to [-1, 1] first instead of silently clipping.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise AudioError(f"{path}: audio to save must be (channels, samples), got shape {tuple(audio.shape)}")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: refusing to save audio that contains NaN or infinite samples")
    suffix = path.suffix.lower()
    if suffix == ".wav":
        fmt, subtype = "WAV", "FLOAT"
    elif suffix in SAVED_FORMATS:
        fmt, subtype = SAVED_FORMATS[suffix]
        peak = float(np.abs(audio).max(initial=0.0))
        if peak > 1.0:
            audio = audio / peak
    else:
        raise AudioError(f"{path}: can only save .wav, {', '.join(SAVED_FORMATS)}, not "
                         f"'{path.suffix or 'no extension'}'")
    try:
        with atomic_path(path) as tmp:
            sf.write(str(tmp), audio.T, sample_rate, format=fmt, subtype=subtype)
    except (OSError, sf.SoundFileError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else _reason(e)
        if "system error" in reason.lower():  # libsndfile's words for a failed write: say which failure
            folder = path.parent if path.parent.exists() else Path(".")
            reason = "the folder is not writable" if not os.access(folder, os.W_OK) else \
                "the disk is full" if shutil.disk_usage(folder).free < 1 << 20 else "the disk refused the write"
        raise AudioError(f"{path}: could not write the audio file ({reason})") from None
    return path


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty")


MIN_SAMPLE_RATE = 1000  # Hz: below this a file is not audio (a damaged header), and resampling it costs minutes


def _check_wav_complete(path: Path) -> None:
    """Refuse a WAV file cut short: libsndfile would decode what is there as a shorter clip. Its header says how
    many bytes of samples follow (the `data` chunk's size); fewer are in the file."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = f.seek(0, os.SEEK_END)
        f.seek(12)
        while (chunk := f.read(8)) and len(chunk) == 8:
            length = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                present = size - f.tell()
                if length != 0xFFFFFFFF and present < length:  # 0xFFFFFFFF: a streamed file of unknown length
                    raise AudioError(f"{path}: the WAV file is truncated: its header announces {length} bytes of "
                                     f"samples, {present} are present")
                return
            f.seek(length + (length & 1), os.SEEK_CUR)


def _check_ogg_complete(path: Path) -> None:
    """Refuse an Ogg file cut short: libsndfile would silently decode only its complete pages.

    A whole Ogg file ends exactly where its last page ends, and that page carries the end-of-stream flag.
    """
    with open(path, "rb") as f:
        if f.read(4) != b"OggS":
            return
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - _MAX_OGG_PAGE))
        tail = f.read()
    pos = len(tail)
    while (pos := tail.rfind(b"OggS", 0, pos)) >= 0:
        if pos + 27 <= len(tail):
            segments = tail[pos + 27:pos + 27 + tail[pos + 26]]
            if pos + 27 + len(segments) + sum(segments) == len(tail):
                if tail[pos + 5] & 0x04:  # end-of-stream flag
                    return
                break
    raise AudioError(f"{path}: the Ogg file is truncated (it ends before its end-of-stream page)")


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what libsndfile's decoders (mpg123 on a corrupt file) print straight to the process's stderr;
    the failure itself still arrives as an exception."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to protect
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()
    # libsndfile repeats the path ("Error opening 'x.wav': Format not recognised."): the message has it already
    return re.sub(r"^Error opening '.*': ", "", text[-1]) if text else type(e).__name__
