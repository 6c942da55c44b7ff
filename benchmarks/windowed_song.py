"""Sampling speed of a song longer than one window (7 windows of 256 tokens at hop 0.5, `small` top prior, random
weights): each window after the first re-reads its known half. Run it on two checkouts to compare them.

    python benchmarks/windowed_song.py LABEL
"""

import time, torch, sys
from openjukebox.prior.config import prior_preset
from openjukebox.prior.model import Prior
from openjukebox.prior.conditioning import Labels
from openjukebox.sample.ancestral import sample_level
torch.manual_seed(0)
prior = Prior(prior_preset("small", 2, 512, 128, 22050, 1, 1)).eval()
labels = Labels(torch.zeros(1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.long), torch.full((1,), 200 * 22050), torch.zeros(1, dtype=torch.long))
start = time.perf_counter()
codes = sample_level(prior, 1024, labels, seed=0, hop_fraction=0.5)
t = time.perf_counter() - start
print(f"{sys.argv[1]}: 1024 tokens (7 windows of 256, hop 0.5) in {t:.1f}s = {1024 / t:.0f} tok/s")
