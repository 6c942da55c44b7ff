"""Writing files so that a crash or a full disk never leaves a half-written one behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from .errors import ConfigError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success it is fsynced and renamed onto `path`.

    On any error the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


MAX_TEXT_BYTES = 16 * 2**20  # a user's text file (lyrics, configs, id tables): far more than any real one holds


def read_utf8(path: str | os.PathLike, what: str) -> str:
    """A user's UTF-8 text file (a byte-order mark dropped), or one line saying why it cannot be read; a file
    larger than MAX_TEXT_BYTES is refused before it is read, so that memory stays bounded."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_TEXT_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size / 2**20:.0f} MiB is too large for a {what} (at most "
                              f"{MAX_TEXT_BYTES // 2**20} MiB)")
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a {what}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: {what} is not UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                          "save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what} ({e.strerror})") from None


def new_output_dir(out: str | os.PathLike) -> Path:
    """`out` as a Path, refused when it holds anything: one writer per output folder, and nothing overwritten."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; choose a new --out")
    return out


@contextlib.contextmanager
def writer_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold `folder` as its one writer: a second process asking for it is refused in one line. The lock is the
    kernel's (flock on the folder itself), so it leaves no file behind and a process that dies releases it. A
    folder made for the lock is removed again if the work fails before writing anything into it."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        if fcntl is not None:  # POSIX; elsewhere there is no lock to take
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"{folder}: another openjukebox process is writing here; wait for it to finish "
                                  "or use another folder") from None
        yield
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise
    finally:
        os.close(fd)
