"""Does the per-class post-processing tuning generalize? k-fold cross-validation inside the
validation set (saved scores only, no model loaded, the test files never read).

Usage (:mod:`sed_lightning.tools`)::

    sed-tools tune-cv RUN_DIR [RUN_DIR ...] [--folds 2] [--out FILE]
        [--methods median sebbs] [--windows 1 3 5 7 11 21] [--thresholds 0.1 ... 0.9]
        [--min-durations 0 ... 1.0]

:func:`sed_lightning.postprocessing.tuning.tune` picks each class's median window, threshold and
minimum duration on
a run's validation scores (``--method sebbs``: cSEBBs' step filter, merge and detection
thresholds), so its validation F1 is in-sample. Here the validation clips (``val_scores/``,
sorted audio ids) are split into k folds (clip i in fold i % k, :func:`fold_split`); for
each fold every tuning method of ``--methods`` (:data:`TUNERS`; default ``median``) is tuned
on the other folds (the same tuning and grids as ``sed-tools tune``, the run's own
post-processing as the median tuning's base,
:func:`~sed_lightning.postprocessing.saved_runs.run_postprocess`) and the held-out fold is decoded by
the run's own decoder (``default``) and by each tuned one: macro event-based F1 (sed_eval,
the tuning's settings, :func:`~sed_lightning.postprocessing.tuning.class_event_f1`) over the
classes with reference events in that fold. A run's figure is the mean over its folds
(folds without reference events are left out); over runs, mean ± std (ddof=1) and a paired
t-test (``scipy.stats.ttest_rel``; n/a with fewer than 2 runs) of each method against
``default`` and, with several methods, of each further one against the first (e.g.
``sebbs-median``: which tuned decoder generalizes better). Only ``val_scores/``,
``val_reference.tsv``, ``val_durations.tsv`` and the run's post-processing settings are
read; ``scores/`` and ``test_reference.tsv`` are not. A run that cannot be scored (e.g. no
``val_scores/``) gets a one-line error (:func:`study`) and the others are still scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed_lightning.data.tsv import LabelFileError
from sed_lightning.evaluation.metrics import ground_truth_events
from sed_lightning.evaluation.tables import fmt_cell, fmt_mean_std, paired_ttest_p
from sed_lightning.postprocessing.saved_runs import (
    SavedSplit,
    decode,
    load_split,
    run_postprocess,
)
from sed_lightning.postprocessing.tuning import (
    DEFAULT_GRID,
    MedianGrid,
    class_event_f1,
    events_by_class,
    tune,
)

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


#: A decoder: a split's saved scores -> its event table (``filename onset offset event_label``)
Decoder = Callable[[SavedSplit], pd.DataFrame]


#: A tuning: the folds it is tuned on -> its decoder
Tuner = Callable[[SavedSplit], Decoder]


def median_tuner(base: Mapping[str, Any], grid: MedianGrid) -> Tuner:
    """Per-class median window + threshold + minimum duration of ``grid`` tuned on the given
    folds (``base``: the run's own settings, kept for classes without events there)."""

    def tune_median(train: SavedSplit) -> Decoder:
        postprocess = tune(train, base, grid).postprocess
        return lambda split: decode(split, postprocess)

    return tune_median


def sebbs_tuner(base: Mapping[str, Any], grid: MedianGrid) -> Tuner:
    """cSEBBs tuned per class on the given folds, on cSEBBs' own grid (the run's settings
    and the median grid do not enter it)."""

    def tune_sebbs(train: SavedSplit) -> Decoder:
        from sed_lightning.postprocessing.sebbs import SEBBsPostProcessor

        events = ground_truth_events(train.reference)
        tuned, _ = SEBBsPostProcessor.tune(train.score_dfs, events, train.durations)
        return lambda split: tuned(split.score_dfs)

    return tune_sebbs


#: ``--methods`` (same names as ``sed-tools tune --method``) -> its tuner, made from the
#: run's own post-processing and the median grid
TUNERS: dict[str, Callable[[Mapping[str, Any], MedianGrid], Tuner]] = {
    "median": median_tuner,
    "sebbs": sebbs_tuner,
}


def comparisons(methods: Sequence[str]) -> list[tuple[str, str]]:
    """The differences reported, ``(a, b)`` for ``a - b``: each method against ``default``,
    then each further method against the first.

    >>> comparisons(["median"])
    [('median', 'default')]
    >>> comparisons(["median", "sebbs"])
    [('median', 'default'), ('sebbs', 'default'), ('sebbs', 'median')]
    """
    return [(m, "default") for m in methods] + [(m, methods[0]) for m in methods[1:]]


def difference_key(a: str, b: str) -> str:
    return f"{a}-{b}"


def macro_event_f1(split: SavedSplit, estimated: pd.DataFrame) -> float:
    """Mean event-based F1 (sed_eval, the tuning's settings) over the classes with reference
    events in ``split`` of the event table ``estimated``; NaN when it has no reference
    event."""
    reference = events_by_class(split.reference)
    found = events_by_class(estimated)
    classes = [c for c in split.classes if c in reference]
    if not classes:
        return math.nan
    return float(np.mean([class_event_f1(reference, found, c) for c in classes]))


def cross_validate(
    run_dir: str | Path,
    folds: int = 2,
    methods: Sequence[str] = ("median",),
    grid: MedianGrid = DEFAULT_GRID,
) -> dict[str, Any]:
    """k-fold cross-validation of the tuning ``methods`` on one run's validation split.

    Returns ``run``, ``n_clips``, ``methods``, ``folds`` (per fold: ``n_clips``,
    ``classes`` scored, the F1 of ``default`` and of each method, and each difference of
    :func:`comparisons`, e.g. ``median-default``) and the means of those over the folds
    with a score, with ``n_folds_scored``.
    """
    unknown = [m for m in methods if m not in TUNERS]
    if unknown or not methods:
        raise ValueError(f"tuning methods {list(methods)}: allowed {list(TUNERS)}")
    val = load_split(run_dir, "val")  # the test files are never read
    base = run_postprocess(run_dir)
    tuners = {method: TUNERS[method](base, grid) for method in methods}
    decoders = ("default", *methods)
    pairs = comparisons(methods)
    parts = fold_split(val.files, folds)
    rows = []
    for j, held_out in enumerate(parts):
        train = val.subset([f for i, part in enumerate(parts) if i != j for f in part])
        fold = val.subset(held_out)
        row: dict[str, Any] = {
            "fold": j,
            "n_clips": len(held_out),
            "classes": sorted(set(fold.reference["event_label"].dropna())),
            "default": macro_event_f1(fold, decode(fold, base)),
        }
        for method in methods:
            decoder = tuners[method](train)
            row[method] = macro_event_f1(fold, decoder(fold))
        row.update({difference_key(a, b): row[a] - row[b] for a, b in pairs})
        rows.append(row)
    scored = [r for r in rows if not math.isnan(r["default"])]
    keys = [*decoders, *(difference_key(a, b) for a, b in pairs)]
    means = {key: float(np.mean([r[key] for r in scored])) if scored else math.nan for key in keys}
    return {
        "run": str(run_dir),
        "n_clips": len(val.files),
        "methods": list(methods),
        **means,
        "n_folds_scored": len(scored),
        "folds": rows,
    }


def summarize(runs: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """Mean, std (ddof=1; NaN with one run) over runs of ``default``, each method and each
    difference of :func:`comparisons`, and each difference's paired t-test p
    (``<a>-<b>_p``)."""
    ok = [r for r in runs if not math.isnan(r["default"])]
    out: dict[str, Any] = {"n_runs": len(ok)}
    pairs = comparisons(methods)
    for key in ("default", *methods, *(difference_key(a, b) for a, b in pairs)):
        values = np.array([r[key] for r in ok], dtype=float)
        out[f"{key}_mean"] = float(values.mean()) if len(values) else math.nan
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    for a, b in pairs:
        out[f"{difference_key(a, b)}_p"] = paired_ttest_p([r[a] for r in ok], [r[b] for r in ok])
    return out


METHOD_TEXT = {
    "median": "per-class median window + threshold + minimum duration",
    "sebbs": "cSEBBs (per-class step filter, merge and detection thresholds)",
}


def markdown(result: Mapping[str, Any]) -> str:
    """The table: one row per run (means over its folds), then mean ± std over runs."""
    summary, methods = result["summary"], result["methods"]
    differences = [difference_key(a, b) for a, b in comparisons(methods)]
    columns = ["default", *methods, *differences]
    tuned = "; ".join(f"{m}: {METHOD_TEXT[m]}" for m in methods)
    lines = [
        f"# Post-processing tuning, {result['folds']}-fold cross-validation on validation",
        "",
        f"- per fold: tuned on the other folds ({tuned}), scored on the held-out fold; "
        "macro event-F1 (sed_eval) over the classes with events there",
        "- default: the run's own post-processing; a-b: the difference of the two",
        f"- runs: mean over folds; all runs: mean ± std (ddof=1); p: {TEST_NAME}",
        "",
        "| run | clips | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for r in result["runs"]:
        cells = [f"{r[c]:.3f}" for c in ("default", *methods)]
        cells += [f"{r[c]:+.3f}" for c in differences]
        lines.append(f"| `{r['run']}` | {r['n_clips']} | " + " | ".join(cells) + " |")
    cells = [fmt_mean_std(summary[f"{c}_mean"], summary[f"{c}_std"]) for c in ("default", *methods)]
    cells += [fmt_cell({"reference": False, **summary}, c) for c in differences]
    lines.append(f"| **all ({summary['n_runs']} runs)** | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def study(
    run_dirs: Sequence[Path],
    folds: int = 2,
    methods: Sequence[str] = ("median",),
    grid: MedianGrid = DEFAULT_GRID,
) -> tuple[dict[str, Any], list[str]]:
    """Cross-validate every run; returns the result (``runs``, ``summary``, settings) and
    one error line per run that could not be scored (``RUN_DIR: what went wrong``)."""
    runs, errors = [], []
    for run_dir in run_dirs:
        try:
            runs.append(cross_validate(run_dir, folds, methods, grid))
        except (OSError, LabelFileError, ValueError) as err:
            errors.append(f"{run_dir}: {' '.join(str(err).split())}")
    result = {
        "folds": folds,
        "methods": list(methods),
        **asdict(grid),
        "runs": runs,
        "summary": summarize(runs, methods),
        "errors": errors,
    }
    return result, errors
