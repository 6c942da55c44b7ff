"""`openjukebox download` against a local server that behaves like the release bucket, and fails like one.

The server answers Range requests with 206 + Content-Range, and can be told to drop a connection mid-file,
ignore Range (a plain 200), or answer 404; the released files are stood in for by a few hundred KB of noise.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_cli_bad_inputs import assert_fails, assert_succeeds, run_cli

from openjukebox import download
from openjukebox.download import URL_ENV, download_file, download_model
from openjukebox.models import CACHE_ENV, FILES, ReleasedFile, cache_dir
from openjukebox.errors import ConfigError, DownloadError


class FakeBucket:
    """What the handler serves, the switches that make it misbehave, and the requests it saw."""

    def __init__(self) -> None:
        rng = random.Random(0)
        # Random bytes behind a zip archive's signature, as a torch checkpoint begins.
        self.files = {entry.path: b"PK\x03\x04" + rng.randbytes(200_000 + 1_000 * i)
                      for i, entry in enumerate(FILES.values())}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_at: dict[str, int] = {}  # path -> body bytes sent before dropping the connection, once
        self.ignore_range = False
        self.missing: set[str] = set()


def handler_for(bucket: FakeBucket) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.removeprefix("/models/")
            wanted = self.headers.get("Range")
            bucket.requests.append((path, wanted))
            data = bucket.files.get(path)
            if data is None or path in bucket.missing:
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
            if match and not bucket.ignore_range:
                start = int(match[1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = bucket.cut_at.pop(path, None)
            self.wfile.write(body if cut is None else body[:cut])

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def bucket(monkeypatch, tmp_path) -> FakeBucket:
    bucket = FakeBucket()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(bucket))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{httpd.server_address[1]}/models/")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    yield bucket
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def dead_url() -> str:
    """A base URL on a local port with nothing listening: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/models/"


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message, message
    return message


def test_full_download_lands_byte_identical_at_the_cache_paths(bucket, tmp_path):
    seen = []
    paths = download_model("5b", progress=lambda name, done, total: seen.append((name, done, total)))
    assert list(paths) == ["vqvae", "upsampler_level_0", "upsampler_level_1", "prior_5b"]
    for name, path in paths.items():
        assert path == tmp_path / "cache" / FILES[name].path
        assert path.read_bytes() == bucket.files[FILES[name].path]
    assert not list((tmp_path / "cache").rglob("*.part"))
    assert all(wanted is None for _, wanted in bucket.requests)
    size = len(bucket.files[FILES["prior_5b"].path])
    assert seen[-1] == ("prior_5b", size, size)

    requests = len(bucket.requests)
    assert download_model("5b_lyrics")["vqvae"] == paths["vqvae"]  # shared files are not fetched again
    assert bucket.requests[requests:] == [(FILES["prior_5b_lyrics"].path, None)]


def test_cut_connection_keeps_the_part_and_the_next_call_resumes_with_range(bucket, monkeypatch, tmp_path):
    path = FILES["vqvae"].path
    data = bucket.files[path]
    # With the size and digest known, the resumed file is checked as a whole, the kept prefix included.
    monkeypatch.setitem(FILES, "vqvae", ReleasedFile(path, len(data), hashlib.sha256(data).hexdigest()))
    bucket.cut_at[path] = 100_000
    with pytest.raises(DownloadError) as error:
        download_file("vqvae")
    assert "resume" in one_line(error)
    dest = tmp_path / "cache" / path
    part = dest.with_name(dest.name + ".part")
    assert not dest.exists() and part.stat().st_size == 100_000

    assert download_file("vqvae") == dest
    assert bucket.requests[-1] == (path, "bytes=100000-")
    assert dest.read_bytes() == data and not part.exists()


def test_a_server_that_ignores_range_restarts_the_file(bucket, tmp_path):
    dest = tmp_path / "cache" / FILES["vqvae"].path
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(b"stale bytes from another file")
    bucket.ignore_range = True
    download_file("vqvae")
    assert bucket.requests[-1][1] is not None
    assert dest.read_bytes() == bucket.files[FILES["vqvae"].path]


def test_a_part_the_server_cannot_continue_is_fetched_again(bucket, tmp_path):
    path = FILES["vqvae"].path
    dest = tmp_path / "cache" / path
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(b"x" * (len(bucket.files[path]) + 10))  # answered with 416
    download_file("vqvae")
    assert [wanted for _, wanted in bucket.requests] == [f"bytes={len(bucket.files[path]) + 10}-", None]
    assert dest.read_bytes() == bucket.files[path]


@pytest.mark.parametrize("wrong, says", [(dict(sha256="0" * 64), "sha256"), (dict(size=123), "expected 123")])
def test_wrong_digest_or_size_is_refused_and_leaves_nothing(bucket, monkeypatch, tmp_path, wrong, says):
    monkeypatch.setitem(FILES, "vqvae", ReleasedFile(FILES["vqvae"].path, **wrong))
    with pytest.raises(DownloadError) as error:
        download_file("vqvae")
    assert says in one_line(error)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_a_cached_file_of_the_wrong_size_is_refused(bucket, monkeypatch, tmp_path):
    dest = tmp_path / "cache" / FILES["vqvae"].path
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"short")
    monkeypatch.setitem(FILES, "vqvae", ReleasedFile(FILES["vqvae"].path, size=1000))
    with pytest.raises(DownloadError) as error:
        download_file("vqvae")
    assert str(dest) in one_line(error) and "expected 1000" in str(error.value)
    assert bucket.requests == []


def test_server_down_names_the_url_and_where_to_put_the_file(monkeypatch, tmp_path):
    url = dead_url()
    monkeypatch.setenv(URL_ENV, url)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    dest = tmp_path / "cache" / FILES["prior_1b_lyrics"].path
    dest.parent.mkdir(parents=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(b"kept for later")
    with pytest.raises(DownloadError) as error:
        download_model("1b_lyrics")
    message = one_line(error)
    assert f"{url}5b/vqvae.pth.tar" in message and str(tmp_path / "cache" / "5b" / "vqvae.pth.tar") in message
    assert "refused" in message.lower()
    with pytest.raises(DownloadError):
        download_file("prior_1b_lyrics")
    assert part.read_bytes() == b"kept for later"


def test_missing_file_on_the_server(bucket, tmp_path):
    bucket.missing.add(FILES["upsampler_level_1"].path)
    with pytest.raises(DownloadError) as error:
        download_file("upsampler_level_1")
    message = one_line(error)
    assert "HTTP 404" in message and "/models/5b/prior_level_1.pth.tar" in message
    assert str(tmp_path / "cache" / "5b" / "prior_level_1.pth.tar") in message


def test_unknown_names_list_the_valid_ones(bucket):
    with pytest.raises(ConfigError) as error:
        download_model("5b-lyrics")
    message = one_line(error)
    assert "did you mean '5b_lyrics'" in message and all(name in message for name in [*download.MODELS, *FILES])
    with pytest.raises(ConfigError, match="unknown file '5b'"):
        download_file("5b")
    assert bucket.requests == []


def test_default_cache_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "openjukebox"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "openjukebox"


def test_download_into_the_xdg_cache(bucket, monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download_file("upsampler_level_0") == tmp_path / "xdg" / "openjukebox" / "5b" / "prior_level_0.pth.tar"


def test_cli_prints_each_local_path(bucket, tmp_path):
    result = run_cli("download", "vqvae", "--cache", tmp_path / "mine")
    assert_succeeds(result)
    assert result.stdout.splitlines() == [str(tmp_path / "mine" / "5b" / "vqvae.pth.tar")]
    assert Path(result.stdout.strip()).read_bytes() == bucket.files["5b/vqvae.pth.tar"]


def test_cli_offline_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv(URL_ENV, dead_url())
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    line = assert_fails(run_cli("download", "5b"), mentions="could not fetch")
    assert str(tmp_path / "cache" / "5b" / "vqvae.pth.tar") in line
    assert_fails(run_cli("download", "1b-lyrics"), mentions="did you mean '1b_lyrics'")


def test_the_storage_account_comes_first_and_the_retired_cdn_name_stays_as_a_fallback(monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    assert download.base_urls() == ["https://openaipublic.blob.core.windows.net/jukebox/models/",
                                    "https://openaipublic.azureedge.net/jukebox/models/"]


def test_sources_are_tried_in_order_until_one_serves_the_file(bucket, monkeypatch, tmp_path):
    served = os.environ[URL_ENV]
    gone = served.replace("/models/", "/gone/")  # the same server answering 404 for every file there
    dead = dead_url()
    monkeypatch.setenv(URL_ENV, f"{dead} {gone} {served}")
    path = download_file("upsampler_level_0")
    assert path.read_bytes() == bucket.files["5b/prior_level_0.pth.tar"]
    monkeypatch.setenv(URL_ENV, f"{dead} {gone}")
    with pytest.raises(DownloadError) as error:
        download_file("upsampler_level_1")
    message = one_line(error)
    assert f"{dead}5b/prior_level_1.pth.tar: " in message and f"{gone}5b/prior_level_1.pth.tar: HTTP 404" in message
    assert str(tmp_path / "cache" / "5b" / "prior_level_1.pth.tar") in message


def test_the_hugging_face_copy_is_fetched_with_every_shard_its_index_names(bucket, monkeypatch, tmp_path):
    monkeypatch.setenv(download.HF_URL_ENV, os.environ[URL_ENV])
    repo = "openai/jukebox-1b-lyrics/resolve/main/"
    one, two = "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"
    index = {"weight_map": {"vqvae.a": one, "priors.0.b": two, "priors.1.c": two}}
    bucket.files = {repo + "config.json": b"{}", repo + "vocab.json": b'{"artist": {}}',
                    repo + "pytorch_model.bin.index.json": json.dumps(index).encode(),
                    repo + one: b"one" * 1000, repo + two: b"two" * 1000}
    folder = download.download_hf("1b_lyrics")
    assert folder == tmp_path / "cache" / "hf" / "1b_lyrics"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == \
        {k.removeprefix(repo): v for k, v in bucket.files.items()}
    requested = [path.removeprefix(repo) for path, _ in bucket.requests]
    assert requested[:8] == ["config.json", "tokenizer_config.json", "artists.json", "genres.json", "lyrics.json",
                             "vocab.json", "model.safetensors.index.json", "pytorch_model.bin.index.json"]
    with pytest.raises(ConfigError, match="unknown model on the Hugging Face Hub '5b'"):
        download.download_hf("5b")


def test_a_web_page_instead_of_a_checkpoint_is_not_kept(bucket, tmp_path):
    """A mirror or captive portal answering 200 with HTML: refused, nothing kept under the checkpoint's name."""
    bucket.files["5b/vqvae.pth.tar"] = b"<!DOCTYPE html><html>sign in</html>"
    with pytest.raises(DownloadError) as error:
        download_file("vqvae")
    assert "something other than a checkpoint" in one_line(error)
    assert not list((tmp_path / "cache" / "5b").glob("vqvae.pth.tar*"))
