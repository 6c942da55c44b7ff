"""Full-size check of the released models' conversion: random weights at the exact released hyperparameters,
written in the original checkpoint format (as the original code saves them, fp16 Conv1D weights for 5b/5b_lyrics),
then `openjukebox convert-openai` in a separate process, with its peak memory (max RSS), time and file sizes;
then a few tokens sampled from each converted prior on this machine.

    python benchmarks/full_size_conversion.py --top prior_5b --work /tmp/fullsize --dtype bfloat16 --tokens 8

Needs the `parity` extra (jukebox-infer builds the original modules, on the meta device: no memory) and disk for
the original files plus the bundle (5b: about 10 GB original + 10 GB bf16 bundle + 2 × 4 GB upsamplers).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


def write_original(name: str, path: Path, vqvae) -> None:
    from jukebox_infer.make_models import make_prior

    from openjukebox.compat.released import RELEASED

    from jukebox_infer.hparams import setup_hparams
    hps = setup_hparams("", {k: v for k, v in RELEASED[name].items() if k not in ("sr",)})
    with torch.device("meta"):
        structure = make_prior(hps, vqvae, "meta").state_dict()
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, meta in structure.items():
        state[key] = (torch.randn(meta.shape, generator=generator) * 0.02).to(meta.dtype)
    torch.save({"hps": dict(hps), "model": state, "step": 0}, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", default="prior_5b", choices=["prior_5b", "prior_5b_lyrics", "prior_1b_lyrics"])
    parser.add_argument("--work", required=True)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--tokens", type=int, default=8, help="tokens to sample per prior after conversion (0: none)")
    args = parser.parse_args()
    torch.cuda.LongTensor = torch.LongTensor
    from jukebox_infer.hparams import setup_hparams
    from jukebox_infer.make_models import make_vqvae

    from openjukebox.compat.released import RELEASED

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    vq_hps = setup_hparams("", {**RELEASED["vqvae"], "sample_length": 1048576})
    vqvae = make_vqvae(vq_hps, "cpu")
    files = {"vqvae": work / "vqvae.pth.tar", "prior0": work / "prior_level_0.pth.tar",
             "prior1": work / "prior_level_1.pth.tar", "prior2": work / f"{args.top}.pth.tar"}
    if not files["vqvae"].exists():
        torch.save({"hps": dict(vq_hps), "model": vqvae.state_dict(), "step": 0}, files["vqvae"])
    for key, name in (("prior0", "upsampler_level_0"), ("prior1", "upsampler_level_1"), ("prior2", args.top)):
        if not files[key].exists():
            start = time.perf_counter()
            write_original(name, files[key], vqvae)
            print(f"wrote {files[key]} ({files[key].stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - start:.0f}s",
                  flush=True)
    preset = {"prior_5b": "5b", "prior_5b_lyrics": "5b_lyrics", "prior_1b_lyrics": "1b_lyrics"}[args.top]
    out = work / f"bundle-{preset}-{args.dtype}"
    if not (out / "manifest.json").exists():
        command = [sys.executable, "-m", "openjukebox", "convert-openai", "--preset", preset, "--dtype", args.dtype,
                   "--out", str(out), *[a for k, v in files.items() for a in (f"--{k}", str(v))]]
        start = time.perf_counter()
        process = subprocess.Popen(command)
        peaks = {"RssAnon": 0, "RssFile": 0}
        while process.poll() is None:
            peaks = {k: max(v, memory(process.pid).get(k, 0)) for k, v in peaks.items()}
            time.sleep(0.05)
        if process.returncode:
            sys.exit(f"convert-openai failed ({process.returncode})")
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        originals = sum(f.stat().st_size for f in files.values()) / 2**30
        converted = sum(f.stat().st_size for f in out.rglob("*.safetensors")) / 2**30
        print(json.dumps({"convert_seconds": round(seconds), "convert_peak_rss_gib": round(peak, 2),
                          "convert_peak_anonymous_gib": round(peaks["RssAnon"] / 2**20, 2),
                          "convert_peak_file_backed_gib": round(peaks["RssFile"] / 2**20, 2),
                          "original_files_gib": round(originals, 2), "bundle_gib": round(converted, 2)}), flush=True)
    if args.tokens:
        sample_check(out, args)


def memory(pid: int | str = "self") -> dict[str, int]:
    """Resident memory in KiB: RssAnon (the process's own allocations) and RssFile (memory-mapped files, which
    the kernel can drop and re-read at will)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines) if k in ("RssAnon", "RssFile")}


def sample_check(out: Path, args: argparse.Namespace) -> None:
    from openjukebox.bundle import load_bundle
    from openjukebox.sample.ancestral import sample_window

    dtype = torch.bfloat16 if args.dtype == "bfloat16" else None
    start = time.perf_counter()
    bundle = load_bundle(out, dtype=dtype)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"load_seconds": round(time.perf_counter() - start), "load_peak_rss_gib": round(peak, 2)}))
    for level in (2, 1, 0):
        prior = bundle.prior(level)
        labels = bundle.labels(None, None, 200 * 44100, 1)
        upper = torch.zeros(1, prior.config.n_ctx // 4, dtype=torch.long) if level < 2 else None
        start = time.perf_counter()
        with torch.inference_mode():
            codes = sample_window(prior, args.tokens, torch.empty(1, 0, dtype=torch.long), labels, upper, seed=0)
        seconds = time.perf_counter() - start
        print(json.dumps({"level": level, "tokens": args.tokens, "seconds": round(seconds, 1),
                          "codes_in_range": bool(((codes >= 0) & (codes < prior.config.bins)).all()),
                          "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
                          **{f"{k}_gib": round(v / 2**20, 2) for k, v in memory().items()}}), flush=True)


if __name__ == "__main__":
    main()
