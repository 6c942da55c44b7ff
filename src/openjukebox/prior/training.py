"""Training a prior on a codes cache with the shared engine: random windows of n_ctx tokens with their labels."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..config_file import ConfigSource, differences
from ..errors import ConfigError, DataError
from ..fileio import atomic_write_text, writer_lock
from ..labels import UNKNOWN, VOCAB_FILE, LabelEncoder, split_genres
from ..codes import CodesFile
from ..models import MANIFEST
from ..lyrics.text import lyrics_window, vocabulary_of_size
from ..lyrics.timing import TimedLyrics, anchors_from_json, encode_timed
from ..train.checkpoint import CONFIG_FILE, latest_checkpoint, load_weights, resolve_checkpoint, write_model_dir
from ..train.loop import TrainSettings, train
from ..vqvae.code_cache import CodeCache, load_code_cache
from .conditioning import Labels
from .config import prior_config_from_dict, prior_config_to_json, prior_preset, with_config_file
from .loading import load_prior
from .model import Prior, PriorConfig, next_token_loss

INITIAL = "initial"  # weights a new run starts from (e.g. written by `prior add-lyrics`)
CODES_FROM = "codes_from.json"  # the fingerprint of the VQ-VAE whose codes a prior is trained on


def trained_on(path: str | os.PathLike) -> str | None:
    """The fingerprint of the VQ-VAE whose codes the prior run or checkpoint at `path` learned, if recorded."""
    try:
        return str(json.loads((Path(path) / CODES_FROM).read_text())["vqvae_fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def learned_labels(model: str | os.PathLike, level: int) -> LabelEncoder | None:
    """The label vocabulary whose ids the level-`level` prior of `model` learned: a bundle's table for that level,
    or a prior run's or checkpoint's vocab.json; None when there is none."""
    model = Path(model)
    manifest = model / MANIFEST
    if manifest.is_file():
        return LabelEncoder.for_level(json.loads(manifest.read_text()), level, manifest)
    ckpt = resolve_checkpoint(model)
    folder = next((f for f in (ckpt, model) if (f / VOCAB_FILE).is_file()), None)
    return None if folder is None else LabelEncoder.load(folder)


def starting_prior(init: str | os.PathLike, level: int) -> tuple[Prior, LabelEncoder, str | None]:
    """The trained prior a new run starts from (fine-tuning), from a prior run, a checkpoint or a bundle (its
    level-`level` prior): the prior in float32, its label vocabulary (the ids its embeddings learned) and the
    fingerprint of the VQ-VAE whose codes it learned, when known."""
    init = Path(init)
    if (init / MANIFEST).is_file():  # a bundle: its VQ-VAE made the codes
        from ..vqvae.loading import load_vqvae

        ckpt = init / f"prior_{level}"
        if not ckpt.is_dir():
            raise ConfigError(f"{init}: this bundle has no level-{level} prior to start from")
        learned = load_vqvae(init / "vqvae")[0].fingerprint() if (init / "vqvae").is_dir() else None
    else:
        ckpt = resolve_checkpoint(init)
        learned = trained_on(ckpt) or trained_on(init)
    labels = learned_labels(init, level)
    if labels is None:
        raise ConfigError(f"{init}: no {VOCAB_FILE} (train the prior with 'openjukebox prior train')")
    prior = load_prior(ckpt)
    if prior.config.level != level:
        raise ConfigError(f"{init}: holds a level-{prior.config.level} prior, not level {level}")
    return prior, labels, learned


def with_more_labels(prior: Prior, n_artists: int, n_genres: int) -> Prior:
    """The prior with label embeddings of `n_artists` × width and `n_genres` × width: its own rows kept (every
    name it knew keeps its id and meaning), each new row the mean of its rows, a neutral start for music by a new
    artist rather than noise."""
    state = prior.saved_state()
    for key, rows in (("labels.artist_emb.weight", n_artists), ("labels.genre_emb.weight", n_genres)):
        known = state[key]
        state[key] = torch.cat([known, known.mean(0, keepdim=True).expand(rows - len(known), -1)])
    grown = Prior(dataclasses.replace(prior.config, n_artists=n_artists, n_genres=n_genres))
    grown.load_saved_state(state)
    return grown


def labels_for(prior: Prior, labels: LabelEncoder, codes: CodesFile, where: str, progress: bool
               ) -> tuple[Prior, LabelEncoder]:
    """The prior and vocabulary a run fine-tuning `prior` on `codes` starts from: the artists and genres of the
    music that the vocabulary lacks are added to both (a released model's id table cannot grow)."""
    if not prior.config.conditioned_on_labels:
        return prior, labels
    clips = [clip.labels for clip in codes.clips]
    labels, artists, genres = labels.extended([m.get("artist") or "" for m in clips],
                                              [g for m in clips for g in split_genres(m.get("genre") or "")])
    if not artists and not genres:
        return prior, labels
    if progress:
        print(f"{where}: labels added for this music: artists {artists or 'none'}, genres {genres or 'none'}",
              file=sys.stderr)
    config = prior.config
    return with_more_labels(prior, max(config.n_artists, len(labels.artists)),
                            max(config.n_genres, len(labels.genres))), labels


ClipLyrics = tuple[list[int], list[tuple[int, int]]]  # tokens, and (sample, token) anchors when timed


@dataclass
class PriorBatch:
    codes: torch.Tensor  # (batch, n_ctx)
    labels: Labels
    upper: torch.Tensor | None  # (batch, n_ctx / 4) codes of the level above, for upsamplers


def sample_windows(cache: CodeCache, prior_level: int, n_ctx: int, batch: int, generator: np.random.Generator,
                   upsampler: bool, max_genres: int, lyrics: list[ClipLyrics] | None = None,
                   n_tokens: int = 0, lyrics_jitter: int = 0, label_dropout: float = 0.0) -> PriorBatch:
    """Random windows of n_ctx tokens (aligned to the level above for upsamplers), clips drawn by length; for a
    lyrics prior, each window's n_tokens lyric tokens from `lyrics` (every clip's encoded lyrics), moved by up to
    `lyrics_jitter` tokens either way at random. With `label_dropout` p, each window's artist becomes 'unknown'
    with probability p, and, independently, its genres ['unknown']: the labels a request that names none gets, so
    that they learn the training music as a whole instead of staying untrained."""
    codes = cache.codes
    hop = codes.hop_lengths[prior_level]
    lengths = np.array([c.length // hop for c in codes.clips])
    usable = np.flatnonzero(lengths >= n_ctx)
    if usable.size == 0:
        raise DataError(f"no clip has the {n_ctx} level-{prior_level} tokens of one window "
                        f"({n_ctx * hop / codes.sample_rate:.1f}s); add longer audio")
    picks = generator.choice(usable, size=batch, p=lengths[usable] / lengths[usable].sum())
    ratio = codes.hop_lengths[prior_level + 1] // hop if upsampler else 1
    windows, uppers, artists, genres, totals, offsets, lyric_windows = [], [], [], [], [], [], []
    unknown_artist, unknown_genres = cache.labels.ids(None, None, max_genres) if label_dropout else (None, None)
    for clip in picks:
        start = int(generator.integers(0, lengths[clip] - n_ctx + 1)) // ratio * ratio
        windows.append(codes.levels[prior_level][clip, start:start + n_ctx])
        if upsampler:
            uppers.append(codes.levels[prior_level + 1][clip, start // ratio: (start + n_ctx) // ratio])
        artist, genre_ids = cache.label_ids(int(clip), max_genres)
        if label_dropout:
            artist = unknown_artist if generator.random() < label_dropout else artist
            genre_ids = unknown_genres if generator.random() < label_dropout else genre_ids
        artists.append(artist)
        genres.append(genre_ids)
        totals.append(codes.clips[clip].length)
        offsets.append(start * hop)
        if n_tokens:
            tokens, timing = lyrics[clip]
            shift = int(generator.integers(-lyrics_jitter, lyrics_jitter + 1)) if lyrics_jitter else 0
            lyric_windows.append(lyrics_window(tokens, n_tokens, totals[-1], offsets[-1], n_ctx * hop, timing,
                                               shift)[0])
    labels = Labels(torch.tensor(artists), torch.tensor(genres), torch.tensor(totals), torch.tensor(offsets),
                    torch.tensor(lyric_windows) if n_tokens else None)
    upper = torch.from_numpy(np.stack(uppers)).long() if upsampler else None
    return PriorBatch(torch.from_numpy(np.stack(windows)).long(), labels, upper)


def with_own_draws(model: nn.Module, config: PriorConfig, codes: torch.Tensor, labels: Labels,
                   upper: torch.Tensor | None, share: float) -> torch.Tensor:
    """Codes (batch, T) with each replaced, with probability `share`, by the code the model draws at its position
    given the real codes before it (one teacher-forced pass, no gradient): the inputs of scheduled sampling."""
    if not share:
        return codes
    with torch.no_grad():
        logits = model(codes, labels, upper)[:, config.lead:, config.code_shift:config.code_shift + config.bins]
        drawn = torch.distributions.Categorical(logits=logits.float()).sample()
    return torch.where(torch.rand(codes.shape, device=codes.device) < share, drawn, codes)


def encoded_lyrics(cache: CodeCache, config: PriorConfig) -> list[ClipLyrics] | None:
    """Every clip's lyrics as the model's tokens, with their timing where the dataset had it, for a lyrics prior."""
    if not config.n_tokens:
        return None
    vocabulary = vocabulary_of_size(config.n_vocab)
    return [encode_timed(vocabulary, TimedLyrics(clip.labels.get("lyrics", ""),
                                                 anchors_from_json(clip.labels.get("lyrics_timing", ""))),
                         cache.codes.sample_rate) for clip in cache.codes.clips]


def train_prior(codes: str | os.PathLike, level: int, out: str | os.PathLike, preset: str = "tiny",
                steps: int = 1000, batch_size: int = 8, lr: float = 3e-4, save_every: int = 1000, seed: int = 0,
                progress: bool = True, fsdp: bool = False, checkpoint_activations: bool = False,
                lyrics_jitter: int = 0, config: ConfigSource | None = None, cooldown_steps: int = 0,
                init: str | os.PathLike | None = None, label_dropout: float = 0.0,
                scheduled_sampling: float = 0.0, from_other_codes: bool = False) -> int:
    """Train (or resume) the level-`level` prior of a preset on a codes cache; returns the step reached.

    `fsdp` shards the prior across torchrun ranks block by block (for priors that do not fit one GPU);
    `checkpoint_activations` recomputes each block's activations in the backward pass to save memory.
    `config` (a JSON or TOML file, or a mapping of PriorConfig fields, `transformer` nested) is laid over the
    preset's config for this level: a new model size without code.
    `cooldown_steps`: the last that many steps before `steps` lower the learning rate linearly to 0.
    `init` (a prior run, checkpoint or bundle) starts a new run from that trained prior instead of a preset
    (fine-tuning): its size and label vocabulary, on codes of the VQ-VAE it learned from; the cache's artists and
    genres that it does not know are added to its labels (`with_more_labels`). A run that exists resumes as it is.
    `lyrics_jitter` moves each window's lyrics by up to that many characters at random. Without it the sung
    characters always sit at the same place in the window, so a model can place them by position alone; moved, it
    has to find them by listening, which is what aligning a recording whose timing is unknown needs
    (docs/lyrics-alignment.md).
    `label_dropout` p: each window's artist is trained as 'unknown' with probability p, and its genres as
    ['unknown'] (independently): what a song asked for without labels is then the training music as a whole, not
    an embedding that never trained (docs/training.md).
    `scheduled_sampling` q: each input code is replaced, with probability q, by one the model draws at that
    position from the real codes before it (parallel scheduled sampling, Duckworth et al. 2019); the targets stay
    the real codes. A prior trained on real context alone sees its own draws only when sampling, and a small one
    drifts there towards the codes it over-predicts (docs/training.md).
    `from_other_codes`: `init` may have learned the codes of another VQ-VAE, which is refused otherwise. For a
    VQ-VAE fine-tuned after its priors were trained: most codes change, but what a prior learned of the music's
    structure and of its labels still holds, so re-learning the new codes is faster than starting afresh.
    """
    if level not in (0, 1, 2):
        raise ConfigError(f"level (--level) must be 0, 1 or 2, got {level}")
    if from_other_codes and init is None:
        raise ConfigError("from_other_codes (--from-other-codes) starts from a trained prior: give it with --init")
    out = Path(out)
    cache = load_code_cache(codes)
    c = cache.codes
    source = config
    initial = None
    if (out / CONFIG_FILE).is_file():
        config = prior_config_from_dict(json.loads((out / CONFIG_FILE).read_text()), str(out / CONFIG_FILE))
        if config.level != level:
            raise ConfigError(f"{out}: holds a level-{config.level} prior, not level {level}")
        changed = differences(dataclasses.asdict(config), dataclasses.asdict(with_config_file(config, source)))
        if changed:
            raise ConfigError(f"{out}: the run was trained with other settings ({'; '.join(changed)}); "
                              f"resume without them or use another --out")
        if (out / VOCAB_FILE).is_file():  # the run's names keep their ids, whatever cache it continues on
            cache = CodeCache(c, LabelEncoder.load(out))
        if trained_on(out) not in (None, c.fingerprint):
            raise ConfigError(f"{out}: was trained on the codes of another VQ-VAE (fingerprint {trained_on(out)}, "
                              f"{codes} has {c.fingerprint}); continue it on that VQ-VAE's codes, or use another --out")
    elif init is not None:
        if source is not None:
            raise ConfigError("config (--config) cannot resize a prior started from init (--init): it keeps its own")
        initial, labels, learned = starting_prior(init, level)
        if learned not in (None, c.fingerprint) and not from_other_codes:
            raise ConfigError(f"{init}: learned the codes of another VQ-VAE (fingerprint {learned}, {codes} has "
                              f"{c.fingerprint}); fine-tune it on codes made by that VQ-VAE, or give "
                              "--from-other-codes to re-learn these")
        config = initial.config
        if config.bins != c.codebook_size or config.hop_length != c.hop_lengths[level]:
            raise ConfigError(f"{init}: a prior over {config.bins} codes at hop {config.hop_length}, not this cache's "
                              f"{c.codebook_size} codes at hop {c.hop_lengths[level]}")
        initial, labels = labels_for(initial, labels, c, str(init), progress)
        config = initial.config
        cache = CodeCache(c, labels)
    else:
        config = with_config_file(prior_preset(preset, level, c.codebook_size, c.hop_lengths[level],
                                               c.sample_rate, len(cache.labels.artists), len(cache.labels.genres),
                                               cache.max_genres()), source)
    settings = TrainSettings(steps=steps, batch_size=batch_size, learning_rate=lr, save_every=save_every, seed=seed,
                             progress=progress, cooldown_steps=cooldown_steps)  # checked before anything is written
    for clip in range(len(c.clips)):  # every clip's names known to the run, before anything is written
        cache.label_ids(clip, config.max_genres)
    if not 0 <= label_dropout < 1:  # `not` so that NaN is refused too
        raise ConfigError(f"label_dropout (--label-dropout) must be at least 0 and below 1, got {label_dropout}")
    if label_dropout and not config.n_artists:
        raise ConfigError("label_dropout (--label-dropout): this prior takes no labels")
    if label_dropout and (cache.labels.table is not None or UNKNOWN not in cache.labels.artists
                          or UNKNOWN not in cache.labels.genres):
        raise ConfigError("label_dropout (--label-dropout): this prior's labels have no 'unknown' artist and genre "
                          "of their own to learn (a released model's label table)")
    if not 0 <= scheduled_sampling < 1:
        raise ConfigError(f"scheduled_sampling (--scheduled-sampling) must be at least 0 and below 1, got "
                          f"{scheduled_sampling}")
    if lyrics_jitter and not 0 < lyrics_jitter <= config.n_tokens // 2:
        raise ConfigError(f"lyrics_jitter (--lyrics-jitter) {lyrics_jitter}: " + (
            f"it must be between 0 and half the lyrics window ({config.n_tokens // 2} characters)"
            if config.n_tokens else "only a lyrics prior reads lyrics"))
    with contextlib.ExitStack() as hold:
        if distributed.is_main():  # one writer per run directory, until training ends
            hold.enter_context(writer_lock(out))
            out.mkdir(parents=True, exist_ok=True)
            if initial is not None:  # before the config: a run with a config is one that exists
                write_model_dir(out / INITIAL, initial.saved_state(), "prior", 0,
                                {CONFIG_FILE: prior_config_to_json(config)})
            atomic_write_text(out / CONFIG_FILE, prior_config_to_json(config))
            cache.labels.save(out)
        if checkpoint_activations:
            config = dataclasses.replace(config, transformer=dataclasses.replace(config.transformer,
                                                                                  checkpoint_activations=True))
        torch.manual_seed(seed)
        prior = Prior(config)
        if latest_checkpoint(out) is None and (out / INITIAL).is_dir():
            prior.load_saved_state(load_weights(out / INITIAL))
        lyrics = encoded_lyrics(cache, config)
        upsampler = level < 2

        def next_batch(step: int) -> PriorBatch:
            generator = np.random.default_rng([seed, step, distributed.rank()])
            return sample_windows(cache, level, config.n_ctx, batch_size, generator, upsampler,
                                  config.max_genres, lyrics, config.n_tokens, lyrics_jitter, label_dropout)

        def compute_loss(model: nn.Module, batch: PriorBatch) -> tuple[torch.Tensor, dict[str, float]]:
            device = next(model.parameters()).device
            upper = None if batch.upper is None else batch.upper.to(device)
            codes, labels = batch.codes.to(device), batch.labels.to(device)
            inputs = with_own_draws(model, config, codes, labels, upper, scheduled_sampling)
            # Through model(...), not a method of the prior, so that DDP's forward hooks see the call.
            if not config.n_tokens:
                loss = prior.codes_loss(model(inputs, labels, upper), codes)
                return loss, {"nats_per_token": loss.item(), "bits_per_token": loss.item() / np.log(2)}
            logits, lyric_logits = model(inputs, labels, upper, with_lyrics=True)
            codes_loss, lyrics_loss = prior.codes_loss(logits, codes), next_token_loss(lyric_logits, labels.lyrics)
            return prior.training_loss(codes_loss, lyrics_loss), {
                "nats_per_token": codes_loss.item(), "bits_per_token": codes_loss.item() / np.log(2),
                "lyrics_nats_per_token": lyrics_loss.item()}

        codes_from = json.dumps({"vqvae_fingerprint": c.fingerprint}) + "\n"
        if distributed.is_main():
            atomic_write_text(out / CODES_FROM, codes_from)
        files = {CONFIG_FILE: prior_config_to_json(config), CODES_FROM: codes_from,
                 VOCAB_FILE: (out / VOCAB_FILE).read_text() if distributed.is_main() else ""}
        return train(out, prior, settings, "prior", files,
                     next_batch, compute_loss, None, progress_keys=("nats_per_token",), weights_of=Prior.saved_state,
                     fsdp_units=list(prior.transformer.blocks) if fsdp else None)
