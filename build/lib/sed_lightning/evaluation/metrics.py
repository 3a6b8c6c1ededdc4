"""SED metrics, computed only through sed_eval, sed_scores_eval and torchmetrics.

* Event-/segment-based F1: ``sed_eval.sound_event.EventBasedMetrics`` / ``SegmentBasedMetrics``
  fed file by file, as in the DESED (DCASE Task 4) baseline.
* PSDS: ``sed_scores_eval.intersection_based.psds`` on score DataFrames.
* Clip-level mAP: ``torchmetrics.classification.MultilabelAveragePrecision``.
* DCASE 2016 Task 2 figures (:func:`dcase2016_metrics`): sed_eval's overall (micro)
  onset-only event-based F1 / error rate (200 ms collar) and segment-based error rate / F1
  (1 s), from the same event tables.

All parameters come from :mod:`sed_lightning.evaluation.settings`.

NaN behaviour (sed_eval's own, reported as is, never patched):

* event-based uses ``empty_system_output_handling="zero_score"`` (DESED baseline), so a class with
  reference events but no detections has F1 = 0. A class with neither reference nor detected
  events has F1 = NaN (recall 0/0) and is skipped by sed_eval's class-wise average (``nanmean``).
* segment-based also uses ``"zero_score"`` (``SegmentBasedSetting``; sed_eval's default, kept by
  the DESED baseline, would give such a class NaN and drop it from the average).
* if every class is NaN the average is NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sed_eval
from sed_scores_eval import intersection_based

from sed_lightning.data.tsv import STRONG_COLUMNS
from sed_lightning.evaluation.scores import audio_id, durations_from_scores
from sed_lightning.evaluation.settings import (
    DCASE2016_EVENT_BASED,
    DCASE2016_KEYS,
    DCASE2016_SEGMENT_BASED,
    EVENT_BASED,
    PSDS_SETTINGS,
    SEGMENT_BASED,
    EventBasedSetting,
    PSDSSetting,
    SegmentBasedSetting,
)


# --------------------------------------------------------------------------- event tables
def _check_table(table: pd.DataFrame, name: str) -> None:
    missing = [c for c in STRONG_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; has {list(table.columns)}")


def _has_label(label: Any) -> bool:
    return not (label is None or bool(pd.isna(label)) or str(label) == "")


def _events_by_file(table: pd.DataFrame, name: str) -> dict[str, list[dict[str, Any]]]:
    """Group a strong table into sed_eval event dicts per filename.

    Rows with an empty/NaN ``event_label`` (DESED's way of listing a clip without events) and the
    names in ``table.attrs["empty_files"]`` (as set by ``sed_lightning.data.tsv.read_strong_tsv``)
    register the file with no events.
    """
    _check_table(table, name)
    out: dict[str, list[dict[str, Any]]] = {str(f): [] for f in table.attrs.get("empty_files", ())}
    for filename, onset, offset, label in zip(
        table["filename"], table["onset"], table["offset"], table["event_label"], strict=True
    ):
        events = out.setdefault(str(filename), [])
        if _has_label(label):
            events.append(
                {
                    "filename": str(filename),
                    "onset": float(onset),
                    "offset": float(offset),
                    "event_label": str(label),
                }
            )
    return out


def _check_labels(
    events: Mapping[str, list[dict[str, Any]]], class_names: Sequence[str], name: str
) -> None:
    labels = {e["event_label"] for evs in events.values() for e in evs}
    unknown = sorted(labels - set(class_names))
    if unknown:
        raise ValueError(f"{name} has labels {unknown} not in class_names {list(class_names)}")


# --------------------------------------------------------------------------- sed_eval F1
def build_sed_eval_metrics(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    class_names: Sequence[str],
    filenames: Sequence[str] | None = None,
    event_setting: EventBasedSetting = EVENT_BASED,
    segment_setting: SegmentBasedSetting = SEGMENT_BASED,
) -> tuple[sed_eval.sound_event.EventBasedMetrics, sed_eval.sound_event.SegmentBasedMetrics]:
    """Accumulate sed_eval event- and segment-based metrics file by file.

    Evaluated files: the union of the files in ``reference``, in ``estimated`` and in
    ``filenames`` (a file with reference events but no estimates counts its misses, a file with
    estimates only counts its false alarms). Returns the sed_eval objects (``str()`` of one gives
    sed_eval's full report).
    """
    class_names = [str(c) for c in class_names]
    ref = _events_by_file(reference, "reference")
    est = _events_by_file(estimated, "estimated")
    _check_labels(ref, class_names, "reference")
    _check_labels(est, class_names, "estimated")
    files = sorted(set(ref) | set(est) | {str(f) for f in (filenames or [])})

    event_metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=class_names,
        evaluate_onset=bool(event_setting.evaluate_onset),
        evaluate_offset=bool(event_setting.evaluate_offset),
        t_collar=float(event_setting.t_collar),
        percentage_of_length=float(event_setting.percentage_of_length),
        empty_system_output_handling=event_setting.empty_system_output_handling,
    )
    segment_metric = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=class_names, time_resolution=float(segment_setting.time_resolution)
    )
    # sed_eval's base-class option, not accepted by this constructor (see SegmentBasedSetting).
    segment_metric.empty_system_output_handling = segment_setting.empty_system_output_handling
    for filename in files:
        ref_events = ref.get(filename, [])
        est_events = est.get(filename, [])
        event_metric.evaluate(reference_event_list=ref_events, estimated_event_list=est_events)
        segment_metric.evaluate(reference_event_list=ref_events, estimated_event_list=est_events)
    return event_metric, segment_metric


def _f1_summary(metric: Any, class_names: Sequence[str]) -> tuple[float, float, dict[str, float]]:
    with warnings.catch_warnings():
        # nanmean over all-NaN classes warns; the NaN result itself is sed_eval's.
        warnings.simplefilter("ignore", RuntimeWarning)
        macro = metric.results_class_wise_average_metrics()["f_measure"]["f_measure"]
        micro = metric.results_overall_metrics()["f_measure"]["f_measure"]
        per_class = {c: metric.class_wise_f_measure(c)["f_measure"] for c in class_names}
    return float(macro), float(micro), {c: float(v) for c, v in per_class.items()}


def sed_eval_metrics(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    class_names: Sequence[str],
    filenames: Sequence[str] | None = None,
    *,
    event_setting: EventBasedSetting = EVENT_BASED,
    segment_setting: SegmentBasedSetting = SEGMENT_BASED,
) -> dict[str, Any]:
    """Event-based and segment-based F1 (DESED settings) via sed_eval.

    Returns ``event_f1`` / ``segment_f1`` (class-wise averaged F-measure, i.e.
    ``results_class_wise_average_metrics()["f_measure"]["f_measure"]``), ``event_f1_micro`` /
    ``segment_f1_micro`` (overall F-measure) and ``event_f1_per_class`` /
    ``segment_f1_per_class`` ({class: F}). See the module docstring for NaN behaviour.
    """
    class_names = [str(c) for c in class_names]
    event_metric, segment_metric = build_sed_eval_metrics(
        reference, estimated, class_names, filenames, event_setting, segment_setting
    )
    event_macro, event_micro, event_per_class = _f1_summary(event_metric, class_names)
    segment_macro, segment_micro, segment_per_class = _f1_summary(segment_metric, class_names)
    return {
        "event_f1": event_macro,
        "segment_f1": segment_macro,
        "event_f1_micro": event_micro,
        "segment_f1_micro": segment_micro,
        "event_f1_per_class": event_per_class,
        "segment_f1_per_class": segment_per_class,
    }


# --------------------------------------------------------------------------- DCASE 2016
def dcase2016_metrics(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    class_names: Sequence[str],
    filenames: Sequence[str] | None = None,
) -> dict[str, float]:
    """The DCASE 2016 Task 2 figures via sed_eval, overall (micro-averaged):

    * ``dcase2016/onset_f1``, ``dcase2016/onset_er``: event-based F1 and error rate, onsets
      only, 200 ms collar (``settings.DCASE2016_EVENT_BASED``);
    * ``dcase2016/segment_er``, ``dcase2016/segment_f1``: segment-based error rate and F1 on
      1 s segments (``settings.DCASE2016_SEGMENT_BASED``).

    Files are evaluated as in :func:`build_sed_eval_metrics`. Error rates are
    ``(S + D + I) / N`` over the reference events / active reference segments (lower is
    better; above 1 is possible). Reported as sed_eval gives them: with no reference event at
    all sed_eval divides by ``eps``, so any false alarm gives an error rate of order 1e15.
    """
    event_metric, segment_metric = build_sed_eval_metrics(
        reference,
        estimated,
        class_names,
        filenames,
        DCASE2016_EVENT_BASED,
        DCASE2016_SEGMENT_BASED,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        event = event_metric.results_overall_metrics()
        segment = segment_metric.results_overall_metrics()
    values = (
        event["f_measure"]["f_measure"],
        event["error_rate"]["error_rate"],
        segment["error_rate"]["error_rate"],
        segment["f_measure"]["f_measure"],
    )
    return {key: float(value) for key, value in zip(DCASE2016_KEYS, values, strict=True)}


# --------------------------------------------------------------------------- PSDS
def ground_truth_events(
    ground_truth: pd.DataFrame | Mapping[str, Sequence[Sequence[Any]]],
) -> dict[str, list[tuple[float, float, str]]]:
    """sed_scores_eval ground-truth form ``{audio_id: [(onset, offset, label), ...]}``.

    Accepts a strong DataFrame (rows with empty labels list a clip without events) or a mapping
    filename/audio id -> events. Keys become :func:`~sed_lightning.evaluation.scores.audio_id`.
    """
    out: dict[str, list[tuple[float, float, str]]] = {}
    if isinstance(ground_truth, pd.DataFrame):
        for filename, events in _events_by_file(ground_truth, "ground_truth").items():
            out.setdefault(audio_id(filename), []).extend(
                (e["onset"], e["offset"], e["event_label"]) for e in events
            )
        return out
    for key, events in ground_truth.items():
        out.setdefault(audio_id(key), []).extend(
            (float(on), float(off), str(label)) for on, off, label in events
        )
    return out


def psds_with_per_class(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: pd.DataFrame | Mapping[str, Sequence[Sequence[Any]]],
    durations: Mapping[str, float],
    setting: PSDSSetting,
    num_jobs: int = 1,
    drop_classes_without_events: bool = False,
) -> tuple[float, dict[str, float]]:
    """PSDS and per-class PSDS via ``sed_scores_eval.intersection_based.psds``.

    All keys are normalised with :func:`audio_id` (no audio extension). Scored clips missing from
    the ground truth count as clips without events; ground-truth clips without scores, or scored
    clips without a duration, raise ``ValueError``. Per-class values are sed_scores_eval's
    single-class PSDS (area under each class's ROC; ``alpha_st`` does not apply to them).

    sed_scores_eval requires at least one ground-truth event per scored class. A class without
    any raises ``ValueError``, unless ``drop_classes_without_events`` is set: then its score
    column is left out (with a warning) and PSDS is computed over the remaining classes.
    """
    score_dfs = {audio_id(k): v for k, v in scores.items()}
    if not score_dfs:
        raise ValueError("no scores given")
    gt = ground_truth_events(ground_truth)
    unscored = sorted(set(gt) - set(score_dfs))
    if unscored:
        raise ValueError(f"ground truth has {len(unscored)} clip(s) without scores: {unscored[:5]}")
    gt = {k: gt.get(k, []) for k in score_dfs}
    classes = [c for c in next(iter(score_dfs.values())).columns if c not in ("onset", "offset")]
    labels = {label for events in gt.values() for _, _, label in events}
    unknown = sorted(labels - set(classes))
    if unknown:
        raise ValueError(f"ground truth has labels {unknown} not among score classes {classes}")
    no_events = [c for c in classes if c not in labels]
    if no_events:
        if not drop_classes_without_events:
            raise ValueError(
                f"sed_scores_eval's PSDS needs ground-truth events for every scored class; none "
                f"for {no_events} (pass drop_classes_without_events=True to evaluate the others)"
            )
        if len(no_events) == len(classes):
            raise ValueError("no ground-truth events at all: PSDS is undefined")
        warnings.warn(
            f"PSDS: classes {no_events} have no ground-truth events and are left out",
            stacklevel=2,
        )
        score_dfs = {k: v.drop(columns=no_events) for k, v in score_dfs.items()}
    durs = {audio_id(k): float(v) for k, v in durations.items()}
    no_duration = sorted(set(score_dfs) - set(durs))
    if no_duration:
        raise ValueError(f"no duration for {len(no_duration)} clip(s): {no_duration[:5]}")
    durs = {k: durs[k] for k in score_dfs}
    value, per_class, *_ = intersection_based.psds(
        scores=score_dfs,
        ground_truth=gt,
        audio_durations=durs,
        num_jobs=num_jobs,
        **setting.kwargs(),
    )
    return float(value), {str(c): float(v) for c, v in per_class.items()}


def psds(
    scores: Mapping[str, pd.DataFrame],
    ground_truth: pd.DataFrame | Mapping[str, Sequence[Sequence[Any]]],
    durations: Mapping[str, float],
    setting: PSDSSetting,
    num_jobs: int = 1,
    drop_classes_without_events: bool = False,
) -> float:
    """PSDS for one setting (e.g. ``settings.PSDS1``); see :func:`psds_with_per_class`."""
    return psds_with_per_class(
        scores, ground_truth, durations, setting, num_jobs, drop_classes_without_events
    )[0]


# --------------------------------------------------------------------------- clip mAP
def clip_map(clip_scores: Any, clip_targets: Any) -> float:
    """Macro clip-level average precision via torchmetrics ``MultilabelAveragePrecision``.

    ``clip_scores`` (N, C) in [0, 1] and ``clip_targets`` (N, C) in {0, 1}; tensors or arrays.
    torchmetrics (1.9) gives a class with no positive clip an AP of 0 (with a UserWarning
    "No positive samples found in target") and keeps it in the macro average.
    """
    import torch
    from torchmetrics.classification import MultilabelAveragePrecision

    preds = torch.as_tensor(np.asarray(_to_numpy(clip_scores), dtype=np.float32))
    target = torch.as_tensor(np.asarray(_to_numpy(clip_targets)).astype(np.int64))
    if preds.ndim != 2 or preds.shape != target.shape:
        raise ValueError(
            f"clip_scores and clip_targets must both be (N, C); got {tuple(preds.shape)} "
            f"and {tuple(target.shape)}"
        )
    metric = MultilabelAveragePrecision(num_labels=preds.shape[1], average="macro")
    return float(metric(preds, target))


def _to_numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


# --------------------------------------------------------------------------- everything
def compute_all(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    score_dfs: Mapping[str, pd.DataFrame] | None,
    durations: Mapping[str, float] | None,
    class_names: Sequence[str],
    clip_scores: Any = None,
    clip_targets: Any = None,
    prefix: str = "",
    filenames: Sequence[str] | None = None,
    drop_classes_without_events: bool = False,
    dcase2016: bool = True,
) -> dict[str, float]:
    """All metrics as a flat ``{prefix + name: float}`` dict (ready for ``log_dict``).

    Keys: ``event_f1``, ``segment_f1``, ``event_f1_micro``, ``segment_f1_micro``,
    ``event_f1/<class>``, ``segment_f1/<class>``; ``psds1``, ``psds2`` when ``score_dfs`` is
    given (ground truth = ``reference``; ``durations`` default to the scores' last offsets);
    ``clip_map`` when ``clip_scores`` and ``clip_targets`` are given; with ``dcase2016`` the
    :data:`DCASE2016_KEYS` of :func:`dcase2016_metrics`.
    ``drop_classes_without_events`` is passed to :func:`psds`.
    """
    class_names = [str(c) for c in class_names]
    f1 = sed_eval_metrics(reference, estimated, class_names, filenames)
    out: dict[str, float] = {
        "event_f1": f1["event_f1"],
        "segment_f1": f1["segment_f1"],
        "event_f1_micro": f1["event_f1_micro"],
        "segment_f1_micro": f1["segment_f1_micro"],
    }
    for c in class_names:
        out[f"event_f1/{c}"] = f1["event_f1_per_class"][c]
    for c in class_names:
        out[f"segment_f1/{c}"] = f1["segment_f1_per_class"][c]
    if dcase2016:
        out.update(dcase2016_metrics(reference, estimated, class_names, filenames))
    if score_dfs:
        if durations is None:
            durations = durations_from_scores(score_dfs)
        for name, setting in PSDS_SETTINGS.items():
            out[name] = psds(
                score_dfs,
                reference,
                durations,
                setting,
                drop_classes_without_events=drop_classes_without_events,
            )
    if clip_scores is not None and clip_targets is not None:
        out["clip_map"] = clip_map(clip_scores, clip_targets)
    return {f"{prefix}{k}": float(v) for k, v in out.items()}


__all__ = [
    "DCASE2016_KEYS",
    "build_sed_eval_metrics",
    "clip_map",
    "compute_all",
    "dcase2016_metrics",
    "ground_truth_events",
    "psds",
    "psds_with_per_class",
    "sed_eval_metrics",
]
