"""Reproduce the embedded model from scratch: data, VQ-VAE, code caches, three priors, fp16 bundle, metrics.

Every stage is resumable: re-running the script skips what is finished and continues a training run from its
last checkpoint, so it survives being stopped. On a 2-core CPU, v10 takes about 5 hours (v9's, then its own 8
minutes), v9 about 5 (v7's, then its own 10 minutes), v7 about 5 (v5's 4.5, then its own 20 minutes), v5 about 4.5
(v4's 3.5, then its own hour), v4 about 3.5, v3 about 3, v1 about 2 and v2 about 2.5; v6, on top of v5, about 3
more, and v8, on top of v7, half an hour more. v11 (tried) fine-tunes v10's VQ-VAE whole (an hour on one thread)
and refines every prior on the new codes (2 hours more); v12 refines v11's top prior (40 minutes more).

    python scripts/train_embedded.py                      # everything, into runs/embedded-v10 (v4 to v9 first)
    python scripts/train_embedded.py --install            # then copy the bundle into the package
    python scripts/train_embedded.py --recipe v2          # the larger version tried (docs/embedded-model.md)
    python scripts/train_embedded.py --recipe v3 --vqvae runs/v1-vqvae  # new priors on a VQ-VAE trained before

A recipe that fine-tunes another (v5 fine-tunes v4) trains that one first, into its own folder, unless --init names
a bundle of it (with --vqvae, its VQ-VAE). On two or more cores the priors can train at once, one process (and one
thread) each:

    python scripts/train_embedded.py --recipe v4 --stage codes                     # data, VQ-VAE, code caches
    for level in 2 1 0; do OMP_NUM_THREADS=1 python scripts/train_embedded.py --recipe v4 --stage prior$level & done
    wait
    for level in 1 0; do OMP_NUM_THREADS=1 python scripts/train_embedded.py --recipe v4 --stage refine$level & done
    wait
    python scripts/train_embedded.py --recipe v4                                   # v4's bundle and metrics
    FROM_V4="--init runs/embedded-v4/bundle --vqvae runs/embedded-v4/bundle/vqvae"
    python scripts/train_embedded.py $FROM_V4 --stage codes                        # v5's data and code caches
    for level in 1 0; do OMP_NUM_THREADS=1 python scripts/train_embedded.py $FROM_V4 --stage refine$level & done
    wait
    python scripts/train_embedded.py $FROM_V4 --install                            # v5's bundle and metrics
    V6="--recipe v6 $FROM_V4"                                                     # v6 (tried): wider upsamplers
    for level in 1 0; do OMP_NUM_THREADS=1 python scripts/train_embedded.py $V6 --stage prior$level & done

Data: Debian packages of freely licensed game music (v1, v3, v4: wesnoth-1.16-music; v2 and v5 on: four more), each
installed with apt if missing; licences in /usr/share/doc/PACKAGE/copyright. A track's artist and genre tags give its
labels, with a per-package fallback where a tag is missing.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import soundfile
import torch

from openjukebox.bundle import MANIFEST, assemble_bundle, prior_location
from openjukebox.prior.loading import load_prior
from openjukebox.vqvae.code_cache import CODES, build_code_cache
from openjukebox.data.dataset import AudioFolder
from openjukebox.fileio import atomic_write_text
from openjukebox.prior.evaluation import evaluate_prior, load_evaluation_codes
from openjukebox.prior.training import train_prior
from openjukebox.vqvae.evaluation import evaluate_vqvae
from openjukebox.vqvae.loading import load_vqvae
from openjukebox.vqvae.noise_fill_fitting import add_noise_fill
from openjukebox.vqvae.training import train_vqvae

@dataclasses.dataclass(frozen=True)
class Source:
    """One Debian package of freely licensed music: where its tracks are, and the labels its tags lack."""
    package: str
    folder: str
    pattern: str
    licence: str
    holder: str  # the copyright holder, as the package's copyright file names it
    artist: str = ""  # when a track has no artist tag ("" trains the `unknown` artist)
    genre: str = ""  # when a track has no genre tag
    heldout: tuple[str, ...] = ()  # pieces never seen by any model
    skip: tuple[str, ...] = ()


WESNOTH = Source("wesnoth-1.16-music", "/usr/share/games/wesnoth/1.16/data/core/music", "*.ogg", "GPL-2+",
                 "the Battle for Wesnoth project", heldout=("frantic", "traveling_minstrels"), skip=("silence",))
MORE_SOURCES = (
    Source("colobot-common-sounds", "/usr/share/games/colobot/music", "*.ogg", "GPL-3+",
           "Daniel Roux, EPSITEC SA & TerranovaTeam", genre="soundtrack", heldout=("Proton",)),
    Source("drascula-music", "/usr/share/scummvm/drascula/audio", "track*.ogg", "the Drascula licence (BSD-like)",
           "Alcachofa Soft S.L.", genre="adventure game", heldout=("track23",)),
    Source("asc-music", "/usr/share/games/asc/music", "*.mp3", "GPL-2+", "Michael Kievernagel",
           artist="Michael Kievernagel", genre="game"),
    # Frozen-Bubble's music as OGG is in frozen-bubble-data (Debian: GPL-2, the Frozen-Bubble Team); fb-music-high,
    # named here until version 10, holds only a tracker module of it, under the composer's GPL-2+.
    Source("frozen-bubble-data", "/usr/share/games/frozen-bubble/snd", "*zik*.ogg",
           "GPL-2 (the game's; its composer offers the same music under GPL-2+ in fb-music-high)",
           "the Frozen-Bubble Team", artist="Matthias Le Bidan", genre="game"),
)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What one version of the embedded model was trained on, and at what size."""
    sources: tuple[Source, ...]
    licence: str  # of the weights: one that every source's licence allows
    min_seconds: float  # shorter tracks are left out (jingles, sound effects)
    vqvae_tracks: tuple[str, ...] | None  # the VQ-VAE's training tracks, by name; None: all the training music
    upsampler: dict | None  # laid over the `small` preset's upsamplers (prior.config), None: the preset
    prior_steps: dict[int, int] = dataclasses.field(default_factory=lambda: {2: 6000, 1: 3000, 0: 3000})
    cooldown_steps: int = 0  # each prior's last steps lower the learning rate linearly to 0
    # The upsamplers draw at this temperature unless asked otherwise (the manifest's upsampling_temperature): one
    # for both, or one a level. v1's blur the top level's harmony into noise at 1 and keep most of it at 0.7; v3's
    # keep it at 1 and turn dull and quiet colder (docs/embedded-model.md, "Upsampling temperature").
    upsampling_temperature: float | dict[int, float] = 0.7
    # ... and the top level at this one (the manifest's temperature).
    temperature: float = 1.0
    # Then these priors are fine-tuned this many more steps (`prior train --init`), at refine_lr cooled to 0 over
    # the whole run: a second, gentler pass that left the upsamplers surer of their codes (version 4).
    refine_steps: dict[int, int] = dataclasses.field(default_factory=dict)
    refine_lr: float = 5e-4
    # A recipe that only fine-tunes: the recipe whose bundle it starts from (--init), the refine stages its whole work.
    fine_tunes: str | None = None
    # Then the VQ-VAE's decoders of these levels alone are fine-tuned this many steps on all the training music (the
    # codes stay, so the priors still fit).
    decoder_steps: int = 0
    decoder_levels: tuple[int, ...] = (0,)
    # The refine runs train each window's artist, and its genres, as 'unknown' with this probability, so that a song
    # asked for without labels (the first command's) is conditioned on labels that learned the music as a whole.
    label_dropout: float = 0.0
    # The top prior's music when it is not all of the recipe's (its own splits DATA/top-train and top-heldout, and
    # code caches codes-top-*): versions 3 to 5 kept it on Wesnoth's, since the others cost its previews harmony.
    top_sources: tuple[Source, ...] | None = None
    # Then the VQ-VAE gets a noise fill fitted on all the training music (`vqvae noise-fill`): the treble noise its
    # decoders leave out, put back at the level predicted from what they decoded. The codes stay.
    noise_fill: bool = False
    # First, the --vqvae is fine-tuned whole (encoders, codebooks and decoders) this many steps on all the training
    # music, the last half cooling to 0; its codes change, so every prior is refined on the new ones.
    vqvae_steps: int = 0


RECIPES = {
    # The model in the package until version 3: one soundtrack, the VQ-VAE of docs/vqvae-results.md, `small` priors.
    "v1": Recipe((WESNOTH,), "GPL-2.0-or-later", 0.0,
                 ("battle", "knolls", "wanderer", "heroes_rite", "the_deep_path", "northerners"), None),
    # Tried for version 2 (docs/embedded-model.md says how it measured): five packages, the VQ-VAE on all of it,
    # wider and deeper upsamplers (still under 2 minutes for 10 s on 2 CPU cores).
    "v2": Recipe((WESNOTH, *MORE_SOURCES), "GPL-3.0-or-later", 20.0, None,
                 {"transformer": {"width": 192, "depth": 8, "heads": 2}, "cond_width": 128, "cond_depth": 4}),
}
# The model in the package since version 3: version 1's data and VQ-VAE; the upsamplers trained 5.3 times
# longer and the top prior 1.7 times, each ending in a cool-down, so that the upsamplers are surer of their codes.
RECIPES["v3"] = dataclasses.replace(RECIPES["v1"], prior_steps={2: 10000, 1: 16000, 0: 16000}, cooldown_steps=3000,
                                    upsampling_temperature=1.0)
# The model in the package since version 4: version 3, its upsamplers fine-tuned 6,000 steps more.
RECIPES["v4"] = dataclasses.replace(RECIPES["v3"], refine_steps={1: 6000, 0: 6000})
# The model in the package since version 5: version 4 with its upsamplers fine-tuned on all five packages (music
# busier than Wesnoth's), the names they did not know added to their labels. It starts from a version-4 bundle
# (--init), with that VQ-VAE. The top prior stays version 4's, and so do the bundle's labels: fine-tuned on the five
# packages too (3,000 steps) its previews lost a third of their pitch salience (docs/embedded-model.md). Level 1
# draws at 0.8: at 1 it loses most of the preview's harmony, which level 0 cannot bring back.
RECIPES["v5"] = dataclasses.replace(RECIPES["v4"], sources=(WESNOTH, *MORE_SOURCES), licence="GPL-3.0-or-later",
                                    min_seconds=20.0, prior_steps={}, refine_steps={1: 2500, 0: 2500},
                                    fine_tunes="v4", upsampling_temperature={1: 0.8, 0: 1.0})
# Version 6, tried and not kept (docs/embedded-model.md, "Version 6, tried"): version 5's data, VQ-VAE and top prior,
# with upsamplers twice as wide (width 256; 2 heads, each as wide as now) trained from scratch on all five packages
# for 10,000 steps with version 3's cool-down (16,000 would not fit one sitting). A step of a 128-wide prior costs
# its ~200 operations' dispatch more than their arithmetic, so a 256-wide upsampler samples only ~20 % slower (1.8 M
# parameters against 0.67 M).
RECIPES["v6"] = dataclasses.replace(RECIPES["v5"], prior_steps={1: 10000, 0: 10000}, refine_steps={},
                                    upsampler={"transformer": {"width": 256, "heads": 2}})
# Version 7: version 5 with its VQ-VAE's level-0 decoder fine-tuned 250 steps on all five packages' training music
# (it had heard only six of Wesnoth's tracks, and left out the others' percussion); the encoders, codebooks and
# every prior are version 5's, so the codes are too. The log-magnitude spectral loss, tried beside it, added
# attacks that the music does not have (docs/embedded-model.md, "Version 7"). Its top level draws at 0.9: its songs
# keep more of the music's harmony at every level, and vary in loudness as the music does ("Top-level temperature").
RECIPES["v7"] = dataclasses.replace(RECIPES["v5"], refine_steps={}, fine_tunes="v5", decoder_steps=250,
                                    temperature=0.9)
# Version 8, tried and not kept (docs/embedded-model.md, "Version 8, tried"): version 7 with all three priors
# fine-tuned with label dropout (the top prior on Wesnoth's music, as it learned; the upsamplers on all five
# packages), so that `unknown`, which a song without --artist and --genre is conditioned on, learned the music as a
# whole instead of keeping its random start. Its songs came out darker and louder than version 7's.
RECIPES["v8"] = dataclasses.replace(RECIPES["v7"], fine_tunes="v7", decoder_steps=0,
                                    refine_steps={2: 2000, 1: 1500, 0: 1500}, label_dropout=0.2,
                                    top_sources=(WESNOTH,), temperature=1.0)
# Version 9: version 7 with the VQ-VAE's level-1 and level-2 decoders fine-tuned the same way as its level-0 one, so
# that the previews (level 2) and level 1 bring back the attacks and noise that level 0 already had; the codes, the
# priors and the finished songs (level 0) are version 7's (docs/embedded-model.md, "Version 9").
RECIPES["v9"] = dataclasses.replace(RECIPES["v7"], fine_tunes="v7", decoder_levels=(1, 2))
# Version 10: version 9 with a noise fill on its VQ-VAE (docs/embedded-model.md, "Version 10"): its decoders return
# the music's treble 7 to 9 dB low, and the fill puts back, as noise, the treble predicted from the decoded audio's
# bands. The codes, the priors and the decoders are version 9's.
# Its level 0 draws at 1.025: the fill's noise calmed the attacks that a warmer level 0 adds, and 1.025 gives the
# songs the held-out music's flatness, nearer it in all five measures together ("Level-0 temperature: 1.025").
RECIPES["v10"] = dataclasses.replace(RECIPES["v9"], fine_tunes="v9", decoder_steps=0, noise_fill=True,
                                     upsampling_temperature={1: 0.8, 0: 1.025})
# A clip samples as the start of a song this long unless asked otherwise: the training tracks last minutes, and
# the only ones under 19 s (the shortest timing bin) are victory and defeat jingles that end in silence.
SONG_SECONDS = 180.0
# ... and begins a minute into it, the body of the song: the training tracks' first 10 s are intros, quieter and
# sparser than their middles (-25 against -20 dBFS, 1.2 against 1.5 onsets a second), and so are clips sampled there.
SONG_START = 60.0
# Version 11, tried (docs/embedded-model.md, "Version 11, tried"): version 10 with its VQ-VAE's encoders
# and codebooks too trained on all five packages' music, not six of Wesnoth's tracks (they gain 0.2 to 0.3 dB of
# held-out spectral convergence and change 71 to 93 % of the codes); every prior refined on the new codes from
# version 10's, at the from-scratch learning rate, and the noise fill fitted again. Not kept: its VQ-VAE is better,
# but the songs of its top prior, on the new level-2 codes, are heavier in the lows, louder and further from the music.
RECIPES["v11"] = dataclasses.replace(RECIPES["v10"], fine_tunes="v10", vqvae_steps=1000, top_sources=(WESNOTH,),
                                     refine_steps={2: 4000, 1: 6000, 0: 6000}, refine_lr=1e-3)
# Version 12, tried (docs/embedded-model.md, "Version 12, tried"): version 11 with its top prior refined 6,000 steps
# more at 5e-4 cooled to 0, as version 4 refined its upsamplers. Version 11's 4,000 steps on the new codes left it
# behind version 10's (4.30 against 4.24 nats per token held out), and its songs darker and louder than version
# 10's; version 11's VQ-VAE itself decodes the held-out music's own codes nearer the music than version 10's. It
# starts from version 11's bundle and its VQ-VAE, fill included; only Wesnoth's codes are made again. Not kept: it
# fit its training tracks better, the held-out ones no better, and its songs went further from the music.
RECIPES["v12"] = dataclasses.replace(RECIPES["v11"], fine_tunes="v11", vqvae_steps=0, noise_fill=False,
                                     refine_steps={2: 6000}, refine_lr=5e-4)
PACKAGE_RECIPE = "v10"  # the recipe of the model in the package
PACKAGE_MODEL = Path(__file__).resolve().parents[1] / "src" / "openjukebox" / "embedded"


def source_tracks(source: Source, min_seconds: float) -> list[Path]:
    folder = Path(source.folder)
    if not any(folder.glob(source.pattern)):  # the folder alone may come from another package
        subprocess.run(["apt-get", "install", "-y", "-qq", source.package], check=True)
    return sorted(p for p in folder.glob(source.pattern)
                  if p.stem not in source.skip and soundfile.info(p).duration >= min_seconds)


def prepare_data(recipe: Recipe, data: Path) -> None:
    """Links the tracks into DATA/{train,heldout,vqvae} and writes each split's metadata.csv from the tags.

    Names are prefixed by package, so that two packages' `track1.ogg` cannot collide."""
    splits: dict[str, list[dict]] = {"train": [], "heldout": [], "vqvae": []}
    if recipe.top_sources is not None:
        splits.update({"top-train": [], "top-heldout": []})
    for source in recipe.sources:
        for track in source_tracks(source, recipe.min_seconds):
            tags = soundfile.SoundFile(track).copy_metadata()
            name = f"{source.package}-{track.name}"
            row = {"path": name, "artist": tags.get("artist") or source.artist,
                   "genre": (tags.get("genre") or source.genre).lower(), "lyrics": ""}
            chosen = ["heldout"] if track.stem in source.heldout else ["train"]
            if chosen == ["train"] and (recipe.vqvae_tracks is None or track.stem in recipe.vqvae_tracks):
                chosen.append("vqvae")
            if recipe.top_sources is not None and source in recipe.top_sources:
                chosen.append(f"top-{chosen[0]}")
            for split in chosen:
                link = data / split / name
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    try:
                        link.symlink_to(track)
                    except FileExistsError:  # linked just now by another stage of the recipe, run at once
                        pass
                splits[split].append(row)
    for split, rows in splits.items():
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=["path", "artist", "genre", "lyrics"])
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(data / split / "metadata.csv", table.getvalue())  # several stages may run at once
        print(f"{data / split}: {len(rows)} tracks")


def write_model_licence(recipe: Recipe, bundle: Path, data: Path) -> None:
    """The weights are offered under a licence that every source's allows, crediting each package and its
    composers."""
    with open(data / "train" / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lines = []
    for source in recipe.sources:
        composers = sorted({row["artist"] for row in rows if row["path"].startswith(source.package + "-")} - {""})
        lines.append(f"- `{source.package}`, {source.licence}, copyright {source.holder} "
                     f"(/usr/share/doc/{source.package}/copyright). Composers: "
                     f"{', '.join(composers) or 'not named'}.")
    (bundle / "LICENSE.md").write_text(
        "# The embedded model's licence\n\n"
        "These weights were trained on freely licensed game music packaged by Debian. They are offered under "
        f"{recipe.licence}, which the licences of all the music allow. The openjukebox code that uses them is "
        "MIT.\n\n"
        "The music, by Debian package:\n\n" + "\n".join(lines) + "\n\n"
        "How the model was made, and how well it does: docs/embedded-model.md in the openjukebox repository.\n")


def cache_splits(recipe: Recipe, levels: Iterable[int]) -> tuple[str, ...]:
    """The code caches that training and measuring the priors of these levels read: a recipe that refines the top
    prior alone on its own music (v12) needs neither the five packages' caches nor their encoding time."""
    prefixes = {codes_of(recipe, level) for level in levels}
    return tuple(f"{prefix}-{split}" for prefix in sorted(prefixes) for split in ("train", "heldout"))


def codes_of(recipe: Recipe, level: int) -> str:
    """The prefix of the code caches that the level-`level` prior learns and is measured on."""
    return "codes-top" if level == 2 and recipe.top_sources is not None else "codes"


def build_caches(recipe: Recipe, levels: Iterable[int], work: Path, data: Path, vqvae: Path) -> None:
    """The training split reuses the audio the VQ-VAE decoded while training on it (when it trained here); the
    others are decoded into a cache of their own, removed once encoded."""
    for cache in cache_splits(recipe, levels):
        out, split = work / cache, cache.removeprefix("codes-")
        if not (out / CODES).is_file():
            audio_cache = vqvae / "cache" if split == "train" and (vqvae / "cache").is_dir() else None
            build_code_cache(vqvae, data / split, out, data / split / "metadata.csv", audio_cache=audio_cache)
            shutil.rmtree(out / "audio-cache", ignore_errors=True)


def evaluate(recipe: Recipe, work: Path, data: Path, bundle: Path, trained: dict[int, Path], init: Path | None
             ) -> dict:
    """Held-out metrics of the model card: VQ-VAE reconstruction per level, each prior trained here against the
    unigram, its codes labelled as its run labelled them. A prior taken as it is from --init is named, not measured:
    its labels may not know this data's names, and its numbers are those of the version it comes from."""
    vqvae, _ = load_vqvae(bundle / "vqvae")
    heldout = AudioFolder(data / "heldout", vqvae.config.sample_rate, work / "eval-audio-cache", None)
    report = {"vqvae": evaluate_vqvae(vqvae, heldout, windows_per_file=40), "priors": {}}
    for level in range(3):
        if init is not None and trained[level] == init:
            report["priors"][level] = {"from": str(init)}
            continue
        path, vocab = prior_location(trained[level], level)
        prior = load_prior(path)
        codes = codes_of(recipe, level)
        report["priors"][level] = {split: evaluate_prior(prior, load_evaluation_codes(work / f"{codes}-{split}",
                                                                                      prior, vocab), windows=64)
                                   for split in ("heldout", "train")}
    return report


STAGES = ("data", "vqvae", "codes", "prior2", "prior1", "prior0", "refine2", "refine1", "refine0", "decoder",
          "noise-fill")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=list(RECIPES), default=PACKAGE_RECIPE,
                        help=f"{PACKAGE_RECIPE}: the model in the package")
    parser.add_argument("--work", type=Path, help="default: runs/embedded-RECIPE")
    parser.add_argument("--data", type=Path, help="default: data/embedded-RECIPE")
    parser.add_argument("--stage", choices=STAGES, help="stop after this stage (a prior stage: train that prior "
                        "alone, once the code caches exist, so that the three priors can train at once)")
    parser.add_argument("--vqvae", type=Path, help="a trained VQ-VAE (run or checkpoint) to train the priors on, "
                        "instead of training one (e.g. the package's, src/openjukebox/embedded/vqvae)")
    parser.add_argument("--init", type=Path, help="a bundle whose priors stand for the recipe's own trained ones: "
                        "the refine stages start from it and its other priors are taken as they are (e.g. the "
                        "package's, to turn version 3 into version 4); needs --vqvae, the VQ-VAE of its codes")
    parser.add_argument("--install", action="store_true", help=f"copy the bundle to {PACKAGE_MODEL}")
    args = parser.parse_args()
    recipe = RECIPES[args.recipe]
    args.work = args.work or Path(f"runs/embedded-{args.recipe}")
    args.data = args.data or Path(f"data/embedded-{args.recipe}")

    if args.init is not None and args.vqvae is None:
        parser.error("--init needs --vqvae: the VQ-VAE whose codes its priors learned")
    if recipe.fine_tunes is not None and args.init is None:
        if args.vqvae is not None:
            parser.error(f"--vqvae needs --init: recipe {args.recipe} fine-tunes a {recipe.fine_tunes} bundle")
        base = Path(f"runs/embedded-{recipe.fine_tunes}")
        print(f"recipe {args.recipe} fine-tunes recipe {recipe.fine_tunes}: training it first, into {base}")
        subprocess.run([sys.executable, __file__, "--recipe", recipe.fine_tunes], check=True)
        args.init, args.vqvae = base / "bundle", base / "bundle" / "vqvae"
    prepare_data(recipe, args.data)
    if args.stage == "data":
        return
    # The recipe's own VQ-VAE: trained here from scratch, or fine-tuned here from --vqvae (vqvae_steps).
    vqvae = args.work / "vqvae" if args.vqvae is None or recipe.vqvae_steps else args.vqvae
    # The priors trained from scratch: all of the recipe's, unless --init stands for them; a recipe that fine-tunes
    # another trains only the ones it names (v6: new upsamplers beside v4's top prior).
    own_priors = recipe.prior_steps if args.init is None or recipe.fine_tunes else {}
    trained_levels = set(own_priors) | set(recipe.refine_steps)  # v7 trains a decoder alone: no code caches
    if args.stage is None or args.stage in ("vqvae", "codes") or not all(
            (args.work / cache / CODES).is_file() for cache in cache_splits(recipe, trained_levels)):
        if args.vqvae is None:
            train_vqvae(args.data / "vqvae", vqvae, "small", steps=2000, batch_size=8, save_every=250,
                        eval_every=500, eval_data=args.data / "heldout")
        elif recipe.vqvae_steps:
            train_vqvae(args.data / "train", vqvae, init=args.vqvae, steps=recipe.vqvae_steps, batch_size=8, lr=1e-4,
                        cooldown_steps=recipe.vqvae_steps // 2, save_every=250, eval_every=500,
                        eval_data=args.data / "heldout")
        if args.stage == "vqvae":
            return
        build_caches(recipe, trained_levels, args.work, args.data, vqvae)
        if args.stage == "codes":
            return
    # What each level's refine run starts from, and its prior where it is not refined.
    base = {level: args.work / f"prior{level}" if level in own_priors else args.init for level in range(3)}
    for level, steps in own_priors.items():
        if args.stage in (None, f"prior{level}"):
            train_prior(args.work / "codes-train", level, args.work / f"prior{level}", "small", steps=steps,
                        batch_size=16, lr=1e-3, save_every=500, config=recipe.upsampler if level < 2 else None,
                        cooldown_steps=recipe.cooldown_steps)
    for level, steps in recipe.refine_steps.items():
        if args.stage in (None, f"refine{level}"):
            train_prior(args.work / f"{codes_of(recipe, level)}-train", level, args.work / f"refine{level}",
                        steps=steps, batch_size=16, lr=recipe.refine_lr, save_every=500, cooldown_steps=steps,
                        init=base[level], label_dropout=recipe.label_dropout,
                        from_other_codes=bool(recipe.vqvae_steps))
    if recipe.decoder_steps:
        if args.stage in (None, "decoder"):
            train_vqvae(args.data / "train", args.work / "decoder", init=vqvae, decoders=list(recipe.decoder_levels),
                        steps=recipe.decoder_steps, batch_size=8, lr=1e-4, save_every=250)
        vqvae = args.work / "decoder"
    if recipe.noise_fill:
        filled = args.work / "noise-fill"
        if args.stage in (None, "noise-fill") and not filled.is_dir():
            report = add_noise_fill(vqvae, args.data / "train", filled)
            atomic_write_text(args.work / "noise-fill.json", json.dumps(report, indent=2) + "\n")
        vqvae = filled
    if args.stage is not None:
        return
    # Each level's prior: its refine run, else the recipe's own run, else the --init bundle's.
    trained = {level: args.work / f"refine{level}" if level in recipe.refine_steps else base[level]
               for level in range(3)}
    bundle = args.work / "bundle"
    if not (bundle / MANIFEST).is_file():
        shutil.rmtree(bundle, ignore_errors=True)  # an interrupted write
        assemble_bundle(vqvae, trained, bundle, dtype=torch.float16)
    manifest = json.loads((bundle / MANIFEST).read_text())
    defaults = {"song_seconds": SONG_SECONDS, "song_start": SONG_START, "temperature": recipe.temperature,
                "upsampling_temperature": recipe.upsampling_temperature}
    atomic_write_text(bundle / MANIFEST, json.dumps({**manifest, **defaults}, indent=2) + "\n")
    write_model_licence(recipe, bundle, args.data)
    metrics = args.work / "metrics.json"
    if not metrics.is_file():
        report = evaluate(recipe, args.work, args.data, bundle, trained, args.init)
        atomic_write_text(metrics, json.dumps(report, indent=2) + "\n")
    print(f"bundle: {bundle}; held-out metrics: {metrics}")
    if args.install:
        shutil.rmtree(PACKAGE_MODEL, ignore_errors=True)
        shutil.copytree(bundle, PACKAGE_MODEL)
        print(f"installed into {PACKAGE_MODEL}")


if __name__ == "__main__":
    main()
