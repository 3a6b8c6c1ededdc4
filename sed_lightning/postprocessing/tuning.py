"""Post-processing tuned on a run's saved VALIDATION scores, and the test metrics of the
tuned decoder: the library behind ``sed-tools tune``, ``tune-cv``, ``median-study`` and
``ensemble`` (:mod:`sed_lightning.tools`) and ``postprocess.tune`` at the end of a training
run (:mod:`sed_lightning.training.tuning`). The saved runs are read by
:mod:`sed_lightning.postprocessing.saved_runs`.

A training run writes (``SEDEvaluation``) ``val_scores/`` + ``val_reference.tsv`` +
``val_durations.tsv`` (validation scores of the tested weights) next to the test outputs
``scores/`` + ``test_reference.tsv`` + ``test_durations.tsv``
(:data:`~sed_lightning.run_files.SPLIT_FILES`).

1. **Tuning** (:func:`tune_run`) reads the validation files only: for every median window
   of the grid (in frames; seconds = frames x the frame hop read from the scores'
   timestamps), every threshold and every minimum event duration of the grids
   (:class:`MedianGrid`), the validation clips are decoded and scored with sed_eval
   (event-based F1, settings of :mod:`sed_lightning.evaluation.settings`); each class keeps
   the triple with its best F1 (ties: the window, the threshold, then the minimum duration
   nearest the run's own). Classes without validation events keep the run's settings.
   ``min_durations`` with the run's own value alone keeps it. Written to
   ``RUN_DIR/postprocess_tuned.yaml`` and ``RUN_DIR/conf/postprocess/tuned.yaml`` (use it
   in a run: ``hydra.searchpath=[file://RUN_DIR/conf] postprocess=tuned``).
2. **Test** (:func:`evaluate_tuned`; only then are ``scores/`` read):
   ``RUN_DIR/metrics_tuned.json`` with the keys of ``metrics.json`` (``test/clip_map`` is
   copied: clip scores do not depend on post-processing). ``test/psds1`` / ``test/psds2``
   are sed_scores_eval's PSDS of the raw (unfiltered) scores: threshold- and
   median-filter-independent, the same before and after tuning. Also
   ``test/psds{1,2}_ci_{mean,low,high}``: sed_scores_eval's bootstrapped PSDS
   (``intersection_based.bootstrapped_psds``: ``samples`` resamples of the clips with
   replacement, 90 % interval), and ``test/mfi_psds{1,2}``: sed_scores_eval's
   median-filter-independent PSDS (``intersection_based.median_filter_independent_psds``:
   per class and eFPR the best TPR over the median windows of the grid; it picks windows on
   the test itself, an upper bound), and ``test/psds{1,2}_filtered``: PSDS of the scores
   median-filtered with the tuned per-class windows, as the DCASE baselines report PSDS (on
   their post-processed scores), in both ``metrics_tuned.json`` and, with the run's own
   windows, the "before" column.

:func:`tune_sebbs` tunes sound event bounding boxes instead (cSEBBs through the ``sebbs``
package, :mod:`sed_lightning.postprocessing.sebbs`): per class the step filter, merge
threshold and detection threshold with the best validation F1, written to
``RUN_DIR/postprocess_sebbs.yaml``; the test metrics go to ``RUN_DIR/metrics_sebbs.json``
(validation figures of the tuned boxes beside them, ``val/...``). :func:`tune_and_test`
does either with the defaults (what ``postprocess.tune`` runs).

- median tuning: :func:`tune` over a :class:`MedianGrid` (:func:`grid_f1`,
  :func:`pick_best`), :func:`tune_run` (writes ``postprocess_tuned.yaml``);
- test metrics: :func:`evaluate_split`, :func:`evaluate_tuned` (``metrics_tuned.json``),
  PSDS extras; cSEBBs: :func:`tune_sebbs`; both: :func:`tune_and_test`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sed_eval
import yaml
from sed_scores_eval import intersection_based
from sed_scores_eval.base_modules.bootstrap import confidence_interval

from sed_lightning.common import plain
from sed_lightning.evaluation.metrics import compute_all, ground_truth_events
from sed_lightning.evaluation.metrics import psds as psds_of_scores
from sed_lightning.evaluation.settings import EVENT_BASED, PSDS_SETTINGS, PSDSSetting
from sed_lightning.postprocessing import (
    EVENT_COLUMNS,
    TUNE_METHODS,
    PostProcessor,
    resolve_per_class,
    window_in_frames,
)
from sed_lightning.postprocessing.events import event_times
from sed_lightning.postprocessing.saved_runs import (
    SavedSplit,
    decode,
    load_split,
    run_postprocess,
)
from sed_lightning.run_files import METHOD_FILES, METRICS_FILE, TUNED_HYDRA_CONFIG

WINDOWS = (1, 3, 5, 7, 11, 21)  # median-filter lengths in frames
THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))
#: minimum event durations (seconds), the third setting of the per-class decoder. Chosen on
#: held-out halves of validation: it added 0.041 event-F1 (0.505 -> 0.546, 2 runs of the office
#: recipe, each ahead) to the window + threshold tuning (experiments/recipe, fifth round).
MIN_DURATIONS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class MedianGrid:
    """The grids the median tuning searches per class: median windows (frames), thresholds
    and minimum event durations (seconds). ``min_durations`` ``None``: every class keeps the
    run's own ``min_duration`` (only the window and threshold are tuned).

    >>> MedianGrid(windows=(1, 5), min_durations=None).min_durations is None
    True
    """

    windows: tuple[int, ...] = WINDOWS
    thresholds: tuple[float, ...] = THRESHOLDS
    min_durations: tuple[float, ...] | None = MIN_DURATIONS


#: the grids of ``sed-tools tune``, ``tune-cv``, ``median-study`` (their defaults) and
#: ``postprocess=tuned_median``
DEFAULT_GRID = MedianGrid()


# --------------------------------------------------------------------------- tuning
EventsByClass = dict[str, dict[str, list[dict[str, Any]]]]  # class -> file -> sed_eval events


def events_by_class(table: pd.DataFrame) -> EventsByClass:
    """Group an event table into sed_eval event dicts by class, then by file."""
    out: EventsByClass = {}
    for filename, onset, offset, label in table[list(EVENT_COLUMNS)].itertuples(index=False):
        if isinstance(label, str) and label:
            event = {"filename": filename, "onset": onset, "offset": offset, "event_label": label}
            out.setdefault(label, {}).setdefault(filename, []).append(event)
    return out


def class_event_f1(reference: EventsByClass, estimated: EventsByClass, cls: str) -> float:
    """sed_eval event-based F1 of one class (settings.EVENT_BASED).

    A single-label ``EventBasedMetrics`` is fed only the files where ``cls`` occurs in the
    reference or the estimate: sed_eval scores every class on its own events, so this is
    the class-wise F1 of the multi-class metric, without its per-file cost for every class.
    """
    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=[cls],
        t_collar=float(EVENT_BASED.t_collar),
        percentage_of_length=float(EVENT_BASED.percentage_of_length),
        empty_system_output_handling=EVENT_BASED.empty_system_output_handling,
    )
    ref, est = reference.get(cls, {}), estimated.get(cls, {})
    for filename in sorted(set(ref) | set(est)):
        metric.evaluate(ref.get(filename, []), est.get(filename, []))
    with warnings.catch_warnings():  # 0/0 for a class absent from both: sed_eval's NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(metric.class_wise_f_measure(cls)["f_measure"])


def threshold_events(
    smoothed: Mapping[str, np.ndarray],
    classes: Sequence[str],
    hop: float,
    threshold: float,
    durations: Mapping[str, float],
    min_duration: Mapping[str, float],
) -> EventsByClass:
    """The events :meth:`PostProcessor.decode` finds in already smoothed scores (the same
    :func:`~sed_lightning.postprocessing.events.event_times` rule), straight into
    :data:`EventsByClass` for the grid search (no DataFrame per clip)."""
    out: EventsByClass = {}
    for filename, scores in smoothed.items():
        end_time = durations.get(filename, np.inf)
        for k, cls in enumerate(classes):
            for onset, offset in event_times(
                scores[:, k] >= threshold, hop, min_duration[cls], end_time
            ):
                event = {"filename": filename, "onset": onset, "offset": offset, "event_label": cls}
                out.setdefault(cls, {}).setdefault(filename, []).append(event)
    return out


def grid_f1(
    split: SavedSplit,
    windows: Sequence[int] = WINDOWS,
    thresholds: Sequence[float] = THRESHOLDS,
    min_durations: Sequence[Any] = (0.0,),
) -> pd.DataFrame:
    """Per-class event-based F1 (sed_eval) for every (window in frames, threshold, minimum
    duration) triple; a minimum duration is seconds, for every class or per class.

    Each window smooths the scores once (:meth:`PostProcessor.smoothed_scores`); each
    threshold and minimum duration then finds the events of all classes
    (:func:`threshold_events`) and every class is scored on its own events
    (:func:`class_event_f1`). Columns: ``class, window, threshold, min_duration, f1``.
    """
    classes, hop, frames = split.classes, split.frame_hop, split.frames()
    per_class = [resolve_per_class("min_duration", m, classes) for m in min_durations]
    reference = events_by_class(split.reference)
    rows = []
    for window in windows:
        smoothed = PostProcessor(classes, hop, median_window=window * hop).smoothed_scores(frames)
        for threshold in thresholds:
            for min_duration in per_class:
                estimated = threshold_events(
                    smoothed, classes, hop, threshold, split.durations, min_duration
                )
                rows += [
                    (c, window, threshold, min_duration[c], class_event_f1(reference, estimated, c))
                    for c in classes
                ]
    return pd.DataFrame(rows, columns=["class", "window", "threshold", "min_duration", "f1"])


def pick_best(
    grid: pd.DataFrame,
    preferred_window: Mapping[str, int],
    preferred_threshold: Mapping[str, float],
    preferred_min_duration: Mapping[str, float],
) -> pd.DataFrame:
    """Each class's best row of :func:`grid_f1`; ties go to the window nearest
    ``preferred_window[class]`` (frames), then the threshold nearest
    ``preferred_threshold[class]``, then the minimum duration nearest
    ``preferred_min_duration[class]``, then the smaller values. Classes whose F1 is NaN
    everywhere are left out."""
    grid = grid.dropna(subset=["f1"]).copy()
    grid["window_distance"] = (grid["window"] - grid["class"].map(preferred_window)).abs()
    grid["threshold_distance"] = (grid["threshold"] - grid["class"].map(preferred_threshold)).abs()
    own_min = grid["class"].map(preferred_min_duration)
    grid["min_duration_distance"] = (grid["min_duration"] - own_min).abs()
    grid["f1_rounded"] = grid["f1"].round(12)
    keys = [
        "class", "f1_rounded", "window_distance", "threshold_distance", "min_duration_distance",
        "window", "threshold", "min_duration",
    ]  # fmt: skip
    ascending = [True, False, True, True, True, True, True, True]
    order = grid.sort_values(keys, ascending=ascending, kind="stable")
    best = order.groupby("class", sort=False).head(1).set_index("class")
    return best[["window", "threshold", "min_duration", "f1"]]


@dataclass
class Tuning:
    """Tuned per-class settings (``postprocess``: seconds, ready for :class:`PostProcessor`)
    and, per class, the chosen window (frames), threshold, validation F1 and whether the
    class was tuned."""

    postprocess: dict[str, Any]
    table: pd.DataFrame


def tune(val: SavedSplit, base: Mapping[str, Any], grid: MedianGrid = DEFAULT_GRID) -> Tuning:
    """Per-class median window, threshold and minimum event duration of ``grid`` maximizing
    validation event-based F1.

    ``base`` is the run's post-processing: classes without validation reference events keep
    its settings, and so does every class's minimum duration when ``grid.min_durations`` is
    ``None``.
    """
    classes, hop = val.classes, val.frame_hop
    base_window = resolve_per_class("median_window", base["median_window"], classes)
    base_threshold = resolve_per_class("threshold", base["threshold"], classes)
    base_min = resolve_per_class("min_duration", base.get("min_duration", 0.0), classes)
    min_durations = [base_min] if grid.min_durations is None else grid.min_durations
    scores = grid_f1(val, grid.windows, grid.thresholds, min_durations)
    with_events = set(val.reference["event_label"].dropna())
    base_frames = {c: window_in_frames(w, hop) for c, w in base_window.items()}
    best = pick_best(
        scores[scores["class"].isin(with_events)], base_frames, base_threshold, base_min
    )
    rows, window_s, threshold, min_duration = [], {}, {}, {}
    for c in classes:
        if c in best.index:
            w, t, f1 = int(best.at[c, "window"]), float(best.at[c, "threshold"]), best.at[c, "f1"]
            window_s[c], threshold[c] = round(w * hop, 6), t
            min_duration[c] = float(best.at[c, "min_duration"])
        else:
            w, f1 = base_frames[c], float("nan")
            window_s[c], threshold[c], min_duration[c] = (
                base_window[c],
                base_threshold[c],
                base_min[c],
            )
        rows.append((c, w, window_s[c], threshold[c], min_duration[c], float(f1), c in best.index))
    columns = ["class", "window_frames", "window_s", "threshold", "min_duration", "val_f1"]
    table = pd.DataFrame(rows, columns=[*columns, "tuned"])
    if grid.min_durations is None:
        min_duration = base.get("min_duration", 0.0)  # as the run had it
    postprocess = {"median_window": window_s, "threshold": threshold, "min_duration": min_duration}
    return Tuning(postprocess, table)


def write_tuned(run_dir: str | Path, tuning: Tuning, windows: Sequence[int]) -> Path:
    """``postprocess_tuned.yaml`` (and ``conf/postprocess/tuned.yaml`` for Hydra)."""
    run_dir = Path(run_dir)
    header = (
        "# Post-processing tuned on this run's VALIDATION scores (sed-tools tune):\n"
        f"# per class, the median window (grid {list(windows)} frames, in seconds here), the\n"
        "# threshold and the minimum event duration maximizing event-based F1 (sed_eval).\n"
        "# Use in a run:\n"
        f"#   hydra.searchpath=[file://{run_dir.resolve()}/conf] postprocess=tuned\n"
    )
    text = header + yaml.safe_dump(plain(tuning.postprocess), sort_keys=False)
    path = run_dir / METHOD_FILES["median"][0]
    path.write_text(text)
    hydra_copy = run_dir / TUNED_HYDRA_CONFIG
    hydra_copy.parent.mkdir(parents=True, exist_ok=True)
    hydra_copy.write_text(text)
    return path


# --------------------------------------------------------------------------- test metrics
def evaluate_split(
    split: SavedSplit, postprocess: Mapping[str, Any], prefix: str = "test/", psds: bool = True
) -> dict[str, float]:
    """The metrics of ``metrics.json`` (no clip mAP) for ``split`` under ``postprocess``."""
    return compute_all(
        split.reference,
        decode(split, postprocess),
        split.score_dfs if psds else None,
        split.durations,
        split.classes,
        prefix=prefix,
        filenames=split.files,
        drop_classes_without_events=True,
    )


def _psds_inputs(split: SavedSplit) -> tuple[dict, dict, dict]:
    """Scores, ground truth and durations for sed_scores_eval; score columns of classes
    without ground-truth events are dropped (as :func:`compute_all` does)."""
    events = ground_truth_events(split.reference)
    gt = {k: events.get(k, []) for k in split.files}
    labels = {label for events in gt.values() for *_, label in events}
    dropped = [c for c in split.classes if c not in labels]
    scores = {k: df.drop(columns=dropped) for k, df in split.score_dfs.items()}
    return scores, gt, {k: split.durations[k] for k in split.files}


def psds_confidence(
    split: SavedSplit, setting: PSDSSetting, samples: int, confidence: float = 0.9
) -> tuple[float, float, float]:
    """(mean, low, high) of sed_scores_eval's bootstrapped PSDS (``samples``
    resamples) with sed_scores_eval's ``confidence_interval``."""
    scores, gt, durations = _psds_inputs(split)
    values, *_ = intersection_based.bootstrapped_psds(
        scores, gt, durations, n_bootstrap_samples=samples, **setting.kwargs()
    )
    return confidence_interval(list(values), confidence=confidence)


def mfi_psds(split: SavedSplit, setting: PSDSSetting, windows: Sequence[int]) -> float:
    """sed_scores_eval's median-filter-independent PSDS over ``windows`` (frames)."""
    scores, gt, durations = _psds_inputs(split)
    lengths = [round(w * split.frame_hop, 6) for w in windows]
    value, *_ = intersection_based.median_filter_independent_psds(
        scores, gt, durations, median_filter_lengths_in_sec=lengths, **setting.kwargs()
    )
    return float(value)


def filtered_scores(split: SavedSplit, postprocess: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The split's score DataFrames median-filtered with ``postprocess``'s (per-class)
    windows: the scores a system with that decoder puts out before its threshold."""
    smoothed = PostProcessor(split.classes, split.frame_hop, **postprocess).smoothed_scores(
        split.frames()
    )
    return {
        k: split.score_dfs[k].assign(**dict(zip(split.classes, smoothed[k].T, strict=True)))
        for k in split.files
    }


def filtered_psds(
    split: SavedSplit, postprocess: Mapping[str, Any], prefix: str = "test/"
) -> dict[str, float]:
    """``<prefix>psds1_filtered`` / ``psds2_filtered``: PSDS of the scores median-filtered
    with ``postprocess``'s windows (:func:`filtered_scores`), the way the DCASE baselines
    report PSDS (on their post-processed scores; the threshold stays free). ``psds1`` /
    ``psds2`` stay the PSDS of the raw scores. With windows tuned on validation this
    reads nothing of the test but its scores, unlike the median-filter-independent PSDS
    (``mfi_*``), which picks the best window per class and operating point on the test."""
    scores = filtered_scores(split, postprocess)
    return {
        f"{prefix}{name}_filtered": psds_of_scores(
            scores, split.reference, split.durations, setting, drop_classes_without_events=True
        )
        for name, setting in PSDS_SETTINGS.items()
    }


def psds_extras(
    split: SavedSplit,
    windows: Sequence[int],
    samples: int = 20,
    mfi: bool = True,
    prefix: str = "test/",
) -> dict[str, float]:
    """Bootstrapped PSDS intervals (``samples`` 0: none) and median-filter-independent
    PSDS of every PSDS setting."""
    out: dict[str, float] = {}
    for name, setting in PSDS_SETTINGS.items():
        if samples > 0:
            interval = psds_confidence(split, setting, samples)
            for part, value in zip(("mean", "low", "high"), interval, strict=True):
                out[f"{prefix}{name}_ci_{part}"] = value
        if mfi:
            out[f"{prefix}mfi_{name}"] = mfi_psds(split, setting, windows)
    return out


# --------------------------------------------------------------------------- report
def comparison_table(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """Before/after lines for the headline metrics and the per-class event F1."""
    keys = [k for k in after if k in before and isinstance(after[k], float)]
    headline = [k for k in keys if k.count("/") == 1]
    per_class = [k for k in keys if k.startswith("test/event_f1/")]
    lines = [f"{'metric':<34} {'before':>8} {'after':>8} {'delta':>8}"]
    for key in headline + per_class:
        b, a = float(before[key]), float(after[key])
        lines.append(f"{key:<34} {b:8.4f} {a:8.4f} {a - b:+8.4f}")
    return "\n".join(lines)


def tune_run(run_dir: str | Path, grid: MedianGrid = DEFAULT_GRID) -> Tuning:
    """Step 1: tune on ``val_scores/`` and write ``postprocess_tuned.yaml`` (no test file read)."""
    val, base = load_split(run_dir, "val"), run_postprocess(run_dir)
    tuning = tune(val, base, grid)
    write_tuned(run_dir, tuning, grid.windows)
    return tuning


def evaluate_tuned(
    run_dir: str | Path,
    tuning: Tuning,
    windows: Sequence[int] = WINDOWS,
    samples: int = 20,
    mfi: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Step 2: test metrics before (the run's post-processing) and after tuning; writes
    ``metrics_tuned.json``. Returns ``(before, after)``."""
    run_dir = Path(run_dir)
    test = load_split(run_dir, "test")
    own = run_postprocess(run_dir)
    before = evaluate_split(test, own, psds=False)
    after = evaluate_split(test, tuning.postprocess)
    before.update({k: v for k, v in after.items() if "psds" in k})  # post-processing free
    saved = run_dir / METRICS_FILE
    if saved.is_file() and "test/clip_map" in (reported := json.loads(saved.read_text())):
        before["test/clip_map"] = after["test/clip_map"] = reported["test/clip_map"]
    before.update(filtered_psds(test, own))
    after.update(filtered_psds(test, tuning.postprocess))
    after.update(psds_extras(test, windows, samples, mfi))
    after.update(versions())
    text = json.dumps(plain(after, nan=None), indent=2, sort_keys=True)
    (run_dir / METHOD_FILES["median"][1]).write_text(text)
    return before, after


def tune_sebbs(run_dir: str | Path, test: bool = True) -> dict[str, Any]:
    """cSEBBs tuned on ``val_scores/`` (``postprocess_sebbs.yaml``); with ``test``, the
    test metrics of the tuned boxes in ``metrics_sebbs.json``. Returns the metrics."""
    from sed_lightning.postprocessing.sebbs import SEBBsPostProcessor

    run_dir = Path(run_dir)
    val = load_split(run_dir, "val")
    events = ground_truth_events(val.reference)
    tuned, _ = SEBBsPostProcessor.tune(val.score_dfs, events, val.durations)
    header = "# cSEBBs tuned on this run's VALIDATION scores (sed-tools tune --method sebbs)\n"
    (run_dir / METHOD_FILES["sebbs"][0]).write_text(
        header + yaml.safe_dump(plain(tuned.to_dict()), sort_keys=False)
    )
    metrics = _sebbs_metrics(val, tuned, "val/")
    if test:
        metrics.update(_sebbs_metrics(load_split(run_dir, "test"), tuned, "test/"))
        metrics.update(versions())
        text = json.dumps(plain(metrics, nan=None), indent=2, sort_keys=True)
        (run_dir / METHOD_FILES["sebbs"][1]).write_text(text)
    return metrics


def tune_and_test(run_dir: str | Path, method: str) -> dict[str, Any]:
    """Tune ``method`` (``median`` | ``sebbs``) on the run's validation scores, then score
    its test with the tuned decoder, with ``sed-tools tune``'s defaults: the files of
    :data:`METHOD_FILES`. Returns the metrics written (``test/...``; ``val/...`` too for
    sebbs). The test files are read only once the tuning is written."""
    if method == "sebbs":
        return tune_sebbs(run_dir)
    if method != "median":
        raise ValueError(f"unknown tuning method {method!r}; allowed: {list(TUNE_METHODS)}")
    _, after = evaluate_tuned(run_dir, tune_run(run_dir))
    return after


def _sebbs_metrics(split: SavedSplit, tuned, prefix: str) -> dict[str, float]:
    """The metrics of the tuned boxes: ``psds1`` / ``psds2`` of the raw scores (as every
    metrics file), ``psds1_boxes`` / ``psds2_boxes`` of the boxes' own scores."""
    metrics = compute_all(
        split.reference,
        tuned(split.score_dfs),
        split.score_dfs,
        split.durations,
        split.classes,
        prefix=prefix,
        filenames=split.files,
        drop_classes_without_events=True,
    )
    box_scores = tuned.box_scores(split.score_dfs, split.durations)
    for name, setting in PSDS_SETTINGS.items():
        metrics[f"{prefix}{name}_boxes"] = psds_of_scores(
            box_scores, split.reference, split.durations, setting, drop_classes_without_events=True
        )
    return metrics


def versions() -> dict[str, str]:
    """``versions/<package>`` keys, as in ``metrics.json`` (imported here: it loads lightning)."""
    from sed_lightning.training.outputs import package_versions

    return package_versions()
