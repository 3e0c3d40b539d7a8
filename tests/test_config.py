"""The typed configuration: one definition per option, the command lines generated from it, checks in the
caller's words, and results folders named as before the configuration existed."""

import dataclasses
from pathlib import Path

import pytest

from gradsae_nn.cli import parse, parser_for
from gradsae_nn.config import (AnswerRunConfig, PerturbConfig, ProtocolAblationConfig, StatsConfig, SteerConfig, SweepConfig,
                               fields_of)
from gradsae_nn.errors import OptionError
from gradsae_nn.runs.outputs import output_dir
from gradsae_nn.training.config import SAEQualityConfig, TrainSAEConfig, WriteQuestionsConfig

CONFIGS = [AnswerRunConfig, PerturbConfig, SteerConfig, StatsConfig, SweepConfig, ProtocolAblationConfig, TrainSAEConfig,
           SAEQualityConfig, WriteQuestionsConfig]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_help_lists_each_option_once_with_its_default(cls):
    parser = parser_for(cls, "doc")
    actions = [a for a in parser._actions if a.dest != "help"]
    assert sorted(a.dest for a in actions) == sorted(name for name, _ in fields_of(cls))   # one option per field
    flags = [flag for a in actions for flag in a.option_strings]
    assert len(flags) == len(set(flags))
    text = parser.format_help()
    for action in actions:
        assert action.option_strings[-1] in text
        assert action.required or "(default: " in action.help, f"{action.option_strings} does not state its default"


def test_configs_are_frozen_and_checked_in_the_callers_words():
    config = PerturbConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_correct = 3  # type: ignore[misc]
    with pytest.raises(OptionError) as info:
        PerturbConfig(n_correct=-1)
    assert str(info.value).startswith("n_correct must be ≥ 0") and info.value.for_cli().startswith("--n-correct must")
    with pytest.raises(OptionError, match="unknown splice 'sideways'"):
        dataclasses.replace(config.method, splice="sideways")
    with pytest.raises(OptionError, match=r"\{correct_f1\}|correct_f1 is an F1 threshold in \[0, 1\], got 1.5"):
        parse(PerturbConfig, ["--correct-f1", "1.5"], "doc")
    assert parse(PerturbConfig, ["--k", "50%", "10"], "doc").k == ("50%", "10")
    assert parse(PerturbConfig, ["--remote"], "doc").method.scoring == "x-grad"   # the remote default
    assert parse(PerturbConfig, ["--checkpoint"], "doc").method.checkpoint
    with pytest.raises(OptionError) as info:
        parse(PerturbConfig, ["--remote", "--checkpoint"], "doc")
    assert info.value.for_cli().startswith("--checkpoint changes the model where it runs")


@pytest.mark.parametrize("argv, name", [
    ([], "perturb/smollm2-135m-it-L15"),
    (["--correct-f1", "0.9", "--splice", "reconstruct"], "perturb/smollm2-135m-it-L15-splice_reconstruct-correct_f1_0.9"),
    (["--k", "1", "50%", "--seed", "3"], "perturb/smollm2-135m-it-L15-seed_3-k_1_50%"),
    (["--sae", "smollm2-135m-it/L6", "--include-bos"], "perturb/smollm2-135m-it-L15-sae_smollm2-135m-it_L6-include_bos_True"),
    (["--remote"], "perturb/smollm2-135m-it-L15-scoring_x-grad"),
])
def test_results_folders_are_named_as_before(argv, name):
    assert output_dir(parse(PerturbConfig, argv, "doc"), "perturb", 15) == Path("results") / name


def test_steer_and_stats_folders_name_their_own_options():
    steer = parse(SteerConfig, ["--value-source", "score", "--positions", "last"], "doc")
    assert output_dir(steer, "steer", 15).name == "smollm2-135m-it-L15-value_source_score-positions_last"
    assert output_dir(parse(StatsConfig, [], "doc"), "stats", 15).name == "smollm2-135m-it-L15"
    assert output_dir(parse(StatsConfig, ["--k", "10"], "doc"), "stats", 15).name == "smollm2-135m-it-L15-k_10"


def test_a_sweep_layer_is_exactly_a_perturbation_run():
    sweep = parse(SweepConfig, ["--seed", "2", "--n-correct", "7"], "doc")
    run = sweep.perturbation(6)
    assert run == parse(PerturbConfig, ["--seed", "2", "--n-correct", "7", "--layer", "6", "--k", "50%"], "doc")
    assert output_dir(run, "perturb", 6).name == "smollm2-135m-it-L6-seed_2-k_50%"
    with pytest.raises(OptionError, match="drop {sae}/{out}|drop sae/out"):
        SweepConfig(out="x")


def test_protocol_presets_fill_what_is_not_given_and_name_the_folder():
    project, authors = parse(PerturbConfig, [], "doc"), parse(PerturbConfig, ["--protocol", "authors"], "doc")
    assert (project.data.max_new_tokens, project.method.splice, project.method.target, project.method.pad_topk) == \
        (16, "lossless", "answer-logprob", False)
    assert (authors.data.prompt, authors.data.max_new_tokens, authors.data.answer_format, authors.data.correct_f1) == \
        ("authors-open-turn", 50, "brackets", 0.9)
    assert (authors.method.splice, authors.method.answer_splice, authors.method.target, authors.method.scored_positions,
            authors.method.pad_topk) == ("reconstruct", "reconstruct", "format-token-prob", "all-at-target-step", True)
    assert PerturbConfig(protocol="authors") == authors                   # the library resolves the same way
    assert output_dir(authors, "perturb", 15).name == "smollm2-135m-it-L15-protocol_authors"
    # explicit options win over the preset, and the folder names what was set against it
    mixed = parse(PerturbConfig, ["--protocol", "authors", "--no-pad-topk", "--splice", "lossless",
                                  "--answer-splice", "none"], "doc")
    assert (mixed.method.pad_topk, mixed.method.splice, mixed.method.target) == (False, "lossless", "format-token-prob")
    assert output_dir(mixed, "perturb", 15).name == \
        "smollm2-135m-it-L15-protocol_authors-answer_splice_none-splice_lossless-pad_topk_False"
    # single pieces under the project protocol
    assert output_dir(parse(PerturbConfig, ["--pad-topk", "--target", "format-token-prob"], "doc"), "perturb", 15).name \
        == "smollm2-135m-it-L15-target_format-token-prob-pad_topk_True"
    steer = parse(SteerConfig, ["--protocol", "authors"], "doc")
    assert (steer.steering.positions, steer.steering.value_source, steer.steering.partner_seed) == ("current", "score", 42)
    assert steer.steering.partners == "correct"
    assert parse(SteerConfig, [], "doc").steering.partners == "different"
    with pytest.raises(SystemExit):
        parse(PerturbConfig, ["--protocol", "paper"], "doc")


def test_project_runs_record_no_option_added_later():
    """Folders written before the protocols existed must still resume: a project run records exactly the options
    it recorded then."""
    from gradsae_nn.config import result_options

    recorded = result_options(parse(SteerConfig, [], "doc"))
    assert not {"protocol", "answer_format", "answer_splice", "scored_positions", "pad_topk"} & set(recorded)
    assert {"protocol", "pad_topk", "scored_positions"} <= set(result_options(parse(SteerConfig, ["--protocol",
                                                                                                   "authors"], "doc")))
