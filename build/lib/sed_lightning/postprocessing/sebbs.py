"""Sound event bounding boxes (cSEBBs, Ebbers et al., Interspeech 2024) through ``sebbs``.

Instead of median filter + threshold, the change-point-based predictor segments each
class's score curve at its change points (step filter), merges segments whose gap is
shallow (absolute or relative threshold) and gives each resulting box one confidence;
a per-class detection threshold on that confidence keeps the events. The step-filter
length, merge thresholds and detection threshold are tuned per class on validation, for
the collar-based F1 with the same collars as the event F1 here (0.2 s onset, offset
max(0.2 s, 20 % of the event)).

The ``sebbs`` package (AGPL-3.0-or-later; this package is MIT) is an optional extra:
``pip install sed-lightning[sebbs]``; it is imported only when this module is used.

    >>> import numpy as np, pandas as pd
    >>> t = np.arange(51) * 0.2
    >>> y = np.zeros(50); y[10:20] = 0.9
    >>> df = pd.DataFrame({"onset": t[:-1], "offset": t[1:], "dog": y})
    >>> pp = SEBBsPostProcessor(["dog"], step_filter_length=0.4, merge_threshold_abs=0.2,
    ...                         merge_threshold_rel=float("inf"), detection_threshold=0.5)
    >>> pp({"clip": df}).values.tolist()
    [['clip', 2.0, 4.0, 'dog']]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sed_lightning.evaluation.settings import EVENT_BASED
from sed_lightning.postprocessing.events import EVENT_COLUMNS, empty_event_table

__all__ = ["SEBBsPostProcessor", "import_sebbs"]

#: The grid searched by :meth:`SEBBsPostProcessor.tune` (sebbs' own defaults, which its
#: authors tuned on DESED, widened to the shorter office events).
STEP_FILTER_LENGTHS = (0.16, 0.32, 0.48, 0.64)
MERGE_THRESHOLDS_ABS = (0.15, 0.2, 0.3)
MERGE_THRESHOLDS_REL = (1.5, 2.0, 3.0)


def import_sebbs():
    """The ``sebbs.csebbs`` module, or a clear error saying how to install it."""
    try:
        from sebbs import csebbs
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "postprocess=sebbs needs the optional `sebbs` package (AGPL-3.0): "
            "pip install 'sed-lightning[sebbs]' (or `make install`, which includes it)"
        ) from err
    return csebbs


class SEBBsPostProcessor:
    """Score DataFrames (sed_scores_eval format) -> event table, by cSEBBs.

    Args:
        class_names: the classes, in score-column order.
        step_filter_length, merge_threshold_abs, merge_threshold_rel,
        detection_threshold: a number or a per-class mapping each (seconds for the
            step filter); see ``sebbs.csebbs.CSEBBsPredictor``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        step_filter_length: float | Mapping[str, float] = 0.48,
        merge_threshold_abs: float | Mapping[str, float] = 0.2,
        merge_threshold_rel: float | Mapping[str, float] = float("inf"),
        detection_threshold: float | Mapping[str, float] = 0.5,
    ) -> None:
        self.class_names = list(class_names)
        self.settings = {
            "step_filter_length": _per_class(step_filter_length, self.class_names),
            "merge_threshold_abs": _per_class(merge_threshold_abs, self.class_names),
            "merge_threshold_rel": _per_class(merge_threshold_rel, self.class_names),
            "detection_threshold": _per_class(detection_threshold, self.class_names),
        }
        self._predictor = import_sebbs().CSEBBsPredictor(
            **self.settings, sound_classes=self.class_names
        )

    def __repr__(self) -> str:
        return f"SEBBsPostProcessor({self.settings})"

    def boxes(self, score_dfs: Mapping[str, pd.DataFrame]) -> dict[str, list[tuple]]:
        """Every bounding box ``(onset, offset, class, confidence)`` by audio id."""
        return self._predictor.predict(dict(score_dfs), sound_classes=self.class_names)

    def box_scores(
        self, score_dfs: Mapping[str, pd.DataFrame], durations: Mapping[str, float] | None = None
    ) -> dict[str, pd.DataFrame]:
        """Score DataFrames of the boxes (sebbs' ``sed_scores_from_sebbs``): each box's
        confidence over its extent, ``-inf`` elsewhere; PSDS of these is the PSDS of the
        boxes, the figure the cSEBBs paper reports."""
        from sebbs.utils import sed_scores_from_sebbs

        return sed_scores_from_sebbs(
            self.boxes(score_dfs), self.class_names, audio_duration=durations
        )

    def __call__(self, score_dfs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Detected events ``filename, onset, offset, event_label`` (boxes above their
        class's detection threshold), sorted; never outside ``[0, clip end)``."""
        detections = self._predictor.detection_thresholding(self.boxes(score_dfs))
        rows = []
        for name, events in detections.items():
            end = float(score_dfs[name]["offset"].iloc[-1])
            for onset, offset, label in events:
                onset, offset = max(0.0, float(onset)), min(end, float(offset))
                if offset > onset:
                    rows.append((name, onset, offset, label))
        if not rows:
            return empty_event_table()
        table = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
        return table.sort_values(["filename", "onset", "event_label"], ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        """Settings as plain per-class mappings (YAML/JSON-safe; ``inf`` as a float)."""
        return {"method": "sebbs", **{k: dict(v) for k, v in self.settings.items()}}

    @classmethod
    def tune(
        cls,
        score_dfs: Mapping[str, pd.DataFrame],
        reference: Mapping[str, Sequence[tuple[float, float, str]]],
        durations: Mapping[str, float],
        step_filter_lengths: Sequence[float] = STEP_FILTER_LENGTHS,
        merge_thresholds_abs: Sequence[float] = MERGE_THRESHOLDS_ABS,
        merge_thresholds_rel: Sequence[float] = MERGE_THRESHOLDS_REL,
    ) -> tuple[SEBBsPostProcessor, dict[str, float]]:
        """Per-class grid search (the grid of ``sebbs.csebbs.tune``, ``select_best_cbf``) on
        VALIDATION scores for the collar-based F1; returns the tuned post-processor and
        each class's best validation F1. Classes without validation events keep the
        defaults.

        Args:
            score_dfs: validation score DataFrames by audio id.
            reference: validation events ``(onset, offset, label)`` by audio id (every
                scored clip, an empty list for clips without events).
            durations: clip durations by audio id.
        """
        csebbs = import_sebbs()
        all_classes = [
            c for c in next(iter(score_dfs.values())).columns if c not in ("onset", "offset")
        ]
        # sed_scores_eval cannot score a class without reference events: those keep the
        # defaults (as the median-filter tuning keeps the run's settings for them)
        present = {label for events in reference.values() for *_, label in events}
        classes = [c for c in all_classes if c in present]
        if not classes:
            raise ValueError("no validation events: nothing to tune cSEBBs on")
        score_dfs = {k: df[["onset", "offset", *classes]] for k, df in score_dfs.items()}
        # The grid is run here rather than by `csebbs.tune`: in sebbs 1.0.2 that builds its
        # predictors without sound classes, and selection then fails on any clip left
        # without a box. Same grid and selection (abs or rel merge threshold, not both).
        merges = [(a, np.inf) for a in merge_thresholds_abs]
        merges += [(np.inf, r) for r in merge_thresholds_rel]
        candidates = []
        for step in step_filter_lengths:
            for abs_threshold, rel_threshold in merges:
                predictor = csebbs.CSEBBsPredictor(
                    step_filter_length=step,
                    merge_threshold_abs=abs_threshold,
                    merge_threshold_rel=rel_threshold,
                    sound_classes=classes,
                )
                candidates.append((predictor, predictor.predict(dict(score_dfs))))
        predictor, best = csebbs.select_best_cbf(
            candidates,
            ground_truth={k: list(reference.get(k, [])) for k in score_dfs},
            audio_durations={k: float(durations[k]) for k in score_dfs},
            onset_collar=EVENT_BASED.t_collar,
            offset_collar=EVENT_BASED.t_collar,
            offset_collar_rate=EVENT_BASED.percentage_of_length,
        )
        defaults = cls(all_classes).settings
        names = ("step_filter_length", "merge_threshold_abs", "merge_threshold_rel")
        tuned = cls(
            all_classes,
            **{n: {**defaults[n], **getattr(predictor, n)} for n in names},
            detection_threshold={
                **defaults["detection_threshold"],
                **predictor.detection_threshold,
            },
        )
        return tuned, {k: float(v) for k, v in best.items()}


def _per_class(value: float | Mapping[str, float], classes: Sequence[str]) -> dict[str, float]:
    if isinstance(value, Mapping):
        missing = [c for c in classes if c not in value and "default" not in value]
        if missing:
            raise ValueError(f"no value for class(es) {missing} in {dict(value)}")
        return {c: float(value.get(c, value.get("default"))) for c in classes}
    return dict.fromkeys(classes, float(value))
