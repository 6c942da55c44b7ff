#!/bin/sh
# Train a small lyrics model on festival-sung songs with known word timing and measure how close its alignment
# comes to the truth (docs/lyrics-alignment.md). Resumable: re-run the same command after an interruption.
#   apt-get install festival festvox-kallpc16k; sh scripts/lyrics_alignment_experiment.sh [DATA_DIR] [RUN_DIR] [STEPS]
set -e
D=${1:-data/sung}
R=${2:-runs/sung}
STEPS=${3:-20000}
[ -f "$D/train/truth.json" ] || python scripts/make_sung_songs.py --out "$D/train" --songs 60 --seconds 20 --seed 0
[ -f "$D/heldout/truth.json" ] || python scripts/make_sung_songs.py --out "$D/heldout" --songs 10 --seconds 20 --seed 1
[ -f "$D/validation/truth.json" ] || python scripts/make_sung_songs.py --out "$D/validation" --songs 10 --seconds 20 --seed 2
openjukebox vqvae train --data "$D/train" --out "$R/vqvae" --preset tiny --steps 600
[ -f "$R/cache/codes.npz" ] || openjukebox codes build --vqvae "$R/vqvae" --data "$D/train" --out "$R/cache"
openjukebox prior train --level 2 --codes "$R/cache" --preset small-lyrics --out "$R/top" --steps "$STEPS" --batch-size 8
for level in 1 0; do  # the upsamplers play no part in alignment; a bundle needs them
  openjukebox prior train --level $level --codes "$R/cache" --preset tiny --out "$R/up$level" --steps 2
done
[ -f "$R/bundle/manifest.json" ] || openjukebox bundle --vqvae "$R/vqvae" --prior0 "$R/up0" --prior1 "$R/up1" --prior2 "$R/top" --out "$R/bundle"
# Choose the head with the lowest mean error on the validation songs; report that head's row on the held-out songs.
python scripts/measure_alignment.py --model "$R/bundle" --data "$D/validation" --out "$R/alignment-validation" --scan
python scripts/measure_alignment.py --model "$R/bundle" --data "$D/heldout" --out "$R/alignment" --scan
