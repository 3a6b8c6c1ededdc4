"""Evaluation: settings, score DataFrames and metrics (sed_eval / sed_scores_eval / torchmetrics)."""

from sed_lightning.evaluation.metrics import (
    build_sed_eval_metrics,
    clip_map,
    compute_all,
    ground_truth_events,
    psds,
    psds_with_per_class,
    sed_eval_metrics,
)
from sed_lightning.evaluation.scores import (
    audio_id,
    class_names_of,
    durations_from_scores,
    read_scores,
    scores_to_dataframes,
    write_scores,
)
from sed_lightning.evaluation.settings import (
    EVENT_BASED,
    PSDS1,
    PSDS2,
    PSDS_SETTINGS,
    SEGMENT_BASED,
    EventBasedSetting,
    PSDSSetting,
    SegmentBasedSetting,
)

__all__ = [
    "EVENT_BASED",
    "PSDS1",
    "PSDS2",
    "PSDS_SETTINGS",
    "SEGMENT_BASED",
    "EventBasedSetting",
    "PSDSSetting",
    "SegmentBasedSetting",
    "audio_id",
    "build_sed_eval_metrics",
    "class_names_of",
    "clip_map",
    "compute_all",
    "durations_from_scores",
    "ground_truth_events",
    "psds",
    "psds_with_per_class",
    "read_scores",
    "scores_to_dataframes",
    "sed_eval_metrics",
    "write_scores",
]
