"""The `openjukebox` command: a thin skin over the Python API.

Every command is one entry of COMMANDS: its words, its help, the API function it calls and its options. An option
that feeds an API parameter takes that parameter's default from the function's signature (`sample`'s options come
from `SampleRequest`'s fields), so a default is written once, in the API, and `--help` shows it. Only the command
being run imports its API module, so `openjukebox --help` stays instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import importlib
import inspect
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .errors import OpenJukeboxError
from .version import __version__

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class Opt:
    """One option (or positional argument): argparse's flags and settings, and the API parameter it feeds."""

    flags: tuple[str, ...]
    settings: dict[str, Any]
    param: str  # the API parameter it feeds, by default its name (--batch-size → batch_size)


def opt(*flags: str, param: str | None = None, **settings: Any) -> Opt:
    name = param or settings.get("dest") or flags[0].lstrip("-").replace("-", "_")
    return Opt(flags, settings, name)


@dataclass
class Command:
    words: str  # "vqvae train"
    help: str
    api: str | None  # "module:function" (relative to the package) whose signature gives the options' defaults
    options: list[Opt]
    run: Callable[[argparse.Namespace, Callable | None], None]  # makes the call(s) and prints what was written
    extra: Callable[[], list[Opt]] | None = field(default=None)  # options generated from the API (sample)


def _api(command: Command) -> Callable | None:
    if command.api is None:
        return None
    module, _, name = command.api.partition(":")
    return functools.reduce(getattr, name.split("."), importlib.import_module(module, __package__))


def _api_arguments(args: argparse.Namespace, api: Callable, command: Command) -> dict[str, Any]:
    """The options that feed a parameter of `api`, by name."""
    params = inspect.signature(api).parameters
    return {o.param: getattr(args, o.param) for o in command.options if o.param in params}


def _json(report: Any) -> str:
    """One JSON line; a value that is not a finite number (NaN on silence, say) becomes null, as JSON has no NaN."""
    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value
    return json.dumps(finite(report), allow_nan=False)


# ---- conversions shared by several commands -------------------------------------------------------------------

def _device(name: str):
    from .devices import resolve_device

    return resolve_device(name)


def _dtype(name: str):
    import torch

    return {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _sampling_device(name: str):
    """--device, where under torchrun "auto" is this process's own GPU; joins torchrun's process group."""
    from . import distributed

    device = distributed.local_device() if name == "auto" and distributed.launched_by_torchrun() else _device(name)
    distributed.setup(device)
    return device


def _vqvae_presets() -> list[str]:
    from .vqvae.config import PRESETS

    return list(PRESETS)


def _prior_presets() -> list[str]:
    from .prior.config import PRESETS

    return list(PRESETS)


def _released_presets() -> list[str]:
    from .compat.released import TOP_PRIORS

    return list(TOP_PRIORS)


# ---- runners --------------------------------------------------------------------------------------------------

def _report(message: str) -> Callable[[argparse.Namespace, Callable | None], None]:
    """Call the API with the options that name its parameters, then print `message` (formatted with the
    options and `result`)."""
    def run(args: argparse.Namespace, api: Callable | None) -> None:
        result = api(**_api_arguments(args, api, args.command))
        print(message.format(result=result, **vars(args)))
    return run


def _train(args: argparse.Namespace, api: Callable | None) -> None:
    """A training run: under torchrun every process trains, rank 0 alone reports."""
    from . import distributed

    main = int(os.environ.get("RANK", "0")) == 0  # decided up front: after teardown every process looks like rank 0
    try:
        step = api(**_api_arguments(args, api, args.command), progress=True)
    finally:
        distributed.teardown()
    if main:
        print(f"trained to step {step}: {args.out}")


def _download_progress() -> Callable[[str, int, int | None], None]:
    """Prints each file's progress to stderr, at most every 2 s (and when it completes)."""
    import time

    shown: dict[str, float] = {}  # file name -> when its progress was last printed

    def progress(name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if done != total and name in shown and now - shown[name] < 2:
            return
        shown[name] = now
        of = f" of {total / 1e6:,.1f}" if total else ""
        print(f"{name}: {done / 1e6:,.1f}{of} MB", file=sys.stderr)
    return progress


def _load_jukebox(args: argparse.Namespace, device):
    """The model of --model; a released one not downloaded yet is fetched with --download, or when the user says
    yes on a terminal."""
    from .compat.fetch import NotDownloaded
    from .jukebox import Jukebox

    dtype = _dtype(args.dtype) if hasattr(args, "dtype") else None
    try:
        return Jukebox.load(args.model, device, dtype, args.download, _download_progress())
    except NotDownloaded as e:
        if not sys.stdin.isatty() or input(f"{e}. Download now? [y/N] ").strip().lower() not in ("y", "yes"):
            raise
        return Jukebox.load(args.model, device, dtype, True, _download_progress())


def _run_sample(args: argparse.Namespace, api: Callable | None) -> None:
    from . import distributed
    from .lyrics.timing import TimedLyrics, read_timed_lyrics
    from .sample.request import SampleRequest

    lyrics = read_timed_lyrics(args.lyrics_file) if args.lyrics_file else TimedLyrics("")
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(SampleRequest) if hasattr(args, f.name)}
    request = SampleRequest(**options, lyrics=lyrics.text, lyrics_timing=lyrics.anchors)
    request.check()
    try:
        bundle = _load_jukebox(args, _sampling_device(args.device)).bundle
        for path in api(bundle, args.out, request, compile=args.compile):
            print(f"wrote {path}")
    finally:
        distributed.teardown()


def _run_upsample(args: argparse.Namespace, api: Callable | None) -> None:
    from . import distributed
    from .sample.pipeline import REQUEST

    if not (Path(args.out_dir) / REQUEST).is_file():
        raise OpenJukeboxError(f"{args.out_dir}: no sampling run here (no {REQUEST})")
    try:
        jukebox = _load_jukebox(args, _sampling_device(args.device))
        for path in jukebox.upsample(args.out_dir, compile=args.compile):
            print(f"wrote {path}")
    finally:
        distributed.teardown()


def _run_align(args: argparse.Namespace, api: Callable | None) -> None:
    from .lyrics.timing import read_timed_lyrics

    lyrics = read_timed_lyrics(args.lyrics_file)
    jukebox = _load_jukebox(args, args.device)
    for path in jukebox.align(args.audio_path, lyrics.text, args.out, args.artist, args.genres, layer=args.layer,
                              head=args.head, lyrics_timing=lyrics.anchors):
        print(f"wrote {path}")


def _run_embed(args: argparse.Namespace, api: Callable | None) -> None:
    jukebox = _load_jukebox(args, _device(args.device))

    def progress(done: int, total: int, path: Path) -> None:
        print(f"[{done}/{total}] {path}", file=sys.stderr)

    out = jukebox.embed_files(args.paths, args.out, args.layer, args.pool, args.seconds, args.batch, progress)
    print(f"wrote {out}")


def _run_models(args: argparse.Namespace, api: Callable | None) -> None:
    for info in api(args.cache):
        labels = ""
        if info.artists or info.genres:
            more = f", ... ({len(info.artists)} in all)" if len(info.artists) > 8 else ""
            labels = f"\n    artists: {', '.join(info.artists[:8])}{more}\n    genres: {', '.join(info.genres[:8])}"
        print(f"{info.name}  [{info.kind}, {info.megabytes:,.1f} MB]  {info.path}{labels}")


def _run_download(args: argparse.Namespace, api: Callable | None) -> None:
    for path in api(args.model, args.cache, _download_progress(), args.source).values():
        print(path)


def _run_bundle(args: argparse.Namespace, api: Callable | None) -> None:
    api(args.vqvae, {0: args.prior0, 1: args.prior1, 2: args.prior2}, args.out, _dtype(args.dtype))
    print(f"wrote bundle {args.out}")


def _given_priors(args: argparse.Namespace) -> dict[int, str]:
    return {level: getattr(args, f"prior{level}") for level in range(3) if getattr(args, f"prior{level}")}


def _from_original_files(target: str, done: str) -> Callable[[argparse.Namespace, Callable | None], None]:
    """convert-openai and bundle add: the API call with the original files' options, into `args.<target>`."""
    def run(args: argparse.Namespace, api: Callable | None) -> None:
        from .compat.convert import load_hparams_file

        hparams = load_hparams_file(args.hparams) if args.hparams else None
        path = api(getattr(args, target), args.vqvae, _given_priors(args), args.preset, hparams, args.artist_ids,
                   args.genre_ids, _dtype(args.dtype))
        print(f"{done} {path}")
    return run


def _run_convert_hf(args: argparse.Namespace, api: Callable | None) -> None:
    print(f"wrote bundle {api(args.folder, args.out, _dtype(args.dtype))}")


def _run_codes_build(args: argparse.Namespace, api: Callable | None) -> None:
    cache = api(**_api_arguments(args, api, args.command))
    print(f"wrote {args.out}: {len(cache.codes.clips)} files, {len(cache.labels.artists)} artists, "
          f"{len(cache.labels.genres)} genres")


def _run_vqvae_encode(args: argparse.Namespace, api: Callable | None) -> None:
    from .vqvae.loading import load_vqvae

    model, _ = load_vqvae(args.model, _device(args.device))
    codes = api(model, args.paths, args.out, args.offset, args.duration)
    tokens = ", ".join(f"level {l}: {a.shape[1]}" for l, a in enumerate(codes.levels))
    print(f"wrote {args.out}: {len(codes.clips)} clip(s), tokens per clip {tokens}")


def _run_vqvae_decode(args: argparse.Namespace, api: Callable | None) -> None:
    from .vqvae.loading import load_vqvae

    model, _ = load_vqvae(args.model, _device(args.device))
    for path in api(model, args.codes_path, args.level, args.out, args.clip):
        print(f"wrote {path}")


def _run_vqvae_eval(args: argparse.Namespace, api: Callable | None) -> None:
    from .data.dataset import AudioFolder
    from .models import cache_dir
    from .train.checkpoint import resolve_checkpoint
    from .vqvae.loading import load_vqvae

    model, step = load_vqvae(args.model, _device(args.device))
    ckpt = resolve_checkpoint(args.model)
    if args.cache:
        cache = args.cache
    elif ckpt.parent.name == "checkpoints":  # a training run: its own cache
        cache = ckpt.parent.parent / "cache"
    else:  # a bundle or a loose checkpoint: the user's cache folder, never inside the model
        cache = cache_dir()
    dataset = AudioFolder(args.data, model.config.sample_rate, cache, None)
    report = {"step": step, "model": str(args.model), "data": str(args.data),
              **api(model, dataset, windows_per_file=args.windows_per_file)}
    if args.json:
        print(_json(report))
        return
    print(f"step {step}, {report['windows']} windows of {report['window_seconds']:.2f}s from {args.data}")
    print(f"{'level':>5} {'hop':>4} {'spectral conv. dB':>18} {'L2':>10} {'codebook usage':>15} {'perplexity':>10}")
    for e in report["levels"]:
        print(f"{e['level']:>5} {e['hop_length']:>4} {e['spectral_convergence_db']:>18.2f} {e['l2']:>10.3g} "
              f"{e['codebook_usage'] * 100:>14.1f}% {e['perplexity']:>10.1f}")


def _run_vqvae_noise_fill(args: argparse.Namespace, api: Callable | None) -> None:
    report = api(**_api_arguments(args, api, args.command))
    print(f"wrote {args.out}: a noise fill fitted on {report['windows']} windows")
    for level, errors in report["rms_error_nats"].items():
        print(f"level {level}: rms error per band {' '.join(f'{e:.2f}' for e in errors)} nats")


def _run_prior_eval(args: argparse.Namespace, api: Callable | None) -> None:
    from .bundle import prior_location
    from .prior.evaluation import load_evaluation_codes
    from .prior.loading import load_prior
    from .prior.training import trained_on
    from .vqvae.loading import load_vqvae

    path, vocab_file = prior_location(args.model, args.level)
    prior = load_prior(path, _device(args.device))
    if prior.config.level != args.level:
        raise OpenJukeboxError(f"{args.model}: holds a level-{prior.config.level} prior, not level {args.level}")
    learned = trained_on(path) or trained_on(args.model)
    if learned is None and (Path(args.model) / "vqvae").is_dir():  # a bundle: its own VQ-VAE
        learned = load_vqvae(Path(args.model) / "vqvae")[0].fingerprint()
    report = api(prior, load_evaluation_codes(args.codes, prior, vocab_file, learned), args.windows)
    if args.json:
        print(_json(report))
        return
    print(f"level {report['level']}: {report['nats_per_token']:.3f} nats/token "
          f"({report['bits_per_second']:.0f} bits/s) vs unigram {report['unigram_nats_per_token']:.3f} nats/token "
          f"({report['unigram_bits_per_second']:.0f} bits/s), {report['tokens']} tokens")
    if "other_lyrics_nats_per_token" in report:
        print(f"with other songs' lyrics: {report['other_lyrics_nats_per_token']:.3f} nats/token "
              f"(the lyrics tell it {report['other_lyrics_nats_per_token'] - report['nats_per_token']:.3f})")


def _lyrics_text(path: str | None) -> tuple[str, tuple]:
    from .lyrics.timing import TimedLyrics, read_timed_lyrics

    lyrics = read_timed_lyrics(path) if path else TimedLyrics("")
    return lyrics.text, lyrics.anchors


def _run_compose_new(args: argparse.Namespace, api: Callable | None) -> None:
    composition = api(args.folder, args.model, args.artist, args.genres, _lyrics_text(args.lyrics_file)[0],
                      args.song_seconds, args.seed, args.prompt, args.prompt_seconds, args.device)
    print(f"started {composition.folder}; next: 'openjukebox compose extend {composition.folder} --seconds S --n N'")


def _run_compose_extend(args: argparse.Namespace, api: Callable | None) -> None:
    from .compose import Composition

    composition = Composition.open(args.folder, args.device)
    lyrics = _lyrics_text(args.lyrics_file)[0] if args.lyrics_file else None
    for node in composition.extend(args.node, args.seconds, args.n, args.seed, args.artist, args.genres, lyrics,
                                   compile=args.compile):
        print(f"{node}: {composition.preview(node)}")


def _run_compose_pick(args: argparse.Namespace, api: Callable | None) -> None:
    from .compose import Composition

    Composition.open(args.folder, "cpu").pick(args.node)
    print(f"picked {args.node}")


def _run_compose_tree(args: argparse.Namespace, api: Callable | None) -> None:
    from .compose import Composition

    composition = Composition.open(args.folder, "cpu")
    children = composition.tree()

    def show(node: str, depth: int) -> None:
        n = composition.node(node)
        mark = " *" if node == composition.state.chosen else ""
        labels = ", ".join(filter(None, [n.artist, *n.genres]))
        print(f"{'  ' * depth}{node}{mark}  {n.seconds:g}s  seed {n.seed}  [{labels}]  {composition.preview(node)}")
        for child in children[node]:
            show(child, depth + 1)

    if not children[None]:
        print(f"{args.folder}: no candidates yet; 'openjukebox compose extend {args.folder} --seconds S --n N'")
    for node in children[None]:
        show(node, 0)


def _run_compose_upsample(args: argparse.Namespace, api: Callable | None) -> None:
    from .compose import Composition

    for path in Composition.open(args.folder, args.device).upsample(args.node, compile=args.compile):
        print(f"wrote {path}")


def _run_compose_export(args: argparse.Namespace, api: Callable | None) -> None:
    from .compose import Composition

    print(f"wrote {Composition.open(args.folder, 'cpu').export(args.out, args.node)}")


def _run_studio(args: argparse.Namespace, api: Callable | None) -> None:
    server = api(args.folder, args.model, args.host, args.port, args.device)
    host, port = server.server_address[:2]
    print(f"openjukebox studio: http://{host}:{port}/  ({args.folder}; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


# ---- the commands ---------------------------------------------------------------------------------------------

_CACHE_HELP = "default: $OPENJUKEBOX_CACHE, else $XDG_CACHE_HOME/openjukebox, else ~/.cache/openjukebox"
_DEVICE = opt("--device", default="auto", help="cpu, cuda, cuda:1, ... or auto (the GPU when there is one)")
_LEVEL = opt("--level", type=int, required=True, choices=[0, 1, 2], help="0 (finest), 1, or 2 (top)")
_COOLDOWN = opt("--cooldown-steps", type=int, metavar="N", help="lower the learning rate linearly to 0 over the last N "
                "steps before --steps (default 0: constant)")


def _dtype_option(help: str) -> Opt:
    return opt("--dtype", choices=DTYPES, default="float32", help=help)


def _original_files() -> list[Opt]:
    """The options of the commands that read original checkpoint files."""
    return [opt("--vqvae", help="vqvae.pth.tar"),
            *(opt(f"--prior{level}", help=f"prior_level_{level}.pth.tar") for level in range(3)),
            opt("--preset", choices=_released_presets, help="the released model (default: the hyperparameters "
                "saved in the files, or --hparams)"),
            opt("--hparams", help="JSON of original hyperparameter dicts: {vqvae, prior0, ...}"),
            opt("--artist-ids", help="the original artist id table (name;id per line; default: the released "
                "tables, looked for beside --prior2, in the download cache and in jukebox-infer)"),
            opt("--genre-ids", help="the original genre id table (name;id per line)"),
            _dtype_option("store the weights in this type (bfloat16 halves the size)")]


_DOWNLOAD = opt("--download", action="store_true", help="a released model (--model 5b, 5b_lyrics or 1b_lyrics) "
              "not here yet: download it (gigabytes) and convert it, once (without: asked on a terminal)")


def _sampling_options() -> list[Opt]:
    return [opt("--model", help="bundle directory, the name of one from 'openjukebox models', or a released model: "
                "5b, 5b_lyrics, 1b_lyrics (default: the embedded model)"),
            _DOWNLOAD,
            _DEVICE,
            _dtype_option("the priors' weights and compute type, and the VQ-VAE decoder's compute type (bfloat16 "
                          "halves the priors' memory and decodes about 3x faster on CPU)"),
            opt("--compile", action=argparse.BooleanOptionalAction, default="auto",
                help="compile the per-token step with torch.compile (default: for levels long enough to pay for "
                     "the compilation; the codes are the same either way)")]


def _request_options() -> list[Opt]:
    """`sample`'s options, one per SampleRequest field that declares one."""
    from .sample.request import SampleRequest

    options = []
    for f in dataclasses.fields(SampleRequest):
        if "cli" not in f.metadata:
            continue
        settings = dict(f.metadata["cli"])
        flags = settings.pop("flags", (f"--{f.name.replace('_', '-')}",))
        if not settings.get("required"):
            settings.setdefault("default", f.default_factory() if f.default is dataclasses.MISSING else f.default)
        if "type" not in settings and "action" not in settings and settings.get("default") is not None:
            settings["type"] = type(settings["default"])
        options.append(opt(*flags, dest=f.name, **settings))
    return options


COMMANDS = [
    Command("sample", "sample songs from a bundle", ".sample.pipeline:sample", [
        *_sampling_options(),
        opt("--out", required=True, help="output folder; running again continues it"),
        opt("--lyrics-file", help="UTF-8 text the song sings (lyrics models); an .lrc file also says when each line "
            "or word is sung"),
    ], _run_sample, extra=_request_options),
    Command("upsample", "finish a sampling run (e.g. a --levels 2 preview) down to level 0", None,
            [*_sampling_options(), opt("out_dir", help="the sampling run's output folder")], _run_upsample),
    Command("align", "which words of the lyrics are sung when, in an existing song", ".sample.pipeline:align_audio", [
        opt("audio_path", help="the song"),
        opt("--model", required=True, help="bundle with a lyrics prior (a directory or a name from 'openjukebox "
            "models', or 5b_lyrics, 1b_lyrics)"),
        _DOWNLOAD,
        opt("--lyrics-file", required=True, help="UTF-8 text of the lyrics; an .lrc file's line or word times place "
            "the model's windows of lyrics"),
        opt("--out", required=True, help="folder for lyrics.lrc, lyrics.json, lyrics.png"),
        opt("--layer", type=int, help="read this layer's attention (default: the model's own)"),
        opt("--head", type=int, help="read this head's attention (default: the model's own)"),
        opt("--artist", help="the artist the model is told"),
        opt("--genre", dest="genres", action="append", help="a genre the model is told; repeat for several"),
        _DEVICE,
    ], _run_align),
    Command("embed", "features of songs for music research (JukeMIR): a top-prior layer pooled over time",
            ".jukebox:Jukebox.embed_files", [
                opt("paths", nargs="+", metavar="AUDIO", help="audio files or folders of them"),
                opt("--model", help="bundle (a directory or a name from 'openjukebox models', or 5b); default: the "
                    "embedded model"),
                _DOWNLOAD,
                opt("--out", required=True, help="the .npz to write: features (files, width) and paths; running "
                    "again goes on where a stopped run left off"),
                opt("--layer", type=int, help="the top prior's layer, 1 to its depth (default: the middle one, 36 "
                    "of the 5B's 72)"),
                opt("--pool", choices=["mean", "max"], help="how the layer's outputs over time become one vector"),
                opt("--seconds", type=float, help="only each file's first seconds (JukeMIR used 24)"),
                opt("--batch", type=int, help="windows of the prior run together"),
                _DEVICE,
                _dtype_option("the top prior's weights and compute type (bfloat16 halves the 5B prior's memory)"),
            ], _run_embed),
    Command("models", "list the embedded model and the models in the cache, with their labels",
            ".models:list_models", [opt("--cache", metavar="DIR", help=_CACHE_HELP)], _run_models),
    Command("download", "fetch the released OpenAI Jukebox checkpoints (running again resumes)",
            ".download:download_model", [
                opt("model", help="5b, 5b_lyrics or 1b_lyrics, or one file such as vqvae or upsampler_level_0"),
                opt("--cache", metavar="DIR", help="where to keep them (" + _CACHE_HELP + ")"),
                opt("--source", choices=["auto", "original", "hf"], help="original: the released .pth.tar files; hf: "
                    "the Hugging Face Hub copy (1b_lyrics, 5b_lyrics); auto: the original files, else the Hub copy")],
            _run_download),
    Command("convert-openai", "a bundle from original Jukebox checkpoint files (.pth.tar): all, or any of them",
            ".compat.convert:convert_openai", [*_original_files(), opt("--out", required=True,
                                                                        help="the new bundle's folder")],
            _from_original_files("out", "wrote bundle")),
    Command("convert-hf", "a bundle from the Hugging Face copy of a released model (transformers' Jukebox format: "
            "config.json, weights, vocab.json), without transformers", ".compat.hf:convert_hf", [
                opt("folder", help="the downloaded model folder ('openjukebox download 1b_lyrics --source hf')"),
                _dtype_option("store the weights in this type (bfloat16 halves the size)"),
                opt("--out", required=True, help="the new bundle's folder")], _run_convert_hf),
    Command("bundle add", "add parts a bundle lacks, from original checkpoint files (.pth.tar)",
            ".compat.convert:add_to_bundle", [opt("bundle", help="the bundle's folder"), *_original_files()],
            _from_original_files("bundle", "added to bundle")),
    Command("init", "write a model bundle with random weights (tests, benchmarks)", ".bundle:init_bundle", [
        opt("--preset", default="tiny", choices=_prior_presets, help="the priors' preset (with its VQ-VAE)"),
        opt("--out", required=True, help="the new bundle's folder"),
        opt("--seed", type=int, help="of the random weights"),
        opt("--artists", nargs="+", help="artist vocabulary (default: 'unknown')"),
        opt("--genres", nargs="+", help="genre vocabulary (default: 'unknown')"),
    ], _report("wrote a '{preset}' bundle with random weights to {out}")),
    Command("bundle make", "assemble a model bundle from a trained VQ-VAE and three priors",
            ".bundle:assemble_bundle", [
        *(opt(f"--{name}", required=True, help="run or checkpoint directory")
          for name in ("vqvae", "prior0", "prior1", "prior2")),
        _dtype_option("store the weights in this type (float16 halves the size)"),
        opt("--out", required=True, help="the new bundle's folder")], _run_bundle),
    Command("vqvae train", "train (or resume training) a VQ-VAE on a folder of audio", ".vqvae.training:train_vqvae", [
        opt("--data", required=True, help="folder of audio files (searched recursively)"),
        opt("--out", required=True, help="run directory; running again resumes it"),
        opt("--preset", choices=_vqvae_presets, help="model size (default: tiny)"),
        opt("--init", metavar="MODEL", help="start from this trained VQ-VAE (run, checkpoint, or a bundle's vqvae/) "
            "instead of a preset"),
        opt("--decoders", type=int, nargs="+", metavar="LEVEL", help="train only these levels' decoders (with "
            "--init): the codes stay the same, so priors trained on them still fit"),
        opt("--config", metavar="FILE", help="JSON or TOML file of VQVAEConfig fields laid over the preset (or "
            "the --init model's), e.g. log_spectral_weight = 1.0"),
        opt("--steps", type=int, required=True, help="train until this step"),
        opt("--batch-size", type=int, help="clips per step"),
        opt("--lr", type=float, help="learning rate (default: the preset's)"),
        _COOLDOWN,
        opt("--save-every", type=int, help="steps between checkpoints"),
        opt("--eval-every", type=int, help="steps between evaluations (default: --save-every)"),
        opt("--eval-data", help="folder of held-out audio for periodic evaluation"),
        opt("--metadata", help="CSV/JSONL labels table (default: DATA/metadata.csv|jsonl)"),
        opt("--seed", type=int, help="of the initial weights and the crops"),
        opt("--audio-cache", metavar="DIR", help="where the decoded audio is kept (default: OUT/cache); runs on "
            "the same --data can share one"),
    ], _train),
    Command("vqvae encode", "encode audio files to a codes .npz (all three levels)",
            ".vqvae.transcode:encode_audio_files", [
                opt("paths", nargs="+", metavar="audio", help="audio files"),
                opt("--model", required=True, help="VQ-VAE run or checkpoint directory, or a bundle's vqvae/"),
                opt("--out", required=True, help="codes file to write (.npz)"),
                opt("--offset", type=float, help="seconds to skip at the start of each file"),
                opt("--duration", type=float, help="seconds to encode (default: to the end)"),
                _DEVICE], _run_vqvae_encode),
    Command("vqvae decode", "decode one level of a codes file to audio", ".vqvae.transcode:decode_codes", [
        opt("codes_path", metavar="codes", help="a codes .npz"),
        opt("--model", required=True, help="VQ-VAE run or checkpoint directory, or a bundle's vqvae/"),
        _LEVEL,
        opt("--out", required=True, help=".wav or .flac"),
        opt("--clip", type=int, help="which clip of the codes file (default: all)"),
        _DEVICE], _run_vqvae_decode),
    Command("vqvae eval", "spectral convergence, L2 and codebook usage per level on a folder of audio",
            ".vqvae.evaluation:evaluate_vqvae", [
                opt("--model", required=True, help="VQ-VAE run or checkpoint directory"),
                opt("--data", required=True, help="folder of audio"),
                opt("--json", action="store_true", help="print one JSON object"),
                opt("--windows-per-file", type=int, help="windows measured per file"),
                opt("--cache", help="where decoded audio is cached (default: RUN_DIR/cache, or ~/.cache/openjukebox "
                    "for a bundle)"),
                _DEVICE], _run_vqvae_eval),
    Command("vqvae noise-fill", "fit the noise fill that puts back the treble a VQ-VAE's decoders leave out",
            ".vqvae.noise_fill_fitting:add_noise_fill", [
                opt("--model", required=True, help="VQ-VAE run or checkpoint directory, or a bundle's vqvae/"),
                opt("--data", required=True, help="folder of the music it should sound like (its training music)"),
                opt("--out", required=True, help="new model directory: the VQ-VAE with its noise fill"),
                opt("--metadata", help="CSV/JSONL labels table (default: DATA/metadata.csv|jsonl)"),
                opt("--seconds", type=float, help="length of each window fitted on"),
                opt("--windows-per-file", type=int, help="evenly spaced windows per file"),
                opt("--from-hz", type=float, help="fill the bands above this frequency"),
                opt("--context-frames", type=int, help="earlier STFT frames that predict a frame's treble"),
                opt("--audio-cache", metavar="DIR", help="keep the decoded audio here (default: a temporary folder)"),
            ], _run_vqvae_noise_fill),
    Command("codes build", "encode a folder of audio once, for prior training", ".vqvae.code_cache:build_code_cache", [
        opt("--vqvae", required=True, help="VQ-VAE run or checkpoint directory"),
        opt("--data", required=True, help="folder of audio"),
        opt("--out", required=True, help="the code cache's folder"),
        opt("--metadata", help="CSV/JSONL labels table (default: DATA/metadata.csv|jsonl)"),
        opt("--audio-cache", metavar="DIR", help="where the decoded audio is kept (default: OUT/audio-cache); "
            "give the VQ-VAE run's RUN/cache when it trained on the same --data, to decode it only once"),
        _DEVICE], _run_codes_build),
    Command("prior train", "train (or resume) a prior on a codes cache", ".prior.training:train_prior", [
        _LEVEL,
        opt("--codes", required=True, help="codes cache directory"),
        opt("--preset", choices=_prior_presets, help="model size"),
        opt("--config", metavar="FILE", help="JSON or TOML file of PriorConfig fields (transformer nested) laid "
            "over the preset's config for this level"),
        opt("--out", required=True, help="run directory; running again resumes it"),
        opt("--init", metavar="MODEL", help="start from this trained prior (run, checkpoint, or a bundle's prior at "
            "--level) instead of a preset: fine-tuning, with its size and labels (plus the music's new names)"),
        opt("--steps", type=int, required=True, help="train until this step"),
        opt("--batch-size", type=int, help="windows per step"),
        opt("--lr", type=float, help="learning rate"),
        _COOLDOWN,
        opt("--save-every", type=int, help="steps between checkpoints"),
        opt("--seed", type=int, help="of the initial weights and the windows"),
        opt("--fsdp", action="store_true", help="under torchrun, shard the prior across ranks (FSDP)"),
        opt("--checkpoint-activations", action="store_true", help="recompute activations to save memory"),
        opt("--lyrics-jitter", type=int, metavar="N", help="move each window's lyrics by up to N characters at random "
            "(lyrics priors)"),
        opt("--label-dropout", type=float, metavar="P", help="train each window's artist, and its genres, as "
            "'unknown' with probability P, so that a song asked for without labels is the music as a whole"),
        opt("--scheduled-sampling", type=float, metavar="Q", help="feed the model its own draw in place of each "
            "input code with probability Q, so that it learns to continue from its own codes as sampling asks"),
        opt("--from-other-codes", action="store_true", help="with --init: start from a prior that learned another "
            "VQ-VAE's codes (one fine-tuned since), to re-learn them faster than from scratch"),
    ], _train),
    Command("prior add-lyrics", "turn a trained top prior into a lyrics prior (same predictions until trained)",
            ".prior.surgery:add_lyrics_to_run", [
                opt("--from", dest="source", required=True, help="top prior run or checkpoint directory"),
                opt("--out", required=True, help="new run directory"),
                opt("--n-tokens", type=int, help="lyric characters per window"),
                opt("--encoder-width", type=int, help="default: half the prior's width"),
                opt("--encoder-depth", type=int, help="layers of the lyrics encoder"),
            ], _report("wrote {result}: continue with 'openjukebox prior train --level 2 --out {result} "
                       "--codes CACHE_WITH_LYRICS'")),
    Command("prior eval", "teacher-forced NLL per token beside the unigram baseline",
            ".prior.evaluation:evaluate_prior", [
                opt("--model", required=True, help="bundle, prior run or checkpoint directory"),
                _LEVEL,
                opt("--codes", required=True, help="codes cache directory, or a codes .npz from 'vqvae encode'"),
                opt("--windows", type=int, help="random windows scored"),
                opt("--json", action="store_true", help="print one JSON object"),
                _DEVICE], _run_prior_eval),
    Command("compose new", "start a composition folder: the model, the labels, optionally your audio to start from",
            ".compose:Composition.create", [
                opt("folder", help="a new, empty folder for the composition"),
                opt("--model", help="bundle directory, a name from 'openjukebox models', or a released model "
                    "(default: the embedded model)"),
                opt("--artist", help="an artist the model knows"),
                opt("--genre", dest="genres", action="append", help="a genre the model knows; repeat for several"),
                opt("--lyrics-file", help="UTF-8 text the song sings (lyrics models)"),
                opt("--song-seconds", type=float, help="length of the song, for the timing conditioning (default: "
                    "the model's own)"),
                opt("--seed", type=int, help="the first extension's seed is this + 1, the next + 2, ..."),
                opt("--prompt", help="audio to start from (its first --prompt-seconds)"),
                opt("--prompt-seconds", type=float, help="seconds of --prompt to keep"),
                _DEVICE], _run_compose_new),
    Command("compose extend", "N candidates continuing a node (or starting the song) by S seconds, with previews",
            ".compose:Composition.extend", [
                opt("folder", help="the composition"),
                opt("--from", dest="node", help="the node to continue (default: start the song)"),
                opt("--seconds", type=float, required=True, help="how much each candidate adds"),
                opt("--n", type=int, help="candidates"),
                opt("--seed", type=int, help="regenerate the candidates made with this seed (default: a new one)"),
                opt("--artist", help="from here on (default: as before)"),
                opt("--genre", dest="genres", action="append", help="from here on (default: as before)"),
                opt("--lyrics-file", help="the song's lyrics from here on (default: as before)"),
                _DEVICE,
                opt("--compile", action=argparse.BooleanOptionalAction, default="auto",
                    help="compile the per-token step (default: where it pays)")], _run_compose_extend),
    Command("compose pick", "mark a node as the end of the chosen path", None, [
        opt("folder", help="the composition"), opt("node", help="e.g. n3")], _run_compose_pick),
    Command("compose tree", "the candidates, as a tree, with their previews (* marks the chosen one)", None, [
        opt("folder", help="the composition")], _run_compose_tree),
    Command("compose upsample", "levels 1 and 0 of the chosen path (resumable)", ".compose:Composition.upsample", [
        opt("folder", help="the composition"),
        opt("--node", help="default: the picked one"),
        _DEVICE,
        opt("--compile", action=argparse.BooleanOptionalAction, default="auto",
            help="compile the per-token step (default: where it pays)")], _run_compose_upsample),
    Command("compose export", "the finished song as .wav, .flac, .ogg or .mp3 (and its lyrics as .lrc)",
            ".compose:Composition.export", [
        opt("folder", help="the composition"),
        opt("out", help="a .wav, .flac, .ogg or .mp3 file"),
        opt("--node", help="default: the picked one")], _run_compose_export),
    Command("studio", "co-compose in a web page served on this machine", ".studio:serve", [
        opt("folder", nargs="?", default="composition", help="the composition (started from the page when it does "
            "not exist yet)"),
        opt("--model", help="for a new composition: bundle directory, a name from 'openjukebox models', or a "
            "released model (default: the embedded model)"),
        opt("--host", help="the address to listen on (127.0.0.1: this machine only)"),
        opt("--port", type=int, help="the port (0: any free one)"),
        _DEVICE], _run_studio),
    Command("data synth", "write deterministic synthetic songs (melody, chords, drums) as WAV files",
            ".data.synth:write_synthetic_dataset", [
                opt("--out", required=True, help="folder to write"),
                opt("--files", type=int, help="songs"),
                opt("--seconds", type=float, help="length of each"),
                opt("--sample-rate", type=int, help="Hz"),
                opt("--seed", type=int, help="the same seed writes the same songs"),
            ], _report("wrote {files} synthetic songs to {out}")),
]

GROUPS = {"compose": "co-compose: candidates, pick one, continue it, upsample the chosen path",
          "bundle": "make and complete model bundles", "vqvae": "train and use the three-level VQ-VAE",
          "codes": "code caches",
          "prior": "train and measure priors", "data": "datasets"}


# ---- argparse -------------------------------------------------------------------------------------------------

class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        nothing = action.default is None or action.default is False or action.default == [] \
            or action.default == argparse.SUPPRESS
        if nothing or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are reported like every other error: one line, then exit status 2; a mistyped command or
    choice gets the closest one suggested. Every option's help shows its default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        # On every command; SUPPRESS, so that a subcommand's parser does not overwrite a value given before it.
        self.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                          help="CPU threads (default: OMP_NUM_THREADS if set, else the cores not busy with other "
                               "work, by the load average)")

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("openjukebox").strip()
        where = f"{command}: " if command else ""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            options = re.findall(r"'([^']*)'", choice.group(2))
            close = difflib.get_close_matches(choice.group(1), options, n=1)
            if close:
                message += f"; did you mean '{close[0]}'?"
        self.exit(2, f"openjukebox: error: {where}{message} (see '{self.prog} --help')\n")


def _add_options(parser: argparse.ArgumentParser, command: Command) -> None:
    api = _api(command)
    defaults = {} if api is None else {name: p.default for name, p in inspect.signature(api).parameters.items()
                                       if p.default is not inspect.Parameter.empty}
    for option in [*command.options, *(command.extra() if command.extra else [])]:
        settings = dict(option.settings)
        if callable(settings.get("choices")):
            settings["choices"] = settings["choices"]()
        positional = not option.flags[0].startswith("-")
        if not positional and "default" not in settings and not settings.get("required") \
                and option.param in defaults and settings.get("action") != "store_true":
            settings["default"] = defaults[option.param]
        if not positional and "dest" not in settings:
            settings["dest"] = option.param
        parser.add_argument(*option.flags, **settings)
    parser.set_defaults(command=command)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the arguments about to be parsed, only their command's options are built
    (importing its API module), so that asking for help or running one command imports nothing else."""
    parser = _Parser(prog="openjukebox", description="Jukebox on today's PyTorch.")
    parser.add_argument("--version", action="version", version=f"openjukebox {__version__}")
    top = parser.add_subparsers(dest="command_words", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    words = set(argv) if argv is not None else None
    for command in COMMANDS:
        *group, name = command.words.split()
        if group and group[0] not in groups:
            groups[group[0]] = top.add_parser(group[0], help=GROUPS[group[0]]).add_subparsers(
                dest="subcommand", required=True, metavar="COMMAND")
        sub = (groups[group[0]] if group else top).add_parser(name, help=command.help, description=command.help)
        if words is None or set(command.words.split()) <= words:
            _add_options(sub, command)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"openjukebox: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    warnings.showwarning = _one_line_warning
    try:
        args = build_parser(argv).parse_args(argv)  # an option's own parser (--levels) raises ConfigError
        from .devices import choose_threads

        choose_threads(getattr(args, "threads", None))
        args.command.run(args, _api(args.command))
    except OpenJukeboxError as e:
        print(f"openjukebox: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a file system refusal (permissions, full disk) the API did not already name
        where = f"{e.filename}: " if e.filename else ""
        print(f"openjukebox: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("openjukebox: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
