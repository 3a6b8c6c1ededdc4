"""``sed-tools``: one command, one subcommand per tool (:mod:`sed_lightning.tools`).

What each subcommand computes is tested with its library module (tests/postprocessing,
tests/evaluation, tests/data/test_online.py), through :func:`sed_lightning.tools.main`.
"""

from __future__ import annotations

import argparse
import tomllib

import pytest

from sed_lightning.postprocessing.tuning import DEFAULT_GRID
from sed_lightning.tools import build_parser, main
from tests.conftest import ROOT

SUBCOMMANDS = ("tune", "tune-cv", "median-study", "conditions", "ensemble", "report", "rerender")


def subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action


def test_every_subcommand_is_listed_with_its_one_line_summary(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listing = " ".join(capsys.readouterr().out.split())
    action = subparsers(build_parser())
    assert tuple(action.choices) == SUBCOMMANDS
    summaries = {a.dest: a.help for a in action._choices_actions}
    for name in SUBCOMMANDS:
        summary = summaries[name]
        assert summary and "\n" not in summary and len(summary) <= 60, name
        assert f"{name} {summary}" in listing


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sed-tools {name} ")


def test_documented_command_lines_parse_with_the_old_tools_defaults():
    parser = build_parser()
    args = parser.parse_args(["tune", "runs/a"])
    assert args.windows == list(DEFAULT_GRID.windows)
    assert args.thresholds == list(DEFAULT_GRID.thresholds)
    assert args.min_durations == list(DEFAULT_GRID.min_durations)
    assert (args.bootstrap_samples, args.no_mfi_psds, args.tune_only) == (20, False, False)
    assert args.method == "median"
    args = parser.parse_args(["tune-cv", "a", "b", "--methods", "median", "sebbs"])
    assert args.folds == 2 and args.out is None and args.methods == ["median", "sebbs"]
    args = parser.parse_args(["median-study", "runs"])
    assert str(args.out) == "experiments/median_filter" and args.wandb is None
    args = parser.parse_args(["conditions", "a", "--conditions", "c.tsv"])
    assert (args.split, args.decoder, args.out) == ("val", "own", None)
    args = parser.parse_args(["ensemble", "a", "b", "--out", "ens", "--weights", "1", "2"])
    assert args.weights == [1.0, 2.0] and not args.no_tune
    args = parser.parse_args(["report", "experiments/pooling"])
    assert args.runs_dir is None and args.wandb is None
    args = parser.parse_args(["rerender", "run", "train_strong", "2", "5", "clip.wav"])
    assert (args.set, args.epoch, args.index) == ("train_strong", 2, 5)


def test_bad_options_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune-cv", "run", "--folds", "1"])
    assert exit_info.value.code == 2
    assert "argument --folds: must be at least 2, got 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2  # a subcommand is required


def test_a_missing_run_folder_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    missing = tmp_path / "no_run"
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", str(missing)])
    message = exit_info.value.code
    assert isinstance(message, str) and "\n" not in message
    assert message.startswith(f"sed-tools tune: {missing / 'val_scores'}: no such folder")
    with pytest.raises(SystemExit, match=f"^sed-tools median-study: .*{missing.name}"):
        main(["median-study", str(missing), "--out", str(tmp_path / "study")])
    with pytest.raises(SystemExit, match=f"^sed-tools conditions: {tmp_path / 'c.tsv'}"):
        main(["conditions", str(missing), "--conditions", str(tmp_path / "c.tsv")])


def test_installed_as_sed_tools():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["sed-tools"] == "sed_lightning.tools:main"
