"""Presets and configs as data (a user's --config file over a preset), one label encoder for training and
sampling, and a CLI whose options and defaults are the API's."""

import argparse
import dataclasses
import inspect
import json

import pytest

from openjukebox import cli
from openjukebox.bundle import assemble_bundle, init_bundle, load_bundle
from openjukebox.config_file import differences, merge_config, read_config_file
from openjukebox.errors import ConfigError
from openjukebox.labels import LabelEncoder
from openjukebox.prior.config import PRESETS as PRIOR_PRESETS, prior_preset, with_config_file
from openjukebox.prior.training import train_prior
from openjukebox.sample.request import SampleRequest
from openjukebox.vqvae.code_cache import build_code_cache, load_code_cache
from openjukebox.vqvae.config import PRESETS as VQVAE_PRESETS, VQVAEConfig
from openjukebox.vqvae.training import train_vqvae


# ------------------------------------------------------------------------------------------------ config files

def test_a_toml_or_json_file_is_laid_over_the_preset(tmp_path):
    (tmp_path / "wide.toml").write_text('width = 64\n[transformer]\nwidth = 48\nheads = 3\n')
    (tmp_path / "wide.json").write_text('{"width": 64, "transformer": {"width": 48, "heads": 3}}')
    base = dataclasses.asdict(prior_preset("tiny", 2, 64, 128, 16000, 2, 2))
    for name in ("wide.toml", "wide.json"):
        fields = read_config_file(tmp_path / name)
        merged = merge_config({"width": 32, "transformer": base["transformer"]}, fields, name)
        assert merged["width"] == 64 and merged["transformer"]["width"] == 48 and merged["transformer"]["heads"] == 3
        assert merged["transformer"]["depth"] == base["transformer"]["depth"]  # left alone: the preset's


@pytest.mark.parametrize("fields, message", [
    ({"transfomer": {"width": 8}}, "unknown field 'transfomer'; did you mean 'transformer'"),
    ({"transformer": {"widht": 8}}, "unknown field 'transformer.widht'; did you mean 'transformer.width'"),
    ({"bins": 128}, "'bins' cannot be set in a config file (it comes from the codes"),
    ({"transformer": 8}, "'transformer' must be a table of fields"),
])
def test_a_prior_config_file_is_checked_field_by_field(fields, message):
    config = prior_preset("tiny", 2, 64, 128, 16000, 2, 2)
    with pytest.raises(ConfigError) as error:
        with_config_file(config, fields)
    assert message in str(error.value)


def test_a_broken_config_file_is_one_clear_error(tmp_path):
    (tmp_path / "bad.toml").write_text("width = = 3\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        read_config_file(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match=r"list.json: a config file holds an object of fields, not list"):
        read_config_file(tmp_path / "list.json")
    with pytest.raises(ConfigError, match=r"missing.json: no such config file"):
        read_config_file(tmp_path / "missing.json")


def test_differences_name_each_changed_field():
    assert differences({"a": 1, "t": {"w": 2, "d": 3}, "l": (1, 2)}, {"a": 1, "t": {"w": 4, "d": 3}, "l": [1, 2]}) \
        == ["t.w: 2 → 4"]


def test_vqvae_train_takes_a_config_file_and_a_resume_must_agree_with_it(tmp_path, music_dir):
    (tmp_path / "narrow.toml").write_text("width = 4\ndepth = 1\n")
    run = tmp_path / "run"
    assert cli.main(["vqvae", "train", "--data", str(music_dir), "--out", str(run), "--steps", "1",
                     "--batch-size", "2", "--config", str(tmp_path / "narrow.toml")]) == 0
    saved = VQVAEConfig.load(run / "config.json")
    assert (saved.width, saved.depth) == (4, 1)
    assert dataclasses.replace(saved, width=VQVAE_PRESETS["tiny"].width, depth=VQVAE_PRESETS["tiny"].depth) \
        == VQVAE_PRESETS["tiny"]  # every other field is the preset's
    (tmp_path / "wider.toml").write_text("width = 6\n")
    with pytest.raises(ConfigError, match=r"trained with other settings \(width: 4 → 6\)"):
        train_vqvae(music_dir, run, "tiny", steps=2, batch_size=2, progress=False, config=tmp_path / "wider.toml")
    assert train_vqvae(music_dir, run, "tiny", steps=2, batch_size=2, progress=False,
                       config=tmp_path / "narrow.toml") == 2  # the same file resumes


# ------------------------------------------------------------------------------------------------ label encoder

@pytest.fixture(scope="module")
def labelled_cache(tmp_path_factory, tiny_run, music_dir):
    out = tmp_path_factory.mktemp("labelled") / "codes"
    names = sorted(p.name for p in music_dir.glob("*.wav"))
    rows = [f"{names[0]},Ann Lee,rock;jazz", f"{names[1]},Bob,rock", f"{names[2]},,", f"{names[3]},Ann Lee,jazz"]
    (music_dir / "metadata.csv").write_text("path,artist,genre\n" + "\n".join(rows) + "\n")
    try:
        build_code_cache(tiny_run, music_dir, out)
    finally:
        (music_dir / "metadata.csv").unlink()
    return out


def test_names_match_loosely_and_unknown_names_are_refused():
    labels = LabelEncoder.from_names(["Ann Lee", "Bob"], ["rock", "hip_hop"])
    assert labels.artists == ["Ann Lee", "Bob", "unknown"] and labels.genres == ["hip_hop", "rock", "unknown"]
    assert labels.artist_id("ann  lee") == labels.artist_id("ANN_LEE") == 0
    assert labels.genre_ids(["Hip Hop", "rock"]) == [0, 1]
    assert labels.ids(None, None, 2) == (2, [2, -1])  # no name means 'unknown', not whatever sorts first
    with pytest.raises(ConfigError, match="unknown artist 'An Lee'; did you mean 'Ann Lee'"):
        labels.artist_id("An Lee")
    with pytest.raises(ConfigError, match="at most 1 genre"):
        labels.ids("Bob", ["rock", "hip hop"], 1)


def test_the_code_cache_the_prior_run_and_the_bundle_keep_one_encoder(tmp_path, labelled_cache, tiny_run):
    cache = load_code_cache(labelled_cache)
    assert cache.labels == LabelEncoder.load(labelled_cache)
    assert cache.labels.artists == ["Ann Lee", "Bob", "unknown"] and cache.labels.genres == ["jazz", "rock", "unknown"]
    clip_of = {c.source: i for i, c in enumerate(cache.codes.clips)}
    first = sorted(clip_of)[0]
    assert cache.label_ids(clip_of[first], 2) == (0, [1, 0])  # Ann Lee; rock, jazz
    runs = {}
    for level in (2, 1, 0):
        runs[level] = tmp_path / f"prior{level}"
        train_prior(labelled_cache, level, runs[level], steps=1, batch_size=2, save_every=1, progress=False)
    assert LabelEncoder.load(runs[2]) == cache.labels
    bundle = load_bundle(assemble_bundle(tiny_run, runs, tmp_path / "bundle"))
    assert bundle.label_encoder == cache.labels
    # Sampling asks by name and gets the ids training used for that name.
    labels = bundle.labels("ann lee", ["Rock", "jazz"], 16000, 1)
    assert labels.artist.tolist() == [0] and labels.genres.tolist() == [[1, 0]]
    with pytest.raises(ConfigError, match="unknown genre 'pop'"):
        bundle.labels(None, ["pop"], 16000, 1)


def test_a_resumed_prior_keeps_its_ids_on_another_cache(tmp_path, labelled_cache):
    run = tmp_path / "prior"
    train_prior(labelled_cache, 2, run, steps=1, batch_size=2, save_every=1, progress=False)
    vocab = json.loads((run / "vocab.json").read_text())
    vocab["artists"] = ["Bob", "Zed", "unknown"]  # a run whose names are not the cache's: Ann Lee is unknown to it
    (run / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(ConfigError, match="unknown artist 'Ann Lee'"):
        train_prior(labelled_cache, 2, run, steps=2, batch_size=8, save_every=1, progress=False)


# ------------------------------------------------------------------------------------------------ the CLI

def _parse(words: list[str]) -> argparse.Namespace:
    return cli.build_parser(words).parse_args(words)


REQUIRED = {"--out": "x", "--data": "d", "--steps": "1", "--codes": "c", "--level": "2", "--model": "m",
            "--vqvae": "v", "--prior0": "p", "--prior1": "p", "--prior2": "p", "--duration": "1", "--from": "f",
            "--lyrics-file": "l", "--seconds": "1"}


@pytest.mark.parametrize("command", [c for c in cli.COMMANDS if c.api], ids=lambda c: c.words)
def test_every_option_that_feeds_the_api_has_its_default(command):
    """Parse a command with only its required arguments: each option that names an API parameter holds that
    parameter's default (a SampleRequest field's, for sample), so the CLI and the API cannot disagree."""
    parser = cli.build_parser(command.words.split())
    sub = parser._subparsers._group_actions[0].choices[command.words.split()[0]]
    if " " in command.words:
        sub = sub._subparsers._group_actions[0].choices[command.words.split()[1]]
    words = command.words.split()
    for action in sub._actions:
        if action.required and action.option_strings:
            words += [action.option_strings[0], REQUIRED[action.option_strings[0]]]
        elif not action.option_strings and action.dest not in ("help",):
            words += ["positional"] * (1 if action.nargs in (None, "+") else 0)
    args = parser.parse_args(words)
    api_defaults = {n: p.default for n, p in inspect.signature(cli._api(command)).parameters.items()
                    if p.default is not inspect.Parameter.empty}
    if command.words == "sample":
        api_defaults = {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
                        for f in dataclasses.fields(SampleRequest) if f.default_factory is not dataclasses.MISSING
                        or f.default is not dataclasses.MISSING}
    checked = 0
    for option in command.options + (command.extra() if command.extra else []):
        explicit = "default" in option.settings and option.settings.get("type") is None
        if option.param in api_defaults and option.flags[0].startswith("-") and not explicit \
                and option.settings.get("action") != "store_true" and not option.settings.get("required"):
            assert getattr(args, option.param) == api_defaults[option.param], option.flags
            checked += 1
    assert checked or command.words in ("models", "bundle make", "align", "convert-hf"), command.words


def test_sample_has_an_option_for_every_request_field_a_user_sets():
    args = _parse(["sample", "--duration", "3", "--out", "o", "--genre", "rock", "--genre", "jazz", "--levels", "2,1",
                   "--n-samples", "2", "--top-p", "0.9"])
    assert (args.genres, args.levels, args.n, args.top_p, args.duration) == (["rock", "jazz"], [2, 1], 2, 0.9, 3.0)
    fields = {f.name for f in dataclasses.fields(SampleRequest)}
    assert fields - set(vars(args)) == {"lyrics", "lyrics_timing"}  # these two come from --lyrics-file


def test_the_cli_lists_presets_from_where_they_are_defined():
    def choices(words):
        parser = cli.build_parser(words)
        return [a for a in parser._subparsers._group_actions[0].choices[words[0]]._actions
                if "--preset" in a.option_strings][0].choices
    assert choices(["init"]) == list(PRIOR_PRESETS)
    assert init_bundle.__doc__ and all(p.vqvae in VQVAE_PRESETS for p in PRIOR_PRESETS.values())


def test_init_makes_each_preset_with_its_vqvae(tmp_path):
    bundle = load_bundle(init_bundle("tiny-lyrics", tmp_path / "b"))
    assert bundle.vqvae.config == VQVAE_PRESETS[PRIOR_PRESETS["tiny-lyrics"].vqvae]
    assert bundle.priors[2].config.n_tokens == PRIOR_PRESETS["tiny-lyrics"].n_tokens > 0
