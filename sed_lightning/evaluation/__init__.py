"""Evaluation: settings, score DataFrames and metrics (sed_eval / sed_scores_eval / torchmetrics).

The scoring of a set, :func:`sed_lightning.evaluation.scoring.score_set`, is imported from its
module (it loads torch; ``sed-tools median-study`` must not)."""

from sed_lightning.evaluation.metrics import (
    build_sed_eval_metrics,
    clip_map,
    compute_all,
    dcase2016_metrics,
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
    DCASE2016_EVENT_BASED,
    DCASE2016_KEYS,
    DCASE2016_SEGMENT_BASED,
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
    "DCASE2016_EVENT_BASED",
    "DCASE2016_KEYS",
    "DCASE2016_SEGMENT_BASED",
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
    "dcase2016_metrics",
    "durations_from_scores",
    "ground_truth_events",
    "psds",
    "psds_with_per_class",
    "read_scores",
    "scores_to_dataframes",
    "sed_eval_metrics",
    "write_scores",
]
