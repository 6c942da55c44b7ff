"""Sampling speed against the reference implementation (jukebox-infer, the MIT port of the original code): the same
original-architecture models, random weights, converted by openjukebox.compat, sampled one window each by both in
one process on the same machine. Prints tokens/s of each and our speed-up, per level.

    pip install -e ".[parity]"; python benchmarks/vs_reference.py --tokens 512 --width 256

Sizes default to a small model of the released structure (5b-style top prior: merged decoder, row/column/
previous-row layers; upsamplers with the conditioner). On a GPU, --device cuda; --width 1920 --depth 72 --n-ctx
8192 --blocks 128 gives the released upsampler size.
"""

from __future__ import annotations

import argparse
import time

import torch

from openjukebox.compat.openai import convert_prior_state_dict
from openjukebox.compat.released import prior_config, vqvae_config
from openjukebox.prior.conditioning import Labels
from openjukebox.prior.model import Prior
from openjukebox.sample.ancestral import sample_window


def models(level: int, args: argparse.Namespace):
    from jukebox_infer.hparams import setup_hparams
    from jukebox_infer.make_models import make_prior, make_vqvae

    vq_hps = setup_hparams("", dict(levels=3, downs_t=(3, 2, 2), strides_t=(2, 2, 2), l_bins=2048, emb_width=64,
                                    width=32, depth=4, dilation_growth_rate=3, hvqvae_multipliers=(2, 1, 1),
                                    sample_length=args.n_ctx * 128))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.cuda.LongTensor = torch.cuda.LongTensor if args.device.startswith("cuda") else torch.LongTensor
    device, b, n = torch.device(args.device), args.batch, args.tokens
    print(f"device {device}, threads {torch.get_num_threads()}, width {args.width}, depth {args.depth}, "
          f"n_ctx {args.n_ctx}, {n} tokens, batch {b}")
    print("level  reference tok/s  openjukebox tok/s  speed-up")
    for level in (2, 1, 0):
        torch.manual_seed(0)
        reference, ours = models(level, args)
        total = torch.full((b,), 200 * 44100, device=device)
        offset = torch.zeros(b, dtype=torch.long, device=device)
        artist = torch.zeros(b, dtype=torch.long, device=device)
        genres = torch.full((b, 5), -1, device=device)
        genres[:, 0] = 0
        y = torch.cat([total[:, None], offset[:, None], torch.full((b, 1), reference.sample_length, device=device),
                       artist[:, None], genres], dim=1)
        upper = torch.randint(0, 2048, (b, args.n_ctx // 4), device=device) if level < 2 else None
        labels = Labels(artist, genres, total, offset)
        with torch.inference_mode():
            x_cond, y_cond, _ = reference.get_cond([] if upper is None else [upper], y)
            ref_time = timed(lambda: reference.prior.sample(b, x_cond, y_cond, None, sample_tokens=n))
            our_time = timed(lambda: sample_window(ours, n, torch.empty(b, 0, dtype=torch.long, device=device), labels,
                                                   upper, torch.Generator(device).manual_seed(0)))
        print(f"{level:5d}  {b * n / ref_time:15.1f}  {b * n / our_time:17.1f}  {ref_time / our_time:8.2f}x")


if __name__ == "__main__":
    main()
