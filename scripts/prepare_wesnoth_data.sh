#!/usr/bin/env bash
# Real music for training and measuring the VQ-VAE: tracks of Debian's wesnoth-1.16-music (GPL-2, see
# /usr/share/doc/wesnoth-1.16-music/copyright), 44.1 kHz stereo OGG. Links six tracks into DIR/train and two
# different tracks into DIR/heldout. Nothing is copied into the repository.
# Usage: scripts/prepare_wesnoth_data.sh [DIR]   (default data/wesnoth)
set -eu
dir=${1:-data/wesnoth}
music=/usr/share/games/wesnoth/1.16/data/core/music
if [ ! -d "$music" ]; then
  apt-get update -qq && apt-get install -y -qq wesnoth-1.16-music
fi
mkdir -p "$dir/train" "$dir/heldout"
for t in battle knolls wanderer heroes_rite the_deep_path northerners; do ln -sf "$music/$t.ogg" "$dir/train/"; done
for t in traveling_minstrels frantic; do ln -sf "$music/$t.ogg" "$dir/heldout/"; done
echo "$dir/train: $(ls "$dir/train" | wc -l) tracks; $dir/heldout: $(ls "$dir/heldout" | wc -l) tracks"
