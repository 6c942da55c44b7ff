"""The `openjukebox` command: argument parsing around the Python API, and one-line errors."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import warnings
from typing import NoReturn

from . import __version__
from .errors import OpenJukeboxError


def _device(name: str):
    from .devices import resolve_device

    return resolve_device(name)


def _dtype(name: str):
    import torch

    return {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def cmd_vqvae_train(args: argparse.Namespace) -> None:
    from .train import distributed
    from .vqvae.training import train_vqvae

    main = int(os.environ.get("RANK", "0")) == 0  # decided up front: after teardown every process looks like rank 0
    try:
        step = train_vqvae(args.data, args.out, args.preset, args.steps, args.batch_size, args.lr, args.save_every,
                           args.eval_every, args.seed, args.metadata, args.eval_data)
    finally:
        distributed.teardown()
    if main:
        print(f"trained to step {step}: {args.out}")


def cmd_vqvae_encode(args: argparse.Namespace) -> None:
    from .vqvae.loading import load_vqvae
    from .vqvae.transcode import encode_audio_files

    model, _ = load_vqvae(args.model, _device(args.device))
    codes = encode_audio_files(model, args.audio, args.out, args.offset, args.duration)
    tokens = ", ".join(f"level {l}: {a.shape[1]}" for l, a in enumerate(codes.levels))
    print(f"wrote {args.out}: {len(codes.clips)} clip(s), tokens per clip {tokens}")


def cmd_vqvae_decode(args: argparse.Namespace) -> None:
    from .vqvae.loading import load_vqvae
    from .vqvae.transcode import decode_codes

    model, _ = load_vqvae(args.model, _device(args.device))
    for path in decode_codes(model, args.codes, args.level, args.out, args.clip):
        print(f"wrote {path}")


def cmd_vqvae_eval(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .data.dataset import AudioFolder
    from .train.checkpoint import resolve_checkpoint
    from .vqvae.evaluation import evaluate_vqvae
    from .vqvae.loading import load_vqvae

    model, step = load_vqvae(args.model, _device(args.device))
    ckpt = resolve_checkpoint(args.model)
    if args.cache:
        cache = args.cache
    elif ckpt.parent.name == "checkpoints":  # a training run: its own cache
        cache = ckpt.parent.parent / "cache"
    else:  # a bundle or a loose checkpoint: the user's cache folder, never inside the model
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "openjukebox"
    dataset = AudioFolder(args.data, model.config.sample_rate, cache, None)
    report = evaluate_vqvae(model, dataset, max_windows_per_file=args.windows_per_file)
    report = {"step": step, "model": str(args.model), "data": str(args.data), **report}
    if args.json:
        print(json.dumps(report))
        return
    print(f"step {step}, {report['windows']} windows of {report['window_seconds']:.2f}s from {args.data}")
    print(f"{'level':>5} {'hop':>4} {'spectral conv. dB':>18} {'L2':>10} {'codebook usage':>15} {'perplexity':>10}")
    for e in report["levels"]:
        print(f"{e['level']:>5} {e['hop_length']:>4} {e['spectral_convergence_db']:>18.2f} {e['l2']:>10.3g} "
              f"{e['codebook_usage'] * 100:>14.1f}% {e['perplexity']:>10.1f}")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
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

    def add_argument(self, *args, **kwargs):
        default = kwargs.get("default")
        if "help" not in kwargs and default is not None and default is not False:
            kwargs["help"] = "(default: %(default)s)"  # an option without help text would not show its default
        return super().add_argument(*args, **kwargs)

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


def cmd_data_synth(args: argparse.Namespace) -> None:
    from .data.synth import write_synthetic_dataset

    paths = write_synthetic_dataset(args.out, args.files, args.seconds, args.sample_rate, args.seed)
    print(f"wrote {len(paths)} synthetic songs to {args.out}")


def cmd_init(args: argparse.Namespace) -> None:
    from .bundle import init_bundle

    init_bundle(args.preset, args.out, args.seed, args.artists, args.genres)
    print(f"wrote a '{args.preset}' bundle with random weights to {args.out}")


def _sample_request(args: argparse.Namespace):
    from .lyrics.timing import TimedLyrics, read_timed_lyrics
    from .sample.pipeline import SampleRequest

    try:
        levels = [int(level) for level in args.levels.split(",")]
    except ValueError:
        raise OpenJukeboxError(f"--levels must be 2, 2,1 or 2,1,0, got {args.levels}") from None
    lyrics = read_timed_lyrics(args.lyrics_file) if args.lyrics_file else TimedLyrics("")
    return SampleRequest(duration=args.duration, n=args.n, seed=args.seed, artist=args.artist, lyrics=lyrics.text,
                         lyrics_timing=lyrics.anchors,
                         genres=args.genre or [], temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         hop_fraction=args.hop_fraction, levels=levels, prompt=args.prompt,
                         prompt_seconds=args.prompt_seconds, schedule=args.schedule, song_seconds=args.song_seconds)


def _sampling_device(name: str):
    """--device, where under torchrun "auto" is this process's own GPU; joins torchrun's process group."""
    from .train import distributed

    device = distributed.local_device() if name == "auto" and distributed.launched_by_torchrun() else _device(name)
    distributed.setup(device)
    return device


def _compile_option(args: argparse.Namespace):
    return "auto" if args.compile is None else args.compile


def cmd_sample(args: argparse.Namespace) -> None:
    from .bundle import load_bundle
    from .models import resolve_model
    from .sample.pipeline import sample
    from .train import distributed

    request = _sample_request(args)
    request.check()
    try:
        bundle = load_bundle(resolve_model(args.model), _sampling_device(args.device), _dtype(args.dtype))
        for path in sample(bundle, args.out, request, compile=_compile_option(args)):
            print(f"wrote {path}")
    finally:
        distributed.teardown()


def cmd_upsample(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .jukebox import Jukebox
    from .sample.pipeline import REQUEST
    from .train import distributed

    if not (Path(args.out_dir) / REQUEST).is_file():
        raise OpenJukeboxError(f"{args.out_dir}: no sampling run here (no {REQUEST})")
    try:
        jukebox = Jukebox.load(args.model, _sampling_device(args.device), _dtype(args.dtype))
        for path in jukebox.upsample(args.out_dir, compile=_compile_option(args)):
            print(f"wrote {path}")
    finally:
        distributed.teardown()


def cmd_align(args: argparse.Namespace) -> None:
    from .bundle import load_bundle
    from .lyrics.timing import read_timed_lyrics
    from .models import resolve_model
    from .sample.pipeline import align_audio

    lyrics = read_timed_lyrics(args.lyrics_file)
    bundle = load_bundle(resolve_model(args.model), _device(args.device))
    for path in align_audio(bundle, args.audio, lyrics.text, args.out, args.artist, args.genre, layer=args.layer,
                            head=args.head, lyrics_timing=lyrics.anchors):
        print(f"wrote {path}")


def cmd_models(args: argparse.Namespace) -> None:
    from .models import list_models

    for info in list_models(args.cache):
        labels = ""
        if info.artists or info.genres:
            shown = ", ".join(info.artists[:8]) + (f", ... ({len(info.artists)} in all)" if len(info.artists) > 8 else "")
            labels = f"\n    artists: {shown}\n    genres: {', '.join(info.genres[:8])}"
        print(f"{info.name}  [{info.kind}, {info.megabytes:,.1f} MB]  {info.path}{labels}")


def cmd_codes_build(args: argparse.Namespace) -> None:
    from .data.code_cache import build_code_cache

    cache = build_code_cache(args.vqvae, args.data, args.out, args.metadata, _device(args.device))
    print(f"wrote {args.out}: {len(cache.codes.clips)} files, {len(cache.artists)} artists, {len(cache.genres)} genres")


def cmd_prior_train(args: argparse.Namespace) -> None:
    from .prior.training import train_prior
    from .train import distributed

    main = int(os.environ.get("RANK", "0")) == 0
    try:
        step = train_prior(args.codes, args.level, args.out, args.preset, args.steps, args.batch_size, args.lr,
                           args.save_every, args.seed, fsdp=args.fsdp,
                           checkpoint_activations=args.checkpoint_activations, lyrics_jitter=args.lyrics_jitter)
    finally:
        distributed.teardown()
    if main:
        print(f"trained to step {step}: {args.out}")


def cmd_prior_add_lyrics(args: argparse.Namespace) -> None:
    from .prior.surgery import add_lyrics_to_run

    out = add_lyrics_to_run(args.source, args.out, args.n_tokens, args.encoder_width, args.encoder_depth)
    print(f"wrote {out}: continue with 'openjukebox prior train --level 2 --out {out} --codes CACHE_WITH_LYRICS'")


def cmd_prior_eval(args: argparse.Namespace) -> None:
    from .bundle import prior_location
    from .prior.loading import load_prior
    from .prior.evaluation import evaluate_prior, load_evaluation_codes

    path, vocab_file = prior_location(args.model, args.level)
    prior = load_prior(path, _device(args.device))
    if prior.config.level != args.level:
        raise OpenJukeboxError(f"{args.model}: holds a level-{prior.config.level} prior, not level {args.level}")
    cache = load_evaluation_codes(args.codes, prior, vocab_file)
    report = evaluate_prior(prior, cache, args.windows)
    if args.json:
        print(json.dumps(report))
        return
    print(f"level {report['level']}: {report['nats_per_token']:.3f} nats/token "
          f"({report['bits_per_second']:.0f} bits/s) vs unigram {report['unigram_nats_per_token']:.3f} nats/token "
          f"({report['unigram_bits_per_second']:.0f} bits/s), {report['tokens']} tokens")
    if "other_lyrics_nats_per_token" in report:
        print(f"with other songs' lyrics: {report['other_lyrics_nats_per_token']:.3f} nats/token "
              f"(the lyrics tell it {report['other_lyrics_nats_per_token'] - report['nats_per_token']:.3f})")


def cmd_bundle(args: argparse.Namespace) -> None:
    from .bundle import assemble_bundle

    assemble_bundle(args.vqvae, {0: args.prior0, 1: args.prior1, 2: args.prior2}, args.out, _dtype(args.dtype))
    print(f"wrote bundle {args.out}")


def cmd_download(args: argparse.Namespace) -> None:
    import time

    from .download import download_model

    shown: dict[str, float] = {}  # file name -> when its progress was last printed

    def progress(name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if done != total and name in shown and now - shown[name] < 2:
            return
        shown[name] = now
        of = f" of {total / 1e6:,.1f}" if total else ""
        print(f"{name}: {done / 1e6:,.1f}{of} MB", file=sys.stderr)

    for path in download_model(args.model, args.cache, progress).values():
        print(path)


def cmd_convert_openai(args: argparse.Namespace) -> None:

    from .compat.convert import convert_openai, load_hparams_file

    hparams = load_hparams_file(args.hparams) if args.hparams else None
    convert_openai(args.out, args.vqvae, {0: args.prior0, 1: args.prior1, 2: args.prior2}, args.preset, hparams,
                   args.artist_ids, args.genre_ids, _dtype(args.dtype))
    print(f"wrote bundle {args.out}")


def build_parser() -> argparse.ArgumentParser:
    from .vqvae.config import PRESETS

    parser = _Parser(prog="openjukebox", description="Jukebox on today's PyTorch.")
    parser.add_argument("--version", action="version", version=f"openjukebox {__version__}")
    sub = parser.add_subparsers(dest="group", required=True)
    vq = sub.add_parser("vqvae", help="train and use the three-level VQ-VAE").add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="write a model bundle with random weights (tests, benchmarks)")
    p.add_argument("--preset", default="tiny", choices=[*sorted(PRESETS), "tiny-lyrics", "small-lyrics"])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--artists", nargs="+", default=None, help="artist vocabulary (default: 'unknown')")
    p.add_argument("--genres", nargs="+", default=None, help="genre vocabulary (default: 'unknown')")
    p.set_defaults(func=cmd_init)

    for name, helptext in (("sample", "sample songs from a bundle"), ("upsample", "finish a sampling run")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--model", default=None, help="bundle directory, or the name of one from 'openjukebox models' "
                       "(default: the embedded model)")
        p.add_argument("--device", default="auto")
        p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                       help="the priors' weights and compute type, and the VQ-VAE decoder's compute type "
                            "(bfloat16 halves the priors' memory and decodes about 3x faster on CPU)")
        p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="compile the per-token step with torch.compile (default: for levels long enough to pay "
                            "for the compilation; the codes are the same either way)")
        if name == "upsample":
            p.add_argument("out_dir")
            p.set_defaults(func=cmd_upsample)
            continue
        p.add_argument("--duration", type=float, required=True, help="seconds")
        p.add_argument("--song-seconds", type=float, default=None,
                       help="length of the song this clip begins, for the timing conditioning "
                            "(default: the model's own, else --duration)")
        p.add_argument("--out", required=True, help="output directory; re-running continues it")
        p.add_argument("--artist", default=None)
        p.add_argument("--genre", action="append", help="repeat for several genres")
        p.add_argument("--n", "--n-samples", dest="n", type=int, default=1,
                       help="samples, generated together as one batch (under torchrun, split across the processes: "
                            "spell it --n-samples there, since torchrun takes --n for its own --nnodes)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--temperature", type=float, default=1.0)
        p.add_argument("--top-k", type=int, default=0)
        p.add_argument("--top-p", type=float, default=0.0)
        p.add_argument("--hop-fraction", type=float, default=0.5)
        p.add_argument("--levels", default="2,1,0", help="2 (top only, fast preview), 2,1 or 2,1,0")
        p.add_argument("--prompt", default=None, help="audio to continue")
        p.add_argument("--prompt-seconds", type=float, default=0.0)
        p.add_argument("--lyrics-file", default=None, help="UTF-8 text the song sings (lyrics models); "
                       "an .lrc file also says when each line or word is sung")
        p.add_argument("--schedule", default=None, help="labels changing mid-song: '0:artist=A,genre=G;30:artist=B'")
        p.set_defaults(func=cmd_sample)

    p = sub.add_parser("bundle", help="assemble a model bundle from a trained VQ-VAE and three priors")
    for name in ("vqvae", "prior0", "prior1", "prior2"):
        p.add_argument(f"--{name}", required=True, help="run or checkpoint directory")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="store the weights in this type (float16 halves the size)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("models", help="list the embedded model and the models in the cache, with their labels")
    p.add_argument("--cache", default=None, metavar="DIR", help="default: $OPENJUKEBOX_CACHE, else "
                   "$XDG_CACHE_HOME/openjukebox, else ~/.cache/openjukebox")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("download", help="fetch the released OpenAI Jukebox checkpoints (re-running resumes)")
    p.add_argument("model", help="5b, 5b_lyrics or 1b_lyrics, or one file such as vqvae or upsampler_level_0")
    p.add_argument("--cache", default=None, metavar="DIR", help="where to keep them (default: $OPENJUKEBOX_CACHE, else "
                   "$XDG_CACHE_HOME/openjukebox, else ~/.cache/openjukebox)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("align", help="which words of the lyrics are sung when, in an existing song")
    p.add_argument("audio")
    p.add_argument("--model", required=True, help="bundle with a lyrics prior (a directory or a name from "
                   "'openjukebox models')")
    p.add_argument("--lyrics-file", required=True, help="UTF-8 text of the lyrics; an .lrc file's line or word times "
                   "place the model's windows of lyrics")
    p.add_argument("--out", required=True, help="folder for lyrics.lrc, lyrics.json, lyrics.png")
    p.add_argument("--layer", type=int, default=None, help="read this layer's attention (default: the model's own)")
    p.add_argument("--head", type=int, default=None, help="read this head's attention (default: the model's own)")
    p.add_argument("--artist", default=None)
    p.add_argument("--genre", action="append")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_align)

    p = sub.add_parser("convert-openai", help="a bundle from original Jukebox checkpoint files (.pth.tar)")
    p.add_argument("--vqvae", required=True, help="vqvae.pth.tar")
    for level in range(3):
        p.add_argument(f"--prior{level}", required=True, help=f"prior_level_{level}.pth.tar")
    p.add_argument("--preset", choices=["5b", "5b_lyrics", "1b_lyrics"], default=None,
                   help="the released model (default: the hyperparameters saved in the files, or --hparams)")
    p.add_argument("--hparams", default=None, help="JSON of original hyperparameter dicts: {vqvae, prior0, ...}")
    p.add_argument("--artist-ids", default=None, help="the original artist id table (name;id per line)")
    p.add_argument("--genre-ids", default=None, help="the original genre id table (name;id per line)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="store the weights in this type (bfloat16 halves the size)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_convert_openai)

    codes = sub.add_parser("codes", help="code caches").add_subparsers(dest="command", required=True)
    p = codes.add_parser("build", help="encode a folder of audio once, for prior training")
    p.add_argument("--vqvae", required=True, help="VQ-VAE run or checkpoint directory")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metadata", default=None)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_codes_build)

    prior = sub.add_parser("prior", help="train and measure priors").add_subparsers(dest="command", required=True)
    p = prior.add_parser("train", help="train (or resume) a prior on a codes cache")
    p.add_argument("--level", type=int, required=True, choices=[0, 1, 2])
    p.add_argument("--codes", required=True, help="codes cache directory")
    p.add_argument("--preset", default="tiny", choices=["tiny", "small", "paper", "tiny-lyrics", "small-lyrics"])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fsdp", action="store_true", help="under torchrun, shard the prior across ranks (FSDP)")
    p.add_argument("--checkpoint-activations", action="store_true", help="recompute activations to save memory")
    p.add_argument("--lyrics-jitter", type=int, default=0, metavar="N",
                   help="move each window's lyrics by up to N characters at random (lyrics priors)")
    p.set_defaults(func=cmd_prior_train)
    p = prior.add_parser("add-lyrics", help="turn a trained top prior into a lyrics prior (same predictions until trained)")
    p.add_argument("--from", dest="source", required=True, help="top prior run or checkpoint directory")
    p.add_argument("--out", required=True, help="new run directory")
    p.add_argument("--n-tokens", type=int, default=64, help="lyric characters per window")
    p.add_argument("--encoder-width", type=int, default=None, help="default: half the prior's width")
    p.add_argument("--encoder-depth", type=int, default=3)
    p.set_defaults(func=cmd_prior_add_lyrics)

    p = prior.add_parser("eval", help="teacher-forced NLL per token beside the unigram baseline")
    p.add_argument("--model", required=True, help="bundle, prior run or checkpoint directory")
    p.add_argument("--level", type=int, required=True, choices=[0, 1, 2])
    p.add_argument("--codes", required=True, help="codes cache directory, or a codes .npz from 'vqvae encode'")
    p.add_argument("--windows", type=int, default=32)
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_prior_eval)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="command", required=True)
    p = data.add_parser("synth", help="write deterministic synthetic songs (melody, chords, drums) as WAV files")
    p.add_argument("--out", required=True)
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--sample-rate", type=int, default=22050)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data_synth)

    p = vq.add_parser("train", help="train (or resume training) a VQ-VAE on a folder of audio")
    p.add_argument("--data", required=True, help="folder of audio files (searched recursively)")
    p.add_argument("--out", required=True, help="run directory; re-running on it resumes")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--steps", type=int, required=True, help="train until this step")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=None, help="default: --save-every")
    p.add_argument("--eval-data", default=None, help="folder of held-out audio for periodic evaluation")
    p.add_argument("--metadata", default=None, help="CSV/JSONL labels table (default: DATA/metadata.csv|jsonl)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_vqvae_train)

    p = vq.add_parser("encode", help="encode audio files to a codes .npz (all three levels)")
    p.add_argument("audio", nargs="+")
    p.add_argument("--model", required=True, help="run or checkpoint directory")
    p.add_argument("--out", required=True, help="codes file to write (.npz)")
    p.add_argument("--offset", type=float, default=0.0, help="seconds to skip at the start of each file")
    p.add_argument("--duration", type=float, default=None, help="seconds to encode (default: to the end)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_vqvae_encode)

    p = vq.add_parser("decode", help="decode one level of a codes file to audio")
    p.add_argument("codes")
    p.add_argument("--model", required=True)
    p.add_argument("--level", type=int, required=True, choices=[0, 1, 2])
    p.add_argument("--out", required=True, help=".wav or .flac")
    p.add_argument("--clip", type=int, default=None, help="which clip of the codes file (default: all)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_vqvae_decode)

    p = vq.add_parser("eval", help="spectral convergence, L2 and codebook usage per level on a folder of audio")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--windows-per-file", type=int, default=8)
    p.add_argument("--cache", default=None,
                   help="where decoded audio is cached (default: RUN_DIR/cache, or ~/.cache/openjukebox for a bundle)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_vqvae_eval)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"openjukebox: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        from .devices import choose_threads

        choose_threads(getattr(args, "threads", None))
        args.func(args)
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
