"""``sed-tools``: the tools that work on saved runs, one command with subcommands.

Usage (``python -m sed_lightning.tools SUBCOMMAND ...`` runs the same)::

    sed-tools tune RUN_DIR [--windows 1 3 5 7 11 21] [--thresholds 0.1 ... 0.9]
        [--min-durations 0 0.1 ... 1.0] [--bootstrap-samples 20] [--no-mfi-psds]
        [--tune-only] [--method median|sebbs]
    sed-tools tune-cv RUN_DIR [RUN_DIR ...] [--folds 2] [--out FILE]
        [--methods median sebbs] [--windows ...] [--thresholds ...] [--min-durations ...]
    sed-tools median-study RUN_DIR [RUN_DIR ...] [--out DIR] [--windows ...]
        [--thresholds ...] [--min-durations ...] [--wandb PROJECT]
    sed-tools conditions RUN_DIR [RUN_DIR ...] --conditions FILE [--split val|test]
        [--decoder own|tuned] [--out FILE.json]
    sed-tools ensemble RUN_DIR RUN_DIR [...] --out DIR [--weights 1 1 ...] [--no-tune]
    sed-tools report STUDY_DIR [--runs-dir DIR] [--wandb PROJECT]
    sed-tools rerender RUN_DIR SET EPOCH INDEX OUT.wav

This module is the command line only (its options, what it prints, how it stops); the work
is library code:

- ``tune``: :mod:`sed_lightning.postprocessing.tuning` (what it reads and writes);
- ``tune-cv``: :mod:`sed_lightning.postprocessing.tuning_cv`;
- ``median-study``: :mod:`sed_lightning.postprocessing.median_study`;
- ``conditions``: :mod:`sed_lightning.evaluation.condition_study`;
- ``ensemble``: :mod:`sed_lightning.evaluation.ensemble_runs`;
- ``report``: :mod:`sed_lightning.evaluation.report`;
- ``rerender``: :func:`sed_lightning.data.online.rerender`.

An error its user can fix (a missing run folder or file, a bad label file) ends a
subcommand with one line ``sed-tools SUBCOMMAND: message`` (naming the file) and exit
status 1, no traceback (:func:`sed_lightning.common.exit_error`). ``tune-cv`` and
``conditions`` print such a line per run they cannot score, score the others, then exit
with status 1. The tools that read saved scores only (``tune``, ``tune-cv``,
``median-study``, ``conditions``) never import torch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sed_lightning.common import exit_error, plain
from sed_lightning.evaluation.condition_study import DECODERS
from sed_lightning.postprocessing import TUNE_METHODS
from sed_lightning.postprocessing.tuning import DEFAULT_GRID, MedianGrid
from sed_lightning.postprocessing.tuning_cv import TUNERS

PROG = "sed-tools"


# --------------------------------------------------------------------------- options
def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """``--windows``, ``--thresholds`` and ``--min-durations``: the fields of a
    :class:`~sed_lightning.postprocessing.tuning.MedianGrid` (``tune``, ``tune-cv`` and
    ``median-study``), defaulting to
    :data:`~sed_lightning.postprocessing.tuning.DEFAULT_GRID`."""
    parser.add_argument("--windows", type=int, nargs="+", default=list(DEFAULT_GRID.windows))
    parser.add_argument(
        "--thresholds", type=float, nargs="+", default=list(DEFAULT_GRID.thresholds)
    )
    parser.add_argument(
        "--min-durations",
        type=float,
        nargs="+",
        default=list(DEFAULT_GRID.min_durations or ()),
        help="minimum event durations (s) tried per class; the run's own value alone keeps it",
    )


def grid_of(args: argparse.Namespace) -> MedianGrid:
    """The grid of the options of :func:`add_grid_arguments`."""
    return MedianGrid(tuple(args.windows), tuple(args.thresholds), tuple(args.min_durations))


def folds(text: str) -> int:
    """``--folds``: an integer, at least 2."""
    k = int(text)
    if k < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {k}")
    return k


def add_subcommand(
    subparsers: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], None],
    summary: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Subcommand ``name``: ``summary`` is its line in ``sed-tools --help``; ``run`` does it."""
    parser = subparsers.add_parser(name, help=summary, description=description or summary)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: ``sed-tools`` and its subcommands (nothing is run)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tools that work on saved runs: tune their post-processing, study it, "
        "ensemble them, report a study; re-render a training clip.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    parsers = {name: add_subcommand(subparsers, name, *spec) for name, spec in SUBCOMMANDS.items()}

    tune = parsers["tune"]
    tune.add_argument("run_dir", type=Path)
    add_grid_arguments(tune)
    tune.add_argument(
        "--bootstrap-samples", type=int, default=20, help="0: no confidence intervals"
    )
    tune.add_argument("--no-mfi-psds", action="store_true")
    tune.add_argument("--tune-only", action="store_true", help="do not read the test files")
    tune.add_argument(
        "--method",
        choices=TUNE_METHODS,
        default="median",
        help="median: per-class median window + threshold + minimum duration; sebbs: sound "
        "event bounding boxes",
    )

    cv = parsers["tune-cv"]
    cv.add_argument("run_dirs", type=Path, nargs="+", help="run folders (with val_scores/)")
    cv.add_argument("--folds", type=folds, default=2, help="k (at least 2)")
    cv.add_argument("--out", type=Path, help="write the result as JSON (default: print only)")
    add_grid_arguments(cv)
    cv.add_argument(
        "--methods",
        nargs="+",
        choices=list(TUNERS),
        default=["median"],
        help="tuning methods compared on the held-out folds (sebbs: the optional `sebbs` "
        "package); several: each further one is also compared with the first",
    )

    study = parsers["median-study"]
    study.add_argument(
        "run_dirs", type=Path, nargs="+", help="run folders, or folders to search for runs"
    )
    study.add_argument("--out", type=Path, default=Path("experiments/median_filter"))
    add_grid_arguments(study)
    study.add_argument("--wandb", metavar="PROJECT", help="also log the table to W&B")

    conditions = parsers["conditions"]
    conditions.add_argument("run_dirs", type=Path, nargs="+")
    conditions.add_argument(
        "--conditions",
        type=Path,
        required=True,
        help="TSV (filename + condition columns) or the split's synthesized recipes.jsonl",
    )
    conditions.add_argument("--split", choices=("val", "test"), default="val")
    conditions.add_argument("--decoder", choices=DECODERS, default="own")
    conditions.add_argument(
        "--out", type=Path, help="write the per-run and summary figures as JSON"
    )

    ensemble = parsers["ensemble"]
    ensemble.add_argument("run_dirs", type=Path, nargs="+")
    ensemble.add_argument("--out", type=Path, required=True)
    ensemble.add_argument("--weights", type=float, nargs="+", default=None)
    ensemble.add_argument("--no-tune", action="store_true", help="validation only; no test read")

    report = parsers["report"]
    report.add_argument("study_dir", type=Path, help="experiments/<study>: results.* go here")
    report.add_argument("--runs-dir", type=Path, help="where the runs are (default: study_dir)")
    report.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="also log the table and plot as a W&B run of PROJECT (offline unless configured)",
    )

    rerender = parsers["rerender"]
    rerender.add_argument("run_dir", type=Path)
    rerender.add_argument("set")
    rerender.add_argument("epoch", type=int)
    rerender.add_argument("index", type=int)
    rerender.add_argument("out", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``sed-tools`` with ``argv`` (default: the process's arguments)."""
    args = build_parser().parse_args(argv)
    args.run(args)


def fail(args: argparse.Namespace, err: BaseException) -> SystemExit:
    """The one-line exit of subcommand ``args.command`` for ``err``."""
    return exit_error(f"{PROG} {args.command}", err)


def write_json(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plain(result, nan=None), indent=2))
    print(f"written: {path}")


def report_errors(args: argparse.Namespace, errors: Sequence[str], scored: int) -> None:
    """One line on stderr per run that could not be scored; stop when none was."""
    for line in errors:
        print(f"{PROG} {args.command}: {line}", file=sys.stderr)
    if not scored:
        raise SystemExit(f"{PROG} {args.command}: no run could be scored")


# --------------------------------------------------------------------------- subcommands
def run_tune(args: argparse.Namespace) -> None:
    """Tune, then (unless ``--tune-only``) evaluate on test, printing both steps."""
    from sed_lightning.data.tsv import LabelFileError

    try:
        tune_and_print(args)
    except (OSError, LabelFileError) as err:  # e.g. a run saved before val_scores/ existed
        raise fail(args, err) from None


def tune_and_print(args: argparse.Namespace) -> None:
    """``tune``'s work: the tuning table, then the before/after test figures."""
    from sed_lightning.postprocessing.tuning import (
        comparison_table,
        evaluate_tuned,
        tune_run,
        tune_sebbs,
    )
    from sed_lightning.run_files import METHOD_FILES

    start = time.perf_counter()
    if args.method == "sebbs":
        metrics = tune_sebbs(args.run_dir, test=not args.tune_only)
        for key in sorted(
            k for k, v in metrics.items() if k.count("/") == 1 and isinstance(v, float)
        ):
            print(f"{key:<34} {metrics[key]:.4f}")
        path = args.run_dir / METHOD_FILES["sebbs"][0]
        print(f"-> {path} ({time.perf_counter() - start:.1f} s)")
        return
    tuning = tune_run(args.run_dir, grid_of(args))
    print(tuning.table.to_string(index=False))
    print(
        f"tuned on validation in {time.perf_counter() - start:.1f} s -> "
        f"{args.run_dir / METHOD_FILES['median'][0]}"
    )
    if args.tune_only:
        return
    before, after = evaluate_tuned(
        args.run_dir, tuning, args.windows, args.bootstrap_samples, not args.no_mfi_psds
    )
    print(comparison_table(before, after))
    extras = {k: v for k, v in after.items() if "_ci_" in k or "mfi_" in k}
    print("\n".join(f"{k:<34} {v:.4f}" for k, v in extras.items()))
    print("PSDS: sed_scores_eval on the raw scores (threshold and median-filter independent).")
    print(f"-> {args.run_dir / METHOD_FILES['median'][1]} ({time.perf_counter() - start:.1f} s)")


def run_tune_cv(args: argparse.Namespace) -> None:
    """Cross-validate the tuning of every run; print the table (and write ``--out``)."""
    from sed_lightning.postprocessing.tuning_cv import markdown, study

    start = time.perf_counter()
    if "sebbs" in args.methods:
        from sed_lightning.postprocessing.sebbs import import_sebbs

        try:
            import_sebbs()
        except ImportError as err:
            raise fail(args, err) from None
    methods = list(dict.fromkeys(args.methods))  # in the given order, once each
    result, errors = study(args.run_dirs, args.folds, methods, grid_of(args))
    report_errors(args, errors, len(result["runs"]))
    print(markdown(result))
    if args.out:
        write_json(args.out, result)
    print(f"elapsed: {time.perf_counter() - start:.1f} s (validation scores only)")
    if errors:
        raise SystemExit(1)


def run_median_study(args: argparse.Namespace) -> None:
    """Write the median-filter study into ``--out`` and print its table."""
    from sed_lightning.data.tsv import LabelFileError
    from sed_lightning.postprocessing.median_study import study

    start = time.perf_counter()
    try:
        table = study(args.run_dirs, args.out, grid_of(args))
    except (OSError, LabelFileError) as err:  # e.g. a run without val_scores/
        raise fail(args, err) from None
    print((args.out / "results.md").read_text())
    print(f"written: {args.out}/runs.csv, results.csv, results.md, results.png")
    print(f"elapsed: {time.perf_counter() - start:.1f} s (saved scores only, no model loaded)")
    if args.wandb:
        from sed_lightning.training.wandb_media import log_results_table

        run_dir = log_results_table(
            table, args.wandb, "median_filter", args.out, image=args.out / "results.png"
        )
        print(f"W&B: {run_dir}")


def run_conditions(args: argparse.Namespace) -> None:
    """Score every run per condition; print the table (and write ``--out``)."""
    from sed_lightning.data.tsv import LabelFileError
    from sed_lightning.evaluation.condition_study import markdown, study
    from sed_lightning.evaluation.conditions import read_conditions

    try:
        table = read_conditions(args.conditions)
    except (OSError, LabelFileError) as err:
        raise fail(args, err) from None
    result, errors = study(args.run_dirs, table, args.split, args.decoder)
    report_errors(args, errors, len(result["runs"]))
    print(markdown(result["summary"], len(result["runs"]), args.split, args.decoder))
    if args.out:
        write_json(args.out, result)
    if errors:
        raise SystemExit(1)


def run_ensemble(args: argparse.Namespace) -> None:
    """Build the ensemble folder and print members and ensemble side by side."""
    from sed_lightning.data.tsv import LabelFileError
    from sed_lightning.evaluation.ensemble import EnsembleError
    from sed_lightning.evaluation.ensemble_runs import build, members_table

    start = time.perf_counter()
    print(f"ensemble of {len(args.run_dirs)} runs -> {args.out}", flush=True)
    try:
        figures = build(args.run_dirs, args.out, args.weights, tune=not args.no_tune)
    except (OSError, LabelFileError, EnsembleError) as err:
        raise fail(args, err) from None
    print(members_table(args.run_dirs, figures))
    print(f"-> {args.out} ({time.perf_counter() - start:.1f} s)")


def run_report(args: argparse.Namespace) -> None:
    """Write the study's report and print it."""
    import logging

    from sed_lightning.evaluation.report import report

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        table = report(args.study_dir, args.runs_dir)
    except FileNotFoundError as err:
        raise fail(args, err) from None
    if args.wandb:
        from sed_lightning.training.wandb_media import log_results_table

        folder = log_results_table(
            table,
            args.wandb,
            name=f"ablation-{args.study_dir.name}",
            save_dir=args.study_dir,
            image=args.study_dir / "results.png",
        )
        print(f"W&B run: {folder}")
    print((args.study_dir / "results.md").read_text())
    print(f"written: {args.study_dir}/results.csv, results.md, results.png")


def run_rerender(args: argparse.Namespace) -> None:
    """Render the clip again; print where it went."""
    from sed_lightning.data.online import rerender

    try:
        recipe = rerender(args.run_dir, args.set, args.epoch, args.index, args.out)
    except (OSError, ValueError) as err:
        raise fail(args, err) from None
    print(f"wrote {args.out} and its recipe {recipe}")


#: Each subcommand: ``(run, its line in sed-tools --help, its description)``.
SUBCOMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], str, str | None]] = {
    "tune": (
        run_tune,
        "tune a run's decoder on validation, then score its test",
        "Tune per-class median window, threshold and minimum duration (or, --method sebbs, "
        "sound event bounding boxes) on a run's validation scores; evaluate on test.",
    ),
    "tune-cv": (
        run_tune_cv,
        "k-fold cross-validation of the tuning inside validation",
        "k-fold cross-validation of the per-class post-processing tuning inside each run's "
        "validation set (test files never read).",
    ),
    "median-study": (
        run_median_study,
        "test F1 vs median window, from saved runs' scores",
        "Test F1 vs median window from the saved scores of runs (one per seed).",
    ),
    "conditions": (
        run_conditions,
        "figures per condition (background, EBR) of saved runs",
        "Figures per condition (background kind, background, EBR level) of saved runs' scores.",
    ),
    "ensemble": (
        run_ensemble,
        "average saved runs' scores into an ensemble run folder",
        "Average the saved frame scores of several runs into an ensemble run folder; tune its "
        "decoder on validation, then score its test.",
    ),
    "report": (
        run_report,
        "ablation report of a study's runs: results.md, .csv, .png",
        "Ablation report over a study's runs: results.csv, results.md, results.png.",
    ),
    "rerender": (
        run_rerender,
        "render one training clip of an online run again",
        "Re-render one training clip of a run from its config: RUN_DIR SET EPOCH INDEX OUT "
        "(the audio, and its recipe and truth beside it as OUT.json).",
    ),
}


if __name__ == "__main__":
    main()
