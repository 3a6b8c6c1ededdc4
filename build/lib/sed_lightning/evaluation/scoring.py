"""Scoring one validation/test set: frame and clip probabilities + references -> metrics.

Pure: no Lightning, no processes, no files. :class:`~sed_lightning.training.evaluation.
SEDEvaluation` gathers the probabilities across ranks and calls :func:`score_set`;
:mod:`sed_lightning.training.outputs` writes what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from sed_lightning.evaluation.metrics import clip_map, compute_all, sed_eval_metrics
from sed_lightning.evaluation.scores import scores_to_dataframes
from sed_lightning.postprocessing import PostProcessor


@dataclass
class StageResult:
    """What one validation/test epoch was scored on and what it scored (for other callbacks,
    e.g. :class:`~sed_lightning.training.wandb_media.WandbMedia`)."""

    metrics: dict[str, float]
    estimated: pd.DataFrame
    reference: pd.DataFrame
    score_dfs: dict[str, pd.DataFrame]
    durations: dict[str, float]
    # class -> {"event": F1, "segment": F1}
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)


def score_set(
    frames: Mapping[str, np.ndarray],
    clips: Mapping[str, np.ndarray],
    reference: pd.DataFrame,
    clip_targets: np.ndarray,
    durations: Mapping[str, float],
    postprocessor: PostProcessor,
    stage: str,
    full: bool = True,
    dcase2016: bool = True,
) -> StageResult:
    """Post-process ``frames`` into events and score them against ``reference``.

    Args:
        frames: ``filename -> (n_frames, n_classes)`` probabilities (the clips scored).
        clips: ``filename -> (n_classes,)`` clip probabilities, for every clip of ``frames``.
        reference: the strong reference of those clips (``STRONG_COLUMNS``).
        clip_targets: ``(n_clips, n_classes)`` clip labels, in the order of ``frames``.
        durations: ``filename -> seconds`` (the events are clipped to them).
        postprocessor: turns frame probabilities into events.
        stage: the metrics' prefix (``val`` / ``test``).
        full: every metric of :func:`~sed_lightning.evaluation.metrics.compute_all` (PSDS
            too); else only event/segment F1 and clip mAP (what validation needs).
        dcase2016: with ``full``, add the DCASE 2016 Task 2 figures.
    """
    files = list(frames)
    class_names = postprocessor.class_names
    estimated = postprocessor(dict(frames), dict(durations))
    score_dfs = scores_to_dataframes(frames, postprocessor.frame_hop, class_names)
    clip_scores = torch.tensor(np.stack([clips[f] for f in files]))
    targets = torch.as_tensor(np.asarray(clip_targets)).long()
    result = StageResult({}, estimated, reference, score_dfs, dict(durations))
    if full:
        result.metrics = compute_all(
            reference,
            estimated,
            score_dfs,
            durations,
            class_names,
            clip_scores,
            targets,
            prefix=f"{stage}/",
            filenames=files,
            drop_classes_without_events=True,
            dcase2016=dcase2016,
        )
        per_class = {
            kind: {c: result.metrics[f"{stage}/{kind}_f1/{c}"] for c in class_names}
            for kind in ("event", "segment")
        }
    else:
        f1 = sed_eval_metrics(reference, estimated, class_names, filenames=files)
        result.metrics = {
            f"{stage}/event_f1": f1["event_f1"],
            f"{stage}/segment_f1": f1["segment_f1"],
            f"{stage}/clip_map": clip_map(clip_scores, targets),
        }
        per_class = {kind: f1[f"{kind}_f1_per_class"] for kind in ("event", "segment")}
    result.per_class = {
        c: {"event": per_class["event"][c], "segment": per_class["segment"][c]} for c in class_names
    }
    return result
