"""Fetching the released OpenAI Jukebox checkpoints into a local cache.

Sources, tried in order: the storage account that holds them (`openaipublic.blob.core.windows.net`), then the CDN
name the original code used (`openaipublic.azureedge.net`, retired by Azure in 2025; kept in case it answers
again). `$OPENJUKEBOX_DOWNLOAD_URL` replaces both with mirrors of one's own (several separated by spaces). Where
none answers, the Hugging Face Hub's copies in transformers' format (`openai/jukebox-1b-lyrics`,
`openai/jukebox-5b-lyrics`, with the artist, genre and lyrics vocabularies) are the last source
(`$OPENJUKEBOX_HF_URL` replaces the Hub's address).

The priors are gigabytes each, so an interrupted download keeps its `.part` file and the next call continues
it with an HTTP Range request; only a complete, checked file ever gets its final name. Standard library only,
so downloading works before (and without) the heavy dependencies.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError, DownloadError
from .fileio import fsync_dir, fsync_file
from .models import FILES, MODELS, cache_dir

BASE_URLS = ("https://openaipublic.blob.core.windows.net/jukebox/models/",
             "https://openaipublic.azureedge.net/jukebox/models/")
URL_ENV = "OPENJUKEBOX_DOWNLOAD_URL"  # mirrors, or a local server in tests
HF_URL = "https://huggingface.co/"
HF_URL_ENV = "OPENJUKEBOX_HF_URL"
HF_REPOS = {"1b_lyrics": "openai/jukebox-1b-lyrics", "5b_lyrics": "openai/jukebox-5b-lyrics"}
# The tokenizer's vocabularies (artist and genre ids, lyric characters): transformers saves them as three files,
# older copies as one vocab.json; whichever the repository has.
HF_VOCABULARIES = ("tokenizer_config.json", "artists.json", "genres.json", "lyrics.json", "vocab.json")
HF_WEIGHTS = ("model.safetensors.index.json", "pytorch_model.bin.index.json", "model.safetensors", "pytorch_model.bin")
CHUNK = 1 << 20
TIMEOUT = 60  # seconds without a byte before a connection counts as lost

Progress = Callable[[str, int, int | None], None]  # (file name, bytes done, total bytes or None), after each chunk


def base_urls() -> list[str]:
    """Where the files are looked for, in order."""
    given = os.environ.get(URL_ENV, "").split()
    return [url.rstrip("/") + "/" for url in (given or BASE_URLS)]


def model_files(name: str) -> tuple[str, ...]:
    """The file names that make up `name`: a released model, or a single file."""
    if name in MODELS:
        return MODELS[name]
    if name in FILES:
        return (name,)
    raise _unknown("model", name, [*MODELS, *FILES])


SOURCES = ("auto", "original", "hf")


def download_model(name: str, cache: str | os.PathLike | None = None, progress: Progress | None = None,
                   source: str = "auto") -> dict[str, Path]:
    """Fetch every file of `name` (see `model_files`); returns file name -> local path. `source`: "original" (the
    released .pth.tar files), "hf" (the Hugging Face Hub copy, transformers' format: 1b_lyrics and 5b_lyrics), or
    "auto": the original files, and the Hub copy where no source of theirs answers."""
    if source not in SOURCES:
        raise ConfigError(f"source (--source) must be one of {', '.join(SOURCES)}, not '{source}'")
    if source == "hf":
        folder = download_hf(name, cache, progress)
        return {path.name: path for path in sorted(folder.iterdir()) if not path.name.endswith(".part")}
    try:
        return {file: download_file(file, cache, progress) for file in model_files(name)}
    except SourcesUnreachable as original:
        if source == "original" or name not in HF_REPOS:
            raise
        try:
            return download_model(name, cache, progress, "hf")
        except SourcesUnreachable as hub:
            raise SourcesUnreachable(f"{original}; and the Hugging Face copy: {hub}") from None


def download_file(name: str, cache: str | os.PathLike | None = None, progress: Progress | None = None) -> Path:
    """Fetch one released file unless it is already cached, resuming a `.part` left by an earlier attempt.

    Raises SourcesUnreachable when no source answers (the `.part` is kept for the next attempt), DownloadError when
    the file arrives with the wrong size or digest (the `.part` is deleted).
    """
    if name not in FILES:
        raise _unknown("file", name, list(FILES))
    entry = FILES[name]
    dest = (Path(cache).expanduser().absolute() if cache is not None else cache_dir()) / entry.path
    return fetch([base + entry.path for base in base_urls()], dest, name, progress, entry.size, entry.sha256,
                 starts=CHECKPOINT_STARTS)


def download_hf(name: str, cache: str | os.PathLike | None = None, progress: Progress | None = None) -> Path:
    """Fetch the Hugging Face Hub copy of released model `name` (transformers' format: config.json, the tokenizer's
    vocabularies, the weights, sharded or not) into CACHE/hf/NAME; returns that folder."""
    if name not in HF_REPOS:
        raise _unknown("model on the Hugging Face Hub", name, list(HF_REPOS))
    folder = (Path(cache).expanduser().absolute() if cache is not None else cache_dir()) / "hf" / name
    base = os.environ.get(HF_URL_ENV, HF_URL).rstrip("/") + f"/{HF_REPOS[name]}/resolve/main/"
    fetch([base + "config.json"], folder / "config.json", "config.json", progress)
    for file in HF_VOCABULARIES:
        try:
            fetch([base + file], folder / file, file, progress)
        except SourcesUnreachable:
            continue  # not in this repository: another of the vocabulary files is
    failures = []
    for file in HF_WEIGHTS:  # the first layout the repository has
        try:
            path = fetch([base + file], folder / file, file, progress)
        except SourcesUnreachable as e:
            failures.append(str(e))
            continue
        if file.endswith(".index.json"):
            try:
                shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError):
                path.unlink()
                raise DownloadError(f"{base + file}: not a weights index (no weight_map); discarded it") from None
            for shard in shards:
                fetch([base + shard], folder / shard, shard, progress)
        return folder
    raise SourcesUnreachable(f"no weights found for {HF_REPOS[name]} ({'; '.join(failures)})")


# The first bytes of a torch checkpoint: a zip archive (torch ≥ 1.6) or a pickle (the legacy format). A mirror or
# a captive portal answering with an HTML page is refused instead of being kept as a checkpoint.
CHECKPOINT_STARTS = (b"PK\x03\x04", b"\x80")


def fetch(urls: list[str], dest: Path, name: str, progress: Progress | None = None, size: int | None = None,
          sha256: str | None = None, starts: tuple[bytes, ...] | None = None) -> Path:
    """`dest`, downloaded from the first of `urls` that answers unless it is already there (checked against
    `size` when known); resumes a `.part` left by an earlier attempt and renames it only when whole, and, with
    `starts`, only when it begins with one of those byte strings."""
    if dest.is_file():
        if size is not None and dest.stat().st_size != size:
            raise DownloadError(f"{dest}: {dest.stat().st_size} bytes, expected {size}; delete it to download it again")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    url, response, have = _first_source(urls, part, dest)
    with response:
        start, total = _offered_range(response, url, have, part)
        if size is not None and total is not None and total != size:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: the server offers {total} bytes, expected {size}; not downloaded")
        done, digest = _receive(response, part, start, total, name, url, progress)
    _check(part, done, total, digest, size, sha256, url)
    if starts is not None:
        with open(part, "rb") as f:
            head = f.read(16)
        if not head.startswith(starts):
            part.unlink()
            raise DownloadError(f"{url}: the server sent something other than a checkpoint (it begins "
                                f"{head[:12]!r}); discarded it")
    fsync_file(part)
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return dest


def _first_source(urls: list[str], part: Path, dest: Path) -> tuple[str, http.client.HTTPResponse, int]:
    """(url, response, bytes of `part` it continues) from the first source that answers; one error naming every
    source tried and where to put the file by hand when none does."""
    failures = []
    for url in urls:
        have = part.stat().st_size if part.is_file() else 0
        try:
            response = _open(url, have)
            if response is None:  # the server cannot continue this .part (already whole, or the file changed)
                part.unlink()
                have = 0
                response = _open(url, 0)
            return url, response, have
        except _Unreachable as e:
            failures.append(f"{url}: {e}")
    raise SourcesUnreachable(f"could not fetch {dest.name} ({'; '.join(failures)}); offline or all sources gone: "
                             f"download it elsewhere and save it as {dest}")


class SourcesUnreachable(DownloadError):
    """No source of a file answered (or each answered with an error); a `.part` is kept for the next attempt."""


class _Unreachable(Exception):
    """A source that did not answer, or answered with an error."""


def _unknown(kind: str, name: str, names: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown {kind} '{name}': choose one of {', '.join(names)}{hint}")


def _open(url: str, start: int) -> http.client.HTTPResponse | None:
    """The server's response from byte `start` on; None when it refuses that range (HTTP 416)."""
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and start:
            return None
        raise _Unreachable(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else e.reason
        raise _Unreachable(reason) from None
    except OSError as e:  # a timeout or reset before the headers arrived
        raise _Unreachable(e.strerror or e) from None


def _offered_range(response: http.client.HTTPResponse, url: str, have: int, part: Path) -> tuple[int, int | None]:
    """(first byte sent, whole file's size or None): a 206 continues the .part, a 200 starts it over."""
    if response.status != 206:
        length = response.headers.get("Content-Length")
        return 0, int(length) if length and length.isdigit() else None
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "").strip())
    if match is None or int(match[1]) != have:
        part.unlink()
        raise DownloadError(f"{url}: the server answered 'Range: bytes={have}-' with Content-Range "
                            f"'{response.headers.get('Content-Range')}'; discarded the partial download")
    return have, None if match[3] == "*" else int(match[3])


def _receive(response: http.client.HTTPResponse, part: Path, start: int, total: int | None, name: str, url: str,
             progress: Progress | None) -> tuple[int, str]:
    """Append the body to `part` from byte `start`; returns (bytes in `part`, sha256 of all of them)."""
    digest = hashlib.sha256()
    if start:
        with open(part, "rb") as f:
            while block := f.read(CHUNK):
                digest.update(block)
    done = start
    with open(part, "ab" if start else "wb") as f:
        try:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(name, done, total)
        except (OSError, http.client.HTTPException) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else (str(e) or type(e).__name__)
            raise DownloadError(f"{url}: connection lost after {done} bytes ({reason}); "
                                f"run the download again to resume from {part}") from None
    if total is not None and done < total:
        raise DownloadError(f"{url}: connection closed after {done} of {total} bytes; "
                            f"run the download again to resume from {part}")
    return done, digest.hexdigest()


def _check(part: Path, done: int, total: int | None, digest: str, size: int | None, sha256: str | None,
           url: str) -> None:
    """Delete `part` and refuse it unless its size and digest are the expected ones."""
    problem = None
    if total is not None and done != total:
        problem = f"{done} bytes arrived, the server announced {total}"
    elif size is not None and done != size:
        problem = f"{done} bytes arrived, expected {size}"
    elif sha256 is not None and digest != sha256.lower():
        problem = f"sha256 {digest}, expected {sha256}"
    if problem is not None:
        part.unlink()
        raise DownloadError(f"{url}: {problem}; discarded the download")
