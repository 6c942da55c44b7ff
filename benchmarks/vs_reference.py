"""Sampling and VQ-VAE decoding speed against the reference implementation (jukebox-infer, the MIT port of the
original code): the same original-architecture models, random weights, converted by openjukebox.compat, run by
both in one process on the same machine, in alternating runs; medians of --runs runs each.

    pip install -e ".[parity]"
    OMP_NUM_THREADS=2 python benchmarks/vs_reference.py --tokens 512 --width 256 --depth 12 --runs 5 --batch 1 4

Per prior and batch: tokens/s of the reference, of openjukebox eager and compiled (the compile time is reported
apart: it is paid once per process and structure, and sampling/decode.py decides when it pays), and the ratios.
Then the VQ-VAE at the released hyperparameters decoding level-0 codes, and encoding audio at all three levels:
seconds of audio per second (real-time factor) of each. Sizes default to small models of the released structure (5b-style top prior: merged decoder,
row/column/previous-row layers; an upsampler with its conditioner). On a GPU, --device cuda.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from openjukebox.compat.openai import convert_prior_state_dict, convert_vqvae_state_dict
from openjukebox.compat.released import RELEASED, prior_config, vqvae_config
from openjukebox.prior.conditioning import Labels
from openjukebox.prior.model import Prior
from openjukebox.sample.ancestral import sample_window
from openjukebox.vqvae.model import VQVAE

VQVAE_HPS = {**RELEASED["vqvae"], "sample_length": 1024 * 128}


def models(level: int, args: argparse.Namespace):
    from jukebox_infer.hparams import setup_hparams
    from jukebox_infer.make_models import make_prior, make_vqvae

    vq_hps = setup_hparams("", dict(VQVAE_HPS, sample_length=args.n_ctx * 128))
    common = dict(level=level, n_ctx=args.n_ctx, prior_width=args.width, prior_depth=args.depth, attn_order=2,
                  blocks=args.blocks, labels=True, y_bins=(120, 4111), t_bins=128, max_bow_genre_size=5,
                  min_duration=60.0, max_duration=600.0)
    if level == 2:
        hps = dict(common, heads=args.heads, merged_decoder=True)
    else:
        hps = dict(common, heads=1, cond_width=args.width // 2, cond_depth=16, cond_dilation_growth_rate=3,
                   cond_dilation_cycle=8, cond_c_res=1, cond_res_scale=level == 1)
    hps = setup_hparams("", hps)
    with torch.device("cpu"):
        reference = make_prior(hps, make_vqvae(vq_hps, "cpu"), "cpu").to(args.device).eval()
    ours = Prior(prior_config(hps, vqvae_config(vq_hps)))
    ours.load_saved_state(convert_prior_state_dict(reference.state_dict(), not ours.config.merged_decoder))
    return reference, ours.to(args.device).eval()


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def prior_rows(level: int, b: int, args: argparse.Namespace) -> str:
    torch.manual_seed(0)
    reference, ours = models(level, args)
    device, n = torch.device(args.device), args.tokens
    total = torch.full((b,), 200 * 44100, device=device)
    offset = torch.zeros(b, dtype=torch.long, device=device)
    artist = torch.zeros(b, dtype=torch.long, device=device)
    genres = torch.full((b, 5), -1, device=device)
    genres[:, 0] = 0
    y = torch.cat([total[:, None], offset[:, None], torch.full((b, 1), reference.sample_length, device=device),
                   artist[:, None], genres], dim=1)
    upper = torch.randint(0, 2048, (b, args.n_ctx // 4), device=device) if level < 2 else None
    labels = Labels(artist, genres, total, offset)
    empty = torch.empty(b, 0, dtype=torch.long, device=device)
    with torch.inference_mode():
        x_cond, y_cond, _ = reference.get_cond([] if upper is None else [upper], y)
        runs = {
            "reference": lambda: reference.prior.sample(b, x_cond, y_cond, None, sample_tokens=n),
            "eager": lambda: sample_window(ours, n, empty, labels, upper, seed=0, compile=False),
            "compiled": lambda: sample_window(ours, n, empty, labels, upper, seed=0, compile=True),
        }
        compile_seconds = timed(runs["compiled"]) - timed(runs["compiled"])  # first call traces and compiles
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.runs):  # alternating, so that a change in the machine's load hits all three alike
            for name, run in runs.items():
                times[name].append(timed(run))
    rate = {name: b * n / statistics.median(t) for name, t in times.items()}
    return (f"| {level} | {b} | {rate['reference']:.0f} | {rate['eager']:.0f} | {rate['compiled']:.0f} | "
            f"{rate['eager'] / rate['reference']:.2f}× | {rate['compiled'] / rate['reference']:.2f}× | "
            f"{compile_seconds:.0f} s |")


def vqvae_row(args: argparse.Namespace) -> str:
    from jukebox_infer.hparams import setup_hparams
    from jukebox_infer.make_models import make_vqvae

    torch.manual_seed(0)
    hps = setup_hparams("", dict(VQVAE_HPS, sample_length=args.vqvae_seconds * 44100))
    with torch.device("cpu"):
        reference = make_vqvae(hps, "cpu").to(args.device).eval()
    ours = VQVAE(vqvae_config(hps))
    ours.load_state_dict(convert_vqvae_state_dict(reference.state_dict()))
    ours = ours.to(args.device).eval()
    tokens = args.vqvae_seconds * 44100 // 8
    codes = torch.randint(0, 2048, (1, tokens), device=args.device)
    with torch.inference_mode():
        runs = {"reference": lambda: reference.decode([codes], start_level=0, end_level=1),
                "openjukebox": lambda: ours.decode(codes, 0),
                "openjukebox bf16": lambda: ours.decode(codes, 0, dtype=torch.bfloat16)}
        expected = runs["reference"]().float().reshape(-1)  # (1, T, 1): the reference keeps time before channels
        error = (runs["openjukebox bf16"]().reshape(-1) - expected).norm() / expected.norm()
        for run in runs.values():
            run()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.runs):
            for name, run in runs.items():
                times[name].append(timed(run))
    rtf = {name: args.vqvae_seconds / statistics.median(t) for name, t in times.items()}
    return (f"| VQ-VAE decode, level 0, {args.vqvae_seconds} s | {rtf['reference']:.2f}× real time | "
            f"{rtf['openjukebox']:.2f}× real time | {rtf['openjukebox'] / rtf['reference']:.2f}× | "
            f"{rtf['openjukebox bf16']:.2f}× real time | {rtf['openjukebox bf16'] / rtf['reference']:.2f}× | "
            f"{-20 * torch.log10(error).item():.1f} dB |\n" + vqvae_encode_row(reference, ours, args))


def vqvae_encode_row(reference, ours, args: argparse.Namespace) -> str:
    """All three levels' codes of --vqvae-seconds of audio, in one piece; the codes must agree."""
    torch.manual_seed(1)
    samples = args.vqvae_seconds * 44100 // 128 * 128  # whole top-level tokens: the reference drops a partial one
    audio = torch.randn(1, 1, samples, device=args.device) * 0.1
    with torch.inference_mode():
        runs = {"reference": lambda: reference.encode(audio.transpose(1, 2)),
                "openjukebox": lambda: ours.encode(audio, chunk_seconds=None)}
        agree = min((a == b).float().mean().item() for a, b in zip(runs["reference"](), runs["openjukebox"]()))
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.runs):
            for name, run in runs.items():
                times[name].append(timed(run))
    rtf = {name: samples / 44100 / statistics.median(t) for name, t in times.items()}
    return (f"| VQ-VAE encode, 3 levels, {args.vqvae_seconds} s | {rtf['reference']:.2f}× real time | "
            f"{rtf['openjukebox']:.2f}× real time | {rtf['openjukebox'] / rtf['reference']:.2f}× | | | "
            f"codes agree: {agree:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=32)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--levels", type=int, nargs="*", default=[2, 0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--vqvae-seconds", type=int, default=10, help="audio decoded per VQ-VAE run (0: skip)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    # jukebox-infer checks `isinstance(x, torch.cuda.LongTensor)`; on CPU the CPU type is the right one.
    torch.cuda.LongTensor = torch.cuda.LongTensor if args.device.startswith("cuda") else torch.LongTensor
    print(f"device {args.device}, threads {torch.get_num_threads()}, width {args.width}, depth {args.depth}, "
          f"n_ctx {args.n_ctx}, {args.tokens} tokens per run, median of {args.runs} alternating runs\n")
    print("| level | batch | reference tok/s | eager tok/s | compiled tok/s | eager / reference | "
          "compiled / reference | compile time |")
    print("|---|---|---|---|---|---|---|---|")
    for level in args.levels:
        for b in args.batch:
            print(prior_rows(level, b, args), flush=True)
    if args.vqvae_seconds:
        print("\n| | reference | openjukebox | openjukebox / reference | openjukebox bf16 | bf16 / reference | "
              "bf16 signal-to-error vs reference |\n|---|---|---|---|---|---|---|")
        print(vqvae_row(args), flush=True)


if __name__ == "__main__":
    main()
