"""`openjukebox studio`: co-composition in a web page, served on this machine.

A small HTTP server (the standard library's: no web framework to install, nothing fetched by the page) over one
`Composition`: the page (studio.html) shows the tree, a player and a waveform per candidate, and buttons that call
the JSON API below, one Python call each. Long work (extending, upsampling) runs in one background thread; the
page polls its progress. Every request's failure becomes a message in the page; the server never dies of one.

    GET  /                      the page
    GET  /api/state             model labels, the tree, the job in progress or its error
    POST /api/upload?name=F     an audio file to start from (the body), checked as audio
    POST /api/create            {artist, genres, lyrics, song_seconds, seed, prompt, prompt_seconds}
    POST /api/extend            {node, seconds, n, artist, genres, lyrics}   (node null: start the song)
    POST /api/pick              {node}
    POST /api/upsample          {node}
    POST /api/export            {node, format: "wav" | "flac" | "ogg" | "mp3"}
    GET  /files/PATH            a file of the composition folder (previews, the finished song)
"""

from __future__ import annotations

import json
import mimetypes
import tempfile
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from .audio import AUDIO_EXTENSIONS, load_audio
from .bundle import Bundle, load_bundle
from .compose import COMPOSITION, Composition
from .devices import resolve_device
from .errors import ConfigError, OpenJukeboxError
from .jukebox import find_model

PAGE = Path(__file__).parent / "studio.html"
MAX_UPLOAD = 200 * 2**20  # bytes


class Studio:
    """The state behind the page: the composition folder, the model, and the one job that may be running."""

    def __init__(self, folder: str | Path, model: str | None = None, device: str = "auto") -> None:
        self.folder = Path(folder)
        self.device = device
        self.composition: Composition | None = None
        if (self.folder / COMPOSITION).is_file():
            self.composition = Composition.open(self.folder, device)
            self.bundle: Bundle = self.composition.bundle
        else:
            if self.folder.exists() and any(self.folder.iterdir()):
                raise ConfigError(f"{self.folder}: neither a composition nor an empty folder")
            self.model = str(find_model(model))
            self.bundle = load_bundle(self.model, resolve_device(device))
        self.uploads = tempfile.TemporaryDirectory(prefix="openjukebox-studio-")
        self.lock = threading.Lock()
        self.job: dict[str, Any] = {"running": False, "what": "", "error": None}

    # ---- what the page reads -----------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        encoder = self.bundle.label_encoder
        top = self.bundle.priors.get(2)
        table = encoder.table
        model = {"artists": sorted(table.artists) if table else encoder.artists,
                 "genres": sorted(table.genres) if table else encoder.genres,
                 "lyrics": bool(top and top.config.n_tokens), "sample_rate": self.bundle.vqvae.config.sample_rate}
        nodes, chosen = [], None
        if self.composition is not None:
            c = self.composition
            chosen = c.state.chosen
            for node in c.state.nodes.values():
                finished = c.folder / "finished" / node.id / "sample-0-level0.wav"
                nodes.append({"id": node.id, "parent": node.parent, "seconds": node.seconds, "seed": node.seed,
                              "artist": node.artist, "genres": node.genres,
                              "preview": self._url(c.preview(node.id)),
                              "finished": self._url(finished) if finished.is_file() else None})
        job = dict(self.job)
        if job["running"] and job.get("run"):
            job["progress"] = _progress(Path(job["run"]))
        job.pop("run", None)
        return {"created": self.composition is not None, "model": model, "nodes": nodes, "chosen": chosen,
                "job": job}

    def _url(self, path: Path) -> str:
        return "/files/" + path.relative_to(self.folder).as_posix()

    # ---- what the page asks ------------------------------------------------------------------------------------

    def upload(self, name: str, data: bytes) -> dict[str, Any]:
        """An audio file to start from, kept in a temporary folder until the composition copies it in."""
        name = Path(name).name
        if Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
            raise ConfigError(f"{name}: not an audio file ({', '.join(sorted(AUDIO_EXTENSIONS))})")
        path = Path(self.uploads.name) / name
        path.write_bytes(data)
        try:
            audio = load_audio(path, sample_rate=self.bundle.vqvae.config.sample_rate)
        except OpenJukeboxError:
            path.unlink()
            raise
        return {"path": str(path), "seconds": audio.shape[1] / self.bundle.vqvae.config.sample_rate}

    def create(self, request: dict[str, Any]) -> None:
        if self.composition is not None:
            raise ConfigError(f"{self.folder}: the composition is already started")
        self.composition = Composition.create(
            self.folder, model=self.model, artist=request.get("artist") or None,
            genres=list(request.get("genres") or []), lyrics=request.get("lyrics") or "",
            song_seconds=_number(request.get("song_seconds"), "song length", allow_none=True),
            seed=int(_number(request.get("seed") or 0, "seed")), prompt=request.get("prompt") or None,
            prompt_seconds=_number(request.get("prompt_seconds") or 0, "prompt seconds"), device=self.device)

    def extend(self, request: dict[str, Any]) -> None:
        c = self._composition()
        node = request.get("node") or None
        seconds = _number(request.get("seconds"), "seconds")
        n = int(_number(request.get("n"), "candidates"))
        artist = request.get("artist") or None
        genres = request.get("genres") or None
        lyrics = request.get("lyrics") or None
        c.plan(node, seconds, n, artist, genres, lyrics)  # checked here, so that a mistake shows at once
        self._start(f"extending {node or 'the start'}",
                    lambda: c.extend(node, seconds, n, artist=artist, genres=genres, lyrics=lyrics, progress=False),
                    c.folder / "extensions" / f"e{len(c.state.extensions) + 1}")

    def pick(self, request: dict[str, Any]) -> None:
        self._composition().pick(str(request.get("node")))

    def upsample(self, request: dict[str, Any]) -> None:
        c = self._composition()
        node = request.get("node") or c.state.chosen
        c.node(c._chosen(node))
        self._start(f"upsampling {node}", lambda: c.upsample(node, progress=False), c.folder / "finished" / node)

    def export(self, request: dict[str, Any]) -> dict[str, Any]:
        c = self._composition()
        node = c._chosen(request.get("node") or None)
        fmt = request.get("format") or "wav"
        if fmt not in ("wav", "flac", "ogg", "mp3"):
            raise ConfigError(f"export format must be wav, flac, ogg or mp3, not {fmt!r}")
        path = c.export(c.folder / "export" / f"{node}.{fmt}", node)
        return {"url": self._url(path), "path": str(path)}

    def _composition(self) -> Composition:
        if self.composition is None:
            raise ConfigError("start the composition first")
        if self.job["running"]:
            raise ConfigError(f"busy {self.job['what']}; wait for it to finish")
        return self.composition

    def _start(self, what: str, work, run: Path) -> None:
        with self.lock:
            if self.job["running"]:
                raise ConfigError(f"busy {self.job['what']}; wait for it to finish")
            self.job = {"running": True, "what": what, "error": None, "run": str(run)}

        def target() -> None:
            error = None
            try:
                work()
            except OpenJukeboxError as e:
                error = str(e)
            except Exception as e:  # noqa: BLE001 (the page shows it; the server lives on)
                traceback.print_exc()
                error = f"{type(e).__name__}: {e}"
            self.job = {"running": False, "what": what, "error": error}

        threading.Thread(target=target, daemon=True).start()


def _number(value: Any, what: str, allow_none: bool = False) -> float | None:
    if value in (None, "") and allow_none:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: not a number ({value!r})") from None


def _progress(run: Path) -> float | None:
    """The fraction of the running job's tokens drawn, from what it saved last."""
    files = sorted(run.glob("level*.npz"))
    if not files:
        return 0.0
    try:
        with np.load(files[0], allow_pickle=False) as data:
            return float(data["codes"].shape[1] / max(int(data["total_tokens"]), 1))
    except (OSError, ValueError, KeyError):
        return None


def handler_for(studio: Studio) -> type[BaseHTTPRequestHandler]:
    actions = {"/api/create": studio.create, "/api/extend": studio.extend, "/api/pick": studio.pick,
               "/api/upsample": studio.upsample, "/api/export": studio.export}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows errors only
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            try:
                if url.path == "/":
                    self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
                elif url.path == "/api/state":
                    self._json(200, studio.state())
                elif url.path.startswith("/files/"):
                    self._file(unquote(url.path.removeprefix("/files/")))
                else:
                    self._json(404, {"error": f"no such page: {url.path}"})
            except Exception as e:  # noqa: BLE001 (one bad request never stops the server)
                self._json(500, {"error": f"{type(e).__name__}: {e}"})

        def do_POST(self) -> None:
            url = urlparse(self.path)
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_UPLOAD:
                    raise ConfigError(f"the upload is {length / 2**20:.0f} MiB; the most is {MAX_UPLOAD // 2**20} MiB")
                body = self.rfile.read(length)
                if url.path == "/api/upload":
                    name = (parse_qs(url.query).get("name") or ["upload.wav"])[0]
                    self._json(200, studio.upload(name, body))
                elif url.path in actions:
                    try:
                        request = json.loads(body or b"{}")
                    except ValueError:
                        raise ConfigError("the request is not JSON") from None
                    self._json(200, actions[url.path](request) or {"ok": True})
                else:
                    self._json(404, {"error": f"no such action: {url.path}"})
            except OpenJukeboxError as e:
                self._json(400, {"error": str(e)})
            except Exception as e:  # noqa: BLE001 (one bad request never stops the server)
                traceback.print_exc()
                self._json(500, {"error": f"{type(e).__name__}: {e}"})

        def _file(self, relative: str) -> None:
            path = (studio.folder / relative).resolve()
            if studio.folder.resolve() not in path.parents or not path.is_file():
                self._json(404, {"error": f"no such file: {relative}"})
                return
            self._send(200, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve(folder: str | Path = "composition", model: str | None = None, host: str = "127.0.0.1", port: int = 8765,
          device: str = "auto") -> ThreadingHTTPServer:
    """The studio's server for the composition in `folder` (created from the page if it does not exist yet), bound
    to `host` (this machine only, unless told otherwise); call `serve_forever()` on it."""
    studio = Studio(folder, model, device)
    try:
        server = ThreadingHTTPServer((host, port), handler_for(studio))
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --port") from None
    server.daemon_threads = True
    return server
