"""Tune per-class post-processing on a run's VALIDATION scores, then report its test metrics.

Usage::

    python -m sed_lightning.tune_postprocess RUN_DIR [--windows 1 3 5 7 11 21]
        [--thresholds 0.1 0.2 ... 0.9] [--min-durations 0 0.1 ... 1.0] [--bootstrap-samples 20]
        [--no-mfi-psds] [--tune-only]
    python -m sed_lightning.tune_postprocess RUN_DIR --method sebbs [--tune-only]
    python -m sed_lightning.tune_postprocess median-study RUN_DIR [RUN_DIR ...] --out DIR
        (see :mod:`sed_lightning.median_study`)
    python -m sed_lightning.tune_postprocess cv RUN_DIR [RUN_DIR ...] [--folds 2] [--out FILE]
        [--methods median sebbs]
        (does the tuning generalize? k-fold cross-validation inside the validation set,
        default vs tuned decoders on held-out folds, test files never read; see
        :mod:`sed_lightning.tuning_cv`)
    python -m sed_lightning.tune_postprocess conditions RUN_DIR [RUN_DIR ...]
        --conditions SET_DIR/recipes.jsonl [--split val] [--decoder own|tuned]
        (figures per background / EBR level; see :mod:`sed_lightning.condition_study`)

A training run writes (``SEDEvaluation``) ``val_scores/`` + ``val_reference.tsv`` +
``val_durations.tsv`` (validation scores of the tested weights) next to the test outputs
``scores/`` + ``test_reference.tsv`` + ``test_durations.tsv``.

1. **Tuning** reads the validation files only: for every median window of the grid (in frames;
   seconds = frames x the frame hop read from the scores' timestamps), every threshold and
   every minimum event duration of the grids, the validation clips are decoded and scored
   with sed_eval (event-based F1, settings of :mod:`sed_lightning.evaluation.settings`); each
   class keeps the triple with its best F1 (ties: the window, the threshold, then the
   minimum duration nearest the run's own). Classes without validation events keep the
   run's settings. ``--min-durations`` with the run's own value alone keeps it. Written
   to ``RUN_DIR/postprocess_tuned.yaml`` and ``RUN_DIR/conf/postprocess/tuned.yaml`` (use it
   in a run: ``hydra.searchpath=[file://RUN_DIR/conf] postprocess=tuned``).
2. **Test** (only then are ``scores/`` read): ``RUN_DIR/metrics_tuned.json`` with the keys of
   ``metrics.json`` (``test/clip_map`` is copied: clip scores do not depend on
   post-processing). ``test/psds1`` / ``test/psds2`` are sed_scores_eval's PSDS of the raw
   (unfiltered) scores: threshold- and median-filter-independent, the same before and after
   tuning. Also ``test/psds{1,2}_ci_{mean,low,high}``: sed_scores_eval's bootstrapped PSDS
   (``intersection_based.bootstrapped_psds``: ``samples`` resamples of the clips with
   replacement, 90 % interval), and ``test/mfi_psds{1,2}``: sed_scores_eval's
   median-filter-independent PSDS (``intersection_based.median_filter_independent_psds``:
   per class and eFPR the best TPR over the median windows of the grid; it picks windows on
   the test itself, an upper bound), and ``test/psds{1,2}_filtered``: PSDS of the scores
   median-filtered with the tuned per-class windows, as the DCASE baselines report PSDS (on
   their post-processed scores), in both ``metrics_tuned.json`` and, with the run's own
   windows, the "before" column.

``--method sebbs`` tunes sound event bounding boxes instead (cSEBBs through the ``sebbs``
package, :mod:`sed_lightning.postprocessing.sebbs`): per class the step filter, merge
threshold and detection threshold with the best validation F1, written to
``RUN_DIR/postprocess_sebbs.yaml``; the test metrics go to ``RUN_DIR/metrics_sebbs.json``
(validation figures of the tuned boxes beside them, ``val/...``).

A training run does the same at its end with ``postprocess=tuned_median`` or
``postprocess=sebbs`` (``postprocess.tune``):
:func:`~sed_lightning.postprocessing.tuning.tune_and_test`, called by
:mod:`sed_lightning.training.tuning` after the test and the validation scores.
This module is the command line only: the tuning and the test metrics are
:mod:`sed_lightning.postprocessing.tuning`, which the other studies import.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sed_lightning.data.tsv import LabelFileError
from sed_lightning.postprocessing import TUNE_METHODS
from sed_lightning.postprocessing.tuning import (
    MedianGrid,
    add_grid_arguments,
    comparison_table,
    evaluate_tuned,
    tune_run,
    tune_sebbs,
)
from sed_lightning.run_files import METHOD_FILES


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sed_lightning.tune_postprocess",
        description="Tune per-class median window, threshold and minimum duration on validation "
        "scores; "
        "evaluate on test. Subcommands `median-study RUN_DIR... --out DIR`: see median_study; "
        "`cv RUN_DIR... [--folds K] [--methods median sebbs] [--out FILE]`: see tuning_cv; "
        "`conditions RUN_DIR... --conditions FILE`: see condition_study.",
    )
    parser.add_argument("run_dir", type=Path)
    add_grid_arguments(parser)
    parser.add_argument(
        "--bootstrap-samples", type=int, default=20, help="0: no confidence intervals"
    )
    parser.add_argument("--no-mfi-psds", action="store_true")
    parser.add_argument("--tune-only", action="store_true", help="do not read the test files")
    parser.add_argument(
        "--method",
        choices=TUNE_METHODS,
        default="median",
        help="median: per-class median window + threshold + minimum duration; sebbs: sound "
        "event bounding boxes",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "median-study":
        from sed_lightning.median_study import main as study_main

        study_main(argv[1:])
        return
    if argv and argv[0] == "cv":
        from sed_lightning.tuning_cv import main as cv_main

        cv_main(argv[1:])
        return
    if argv and argv[0] == "conditions":
        from sed_lightning.condition_study import main as conditions_main

        conditions_main(argv[1:])
        return
    args = parse_args(argv)
    try:
        run(args)
    except (OSError, LabelFileError) as err:  # e.g. a run saved before val_scores/ existed
        raise SystemExit(f"tune_postprocess: {err}") from None


def run(args: argparse.Namespace) -> None:
    """Tune, then (unless ``--tune-only``) evaluate on test, printing both steps."""
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
    tuning = tune_run(args.run_dir, MedianGrid.from_args(args))
    print(tuning.table.to_string(index=False))
    print(
        f"tuned on validation in {time.perf_counter() - start:.1f} s -> "
        f"{args.run_dir / METHOD_FILES['median'][0]}"
    )
    if args.tune_only:
        return
    before, after = evaluate_tuned(
        args.run_dir,
        tuning,
        args.windows,
        args.bootstrap_samples,
        not args.no_mfi_psds,
    )
    print(comparison_table(before, after))
    extras = {k: v for k, v in after.items() if "_ci_" in k or "mfi_" in k}
    print("\n".join(f"{k:<34} {v:.4f}" for k, v in extras.items()))
    print("PSDS: sed_scores_eval on the raw scores (threshold and median-filter independent).")
    print(f"-> {args.run_dir / METHOD_FILES['median'][1]} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
