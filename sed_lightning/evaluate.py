"""Evaluate strong-label predictions from TSV files and print the metrics as JSON.

Usage::

    python -m sed_lightning.evaluate ref=REF.tsv est=EST.tsv \\
        [scores=SCORES_DIR] [durations=DURATIONS.tsv] [classes=[a,b]] [dcase2016=false]
        [conditions=CONDITIONS.tsv | conditions=SET_DIR/recipes.jsonl]

Prints ``event_f1``, ``segment_f1`` (and their ``*_micro`` / ``*_per_class`` variants), the
DCASE 2016 Task 2 figures ``dcase2016/onset_f1``, ``dcase2016/onset_er``,
``dcase2016/segment_er``, ``dcase2016/segment_f1`` (unless ``dcase2016=false``) and, with
``scores=``, ``psds1`` and ``psds2``. NaN values (see :mod:`sed_lightning.evaluation.metrics`)
are printed as ``null``. With ``conditions=``, ``by_condition`` gives macro event-F1,
segment-F1 and the DCASE 2016 onset-only F1 on the clips of each condition (a TSV
``filename`` + condition columns, or a synthesized set's ``recipes.jsonl``: background kind,
background, EBR level; see :mod:`sed_lightning.evaluation.conditions`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from sed_lightning.common import plain
from sed_lightning.data.merge_events import merge_same_class_events
from sed_lightning.data.tsv import LabelFileError, read_durations_tsv, read_strong_tsv
from sed_lightning.evaluation.conditions import metrics_by_condition, read_conditions
from sed_lightning.evaluation.metrics import (
    dcase2016_metrics,
    psds_with_per_class,
    sed_eval_metrics,
)
from sed_lightning.evaluation.scores import durations_from_scores, read_scores
from sed_lightning.evaluation.settings import PSDS_SETTINGS


def evaluate_files(
    ref: str | Path,
    est: str | Path,
    scores: str | Path | None = None,
    durations: str | Path | None = None,
    classes: Sequence[str] | None = None,
    drop_classes_without_events: bool = False,
    dcase2016: bool = True,
    conditions: str | Path | None = None,
) -> dict[str, Any]:
    """Compute the metrics for the given files (what the CLI prints)."""
    reference, merged = merge_same_class_events(read_strong_tsv(ref, class_names=classes))
    if merged:
        shown = ", ".join(merged[:10]) + (" ..." if len(merged) > 10 else "")
        print(  # stdout carries only the JSON
            f"warning: {ref}: overlapping same-class events merged in {len(merged)} file(s): {shown}",
            file=sys.stderr,
        )
    if classes is None:
        classes = sorted(set(reference["event_label"]))
    classes = [str(c) for c in classes]
    estimated = read_strong_tsv(est, class_names=classes)
    results: dict[str, Any] = {"classes": classes}
    results.update(sed_eval_metrics(reference, estimated, classes))
    if dcase2016:
        results.update(dcase2016_metrics(reference, estimated, classes))
    if scores is not None:
        score_dfs = read_scores(scores)
        durs = read_durations_tsv(durations) if durations else durations_from_scores(score_dfs)
        for name, setting in PSDS_SETTINGS.items():
            value, per_class = psds_with_per_class(
                score_dfs,
                reference,
                durs,
                setting,
                drop_classes_without_events=drop_classes_without_events,
            )
            results[name] = value
            results[f"{name}_per_class"] = per_class
    if conditions is not None:
        table = read_conditions(conditions)
        try:
            results["by_condition"] = metrics_by_condition(
                reference, estimated, classes, table, reference.attrs.get("empty_files")
            )
        except ValueError as err:
            raise ValueError(f"{conditions}: {err}") from None
    return results


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    classes = OmegaConf.to_container(cfg.classes) if cfg.classes is not None else None
    try:
        results = evaluate_files(
            cfg.ref,
            cfg.est,
            cfg.scores,
            cfg.durations,
            classes,
            cfg.drop_classes_without_events,
            cfg.dcase2016,
            cfg.conditions,
        )
    except (LabelFileError, ValueError) as err:  # bad input: one line naming the file
        raise SystemExit(f"evaluate: {' '.join(str(err).split())}") from None
    print(json.dumps(plain(results, nan=None), indent=2))  # NaN -> null: strict JSON


if __name__ == "__main__":
    main()
