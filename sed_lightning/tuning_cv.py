"""Does the per-class post-processing tuning generalize? k-fold cross-validation inside the
validation set (saved scores only, no model loaded, the test files never read).

Usage::

    python -m sed_lightning.tune_postprocess cv RUN_DIR [RUN_DIR ...] [--folds 2] [--out FILE]
        [--windows 1 3 5 7 11 21] [--thresholds 0.1 ... 0.9]
    (also: python -m sed_lightning.tuning_cv RUN_DIR ...)

:func:`sed_lightning.tune_postprocess.tune` picks each class's median window and threshold on
a run's validation scores, so its validation F1 is in-sample. Here the validation clips
(``val_scores/``, sorted audio ids) are split into k folds (clip i in fold i % k,
:func:`fold_split`); for each fold the decoder is tuned on the other folds (the same
:func:`~sed_lightning.tune_postprocess.tune`, grid and run's own post-processing as the
base, :func:`~sed_lightning.tune_postprocess.run_postprocess`) and the held-out fold is
scored with the run's own decoder (``default``) and with the tuned one (``tuned``): macro
event-based F1 (sed_eval, the tuning's settings,
:func:`~sed_lightning.tune_postprocess.class_event_f1`) over the classes with reference
events in that fold. A run's figure is the mean over its folds (folds without reference
events are left out); over runs, mean ± std (ddof=1) and a paired t-test of tuned against
default (``scipy.stats.ttest_rel``; n/a with fewer than 2 runs). Only ``val_scores/``,
``val_reference.tsv``, ``val_durations.tsv`` and the run's post-processing settings are
read; ``scores/`` and ``test_reference.tsv`` are not. A run that cannot be scored (e.g. no
``val_scores/``) gets a one-line error and the others are still scored (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sed_lightning.common import plain
from sed_lightning.data.tsv import LabelFileError
from sed_lightning.evaluation.tables import fmt_cell, fmt_mean_std, paired_ttest_p
from sed_lightning.tune_postprocess import (
    THRESHOLDS,
    WINDOWS,
    SavedSplit,
    class_event_f1,
    decode,
    events_by_class,
    load_split,
    run_postprocess,
    tune,
)

DECODERS = ("default", "tuned")
TEST_NAME = "paired t-test over runs (scipy.stats.ttest_rel)"


def fold_split(files: Sequence[str], k: int) -> list[list[str]]:
    """Deterministic k-fold split: ``files[i]`` goes to fold ``i % k``.

    Shape:
        - files: ``n`` audio ids, in the caller's order (:attr:`SavedSplit.files`: sorted)
        - output: ``k`` lists, fold ``j`` = ``files[j::k]`` (``ceil((n - j) / k)`` ids);
          together a partition of ``files``

    >>> fold_split(["a", "b", "c", "d", "e"], 2)
    [['a', 'c', 'e'], ['b', 'd']]
    >>> fold_split(["a", "b", "c", "d", "e"], 3)
    [['a', 'd'], ['b', 'e'], ['c']]
    >>> fold_split(["a"], 2)
    Traceback (most recent call last):
    ...
    ValueError: 2 folds need at least 2 clips, got 1
    """
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    if len(files) < k:
        raise ValueError(f"{k} folds need at least {k} clips, got {len(files)}")
    return [list(files[j::k]) for j in range(k)]


def macro_event_f1(split: SavedSplit, postprocess: Mapping[str, Any]) -> float:
    """Mean event-based F1 (sed_eval, the tuning's settings) over the classes with reference
    events in ``split``, decoded with ``postprocess``; NaN when it has no reference event."""
    reference = events_by_class(split.reference)
    estimated = events_by_class(decode(split, postprocess))
    classes = [c for c in split.classes if c in reference]
    if not classes:
        return math.nan
    return float(np.mean([class_event_f1(reference, estimated, c) for c in classes]))


def cross_validate(
    run_dir: str | Path,
    folds: int = 2,
    windows: Sequence[int] = WINDOWS,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[str, Any]:
    """k-fold cross-validation of the tuning on one run's validation split.

    Returns ``run``, ``n_clips``, ``folds`` (per fold: ``n_clips``, ``classes`` scored,
    ``default``, ``tuned``, ``difference``) and the means over the folds with a score:
    ``default``, ``tuned``, ``difference`` (tuned - default), ``n_folds_scored``.
    """
    val = load_split(run_dir, "val")  # the test files are never read
    base = run_postprocess(run_dir)
    parts = fold_split(val.files, folds)
    rows = []
    for j, held_out in enumerate(parts):
        train = val.subset([f for i, part in enumerate(parts) if i != j for f in part])
        fold = val.subset(held_out)
        tuned = tune(train, base, windows, thresholds).postprocess
        default_f1, tuned_f1 = macro_event_f1(fold, base), macro_event_f1(fold, tuned)
        rows.append(
            {
                "fold": j,
                "n_clips": len(held_out),
                "classes": sorted(set(fold.reference["event_label"].dropna())),
                "default": default_f1,
                "tuned": tuned_f1,
                "difference": tuned_f1 - default_f1,
            }
        )
    scored = [r for r in rows if not math.isnan(r["default"])]
    means = {
        key: float(np.mean([r[key] for r in scored])) if scored else math.nan
        for key in (*DECODERS, "difference")
    }
    return {
        "run": str(run_dir),
        "n_clips": len(val.files),
        **means,
        "n_folds_scored": len(scored),
        "folds": rows,
    }


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean, std (ddof=1; NaN with one run) over runs of ``default``, ``tuned`` and
    ``difference``, and the paired t-test p of tuned against default."""
    ok = [r for r in runs if not math.isnan(r["default"])]
    out: dict[str, Any] = {"n_runs": len(ok)}
    for key in (*DECODERS, "difference"):
        values = np.array([r[key] for r in ok], dtype=float)
        out[f"{key}_mean"] = float(values.mean()) if len(values) else math.nan
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    out["p"] = paired_ttest_p([r["tuned"] for r in ok], [r["default"] for r in ok])
    return out


def markdown(result: Mapping[str, Any]) -> str:
    """The table: one row per run (means over its folds), then mean ± std over runs."""
    summary = result["summary"]
    lines = [
        f"# Post-processing tuning, {result['folds']}-fold cross-validation on validation",
        "",
        "- per fold: tuned (per-class median window + threshold) on the other folds, scored "
        "on the held-out fold; macro event-F1 (sed_eval) over the classes with events there",
        "- default: the run's own post-processing; difference: tuned - default",
        f"- runs: mean over folds; all runs: mean ± std (ddof=1); p: {TEST_NAME}",
        "",
        "| run | clips | default | tuned | difference |",
        "|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| `{r['run']}` | {r['n_clips']} | {r['default']:.3f} | {r['tuned']:.3f} "
            f"| {r['difference']:+.3f} |"
        )
    diff = {"reference": False, "difference_p": summary["p"], **summary}  # a fmt_cell row
    lines.append(
        f"| **all ({summary['n_runs']} runs)** | | "
        f"{fmt_mean_std(summary['default_mean'], summary['default_std'])} | "
        f"{fmt_mean_std(summary['tuned_mean'], summary['tuned_std'])} | "
        f"{fmt_cell(diff, 'difference')} |"
    )
    return "\n".join(lines)


def study(
    run_dirs: Sequence[Path],
    folds: int = 2,
    windows: Sequence[int] = WINDOWS,
    thresholds: Sequence[float] = THRESHOLDS,
) -> tuple[dict[str, Any], list[str]]:
    """Cross-validate every run; returns the result (``runs``, ``summary``, settings) and
    one error line per run that could not be scored."""
    runs, errors = [], []
    for run_dir in run_dirs:
        try:
            runs.append(cross_validate(run_dir, folds, windows, thresholds))
        except (OSError, LabelFileError, ValueError) as err:
            errors.append(f"tuning cv: {run_dir}: {' '.join(str(err).split())}")
    result = {
        "folds": folds,
        "windows": list(windows),
        "thresholds": list(thresholds),
        "runs": runs,
        "summary": summarize(runs),
        "errors": errors,
    }
    return result, errors


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sed_lightning.tune_postprocess cv",
        description="k-fold cross-validation of the per-class post-processing tuning inside "
        "each run's validation set (test files never read).",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run folders (with val_scores/)")
    parser.add_argument("--folds", type=int, default=2, help="k (at least 2)")
    parser.add_argument("--out", type=Path, help="write the result as JSON (default: print only)")
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error(f"--folds must be at least 2, got {args.folds}")
    start = time.perf_counter()
    result, errors = study(args.run_dirs, args.folds, args.windows, args.thresholds)
    for line in errors:
        print(line, file=sys.stderr)
    if not result["runs"]:
        raise SystemExit("tuning cv: no run could be scored")
    print(markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(plain(result, nan=None), indent=2))
        print(f"written: {args.out}")
    print(f"elapsed: {time.perf_counter() - start:.1f} s (validation scores only)")
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
