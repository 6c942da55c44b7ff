#!/bin/sh
# Train a small lyrics model on festival-sung songs with known word timing and measure how close its alignment
# comes to the truth (docs/lyrics-alignment.md). Resumable: re-run the same command after an interruption.
#   apt-get install festival festvox-kallpc16k
#   sh scripts/lyrics_alignment_experiment.sh [DATA_DIR] [RUN_DIR] [STEPS] [VQVAE] [TRAINING]
# VQVAE: `embedded` (the package's VQ-VAE, trained on orchestral music; nothing to train) or `tiny` (trained here
# on 60 of the sung songs). TRAINING: the 180 training songs, `even` or `uneven` timing; `even-timed` and
# `uneven-timed` give each an LRC file of its word times, so training takes its lyrics windows from them.
set -e
D=${1:-data/sung}
R=${2:-runs/sung}
STEPS=${3:-20000}
VQVAE=${4:-embedded}
TRAINING=${5:-even}
case $TRAINING in
  even) OPTIONS="" ;;
  even-timed) OPTIONS="--lrc" ;;
  uneven) OPTIONS="--rest 0.05 1.0 --breaks 1.0 3.0" ;;
  uneven-timed) OPTIONS="--rest 0.05 1.0 --breaks 1.0 3.0 --lrc" ;;
  *) echo "TRAINING must be even, even-timed, uneven or uneven-timed, not $TRAINING"; exit 1 ;;
esac
TRAIN=$D/train-all
[ "$TRAINING" = even ] || TRAIN=$D/train-$TRAINING
if [ ! -f "$TRAIN/truth.json" ]; then  # 180 training songs, three seeds of 60
  for part in "0 train-" "3 train2-" "4 train3-"; do
    set -- $part
    python scripts/make_sung_songs.py --out "$TRAIN.partial" --songs 60 --seconds 20 --seed "$1" --prefix "$2" $OPTIONS
  done
  mv "$TRAIN.partial" "$TRAIN"
fi
[ -f "$D/heldout/truth.json" ] || python scripts/make_sung_songs.py --out "$D/heldout" --songs 10 --seconds 20 --seed 1
[ -f "$D/validation/truth.json" ] || python scripts/make_sung_songs.py --out "$D/validation" --songs 10 --seconds 20 --seed 2
# The same songs with uneven timing: longer rests, and 1-3 s of silence after every line.
for part in "heldout 1" "validation 2"; do
  set -- $part
  [ -f "$D/$1-uneven/truth.json" ] || python scripts/make_sung_songs.py --out "$D/$1-uneven" --songs 10 --seconds 20 \
    --seed "$2" --rest 0.05 1.0 --breaks 1.0 3.0
done
if [ "$VQVAE" = tiny ]; then
  [ -f "$D/train/truth.json" ] || python scripts/make_sung_songs.py --out "$D/train" --songs 60 --seconds 20 --seed 0
  openjukebox vqvae train --data "$D/train" --out "$R/vqvae" --preset tiny --steps 600
  V=$R/vqvae
else
  V=$(python -c "from openjukebox.models import EMBEDDED_PATH; print(EMBEDDED_PATH / 'vqvae')")
fi
[ -f "$R/cache/codes.npz" ] || openjukebox codes build --vqvae "$V" --data "$TRAIN" --out "$R/cache"
openjukebox prior train --level 2 --codes "$R/cache" --preset small-lyrics --out "$R/top" --steps "$STEPS" \
  --batch-size 8 --save-every 1000
for level in 1 0; do  # the upsamplers play no part in alignment; a bundle needs them
  openjukebox prior train --level $level --codes "$R/cache" --preset tiny --out "$R/up$level" --steps 2
done
[ -f "$R/bundle/manifest.json" ] || openjukebox bundle make --vqvae "$V" --prior0 "$R/up0" --prior1 "$R/up1" --prior2 "$R/top" --out "$R/bundle"
# Choose the head with the lowest mean error on validation songs; report that head's row on the held-out ones.
for set in validation heldout validation-uneven heldout-uneven; do
  python scripts/measure_alignment.py --model "$R/bundle" --data "$D/$set" --out "$R/alignment-$set" --scan
done
for set in validation-uneven heldout-uneven; do  # told when each line starts, the model places the words
  python scripts/measure_alignment.py --model "$R/bundle" --data "$D/$set" --out "$R/alignment-$set-lines" --scan \
    --line-timing
done
