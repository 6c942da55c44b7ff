"""Peak memory of encoding (all three levels) and decoding (level 0) long audio on CPU, chunked vs in one piece.

Each measurement runs in a fresh process and reports its peak resident memory. The reference is the same
model encoding/decoding without chunks, which is what memory would be without overlapping-chunk processing.

    python benchmarks/long_audio_memory.py --preset paper --minutes 10 --reference-minutes 1
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(preset: str, minutes: float, chunked: bool) -> dict:
    import torch

    from openjukebox.vqvae import VQVAE, preset as get_preset

    torch.manual_seed(0)
    model = VQVAE(get_preset(preset)).eval()
    for cb in model.codebooks:
        cb.initialise(torch.randn(4096, model.config.emb_width))
    n = int(minutes * 60 * model.config.sample_rate)
    t = torch.arange(n, dtype=torch.float32) / model.config.sample_rate
    audio = (0.3 * torch.sin(2 * torch.pi * 220 * t) * torch.sin(2 * torch.pi * 0.5 * t))[None, None]
    del t
    chunk = 20.0 if chunked else None
    start = time.perf_counter()
    with torch.inference_mode():
        codes = model.encode(audio, chunk_seconds=chunk)
        decoded = model.decode(codes[0], 0, chunk_seconds=chunk)
    seconds = time.perf_counter() - start
    assert decoded.shape[-1] >= n
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"preset": preset, "minutes": minutes, "chunked": chunked, "peak_rss_mib": round(peak_mib),
            "seconds": round(seconds, 1), "tokens": [c.shape[-1] for c in codes]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--reference-minutes", type=float, default=1.0,
                        help="length for the unchunked reference (its memory grows with length)")
    parser.add_argument("--child", nargs=3, metavar=("PRESET", "MINUTES", "CHUNKED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], float(args.child[1]), args.child[2] == "1")))
        return
    rows = []
    for minutes, chunked in ((args.reference_minutes, False), (args.reference_minutes, True), (args.minutes, True)):
        out = subprocess.run([sys.executable, __file__, "--child", args.preset, str(minutes), "1" if chunked else "0"],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    ref, same_len, long = rows
    print(f"peak memory, chunked vs unchunked at {args.reference_minutes} min: "
          f"{same_len['peak_rss_mib'] / ref['peak_rss_mib']:.2f}x")
    print(f"peak memory, chunked {args.minutes} min vs unchunked {args.reference_minutes} min: "
          f"{long['peak_rss_mib'] / ref['peak_rss_mib']:.2f}x ({long['peak_rss_mib']} MiB)")


if __name__ == "__main__":
    main()
