"""Validation figures per condition (background, EBR level) of saved runs, no model loaded.

Usage (:mod:`sed_lightning.tools`)::

    sed-tools conditions RUN_DIR [RUN_DIR ...]
        --conditions data_cache/dcase2016_office/validation/recipes.jsonl
        [--split val] [--decoder own|tuned] [--out FILE.json]

Each run's saved scores of the split (``val_scores/``; ``--split test``: ``scores/``) are
decoded by the run's own post-processing (``--decoder tuned``: its
``postprocess_tuned.yaml``, tuned on the validation scores, so in-sample on validation) and
scored per condition (:func:`sed_lightning.evaluation.conditions.metrics_by_condition`: a
TSV ``filename`` + condition columns, or a synthesized set's ``recipes.jsonl``;
:func:`~sed_lightning.evaluation.conditions.read_conditions`). The table (:func:`markdown`):
one row per condition value, mean ± std over the runs of each figure. Where the gap
between generated and recorded backgrounds is large, a detector is likely to lose on
recordings it never heard: the figure to watch when changing the training soundscapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed_lightning.data.tsv import LabelFileError
from sed_lightning.evaluation.conditions import FIGURES, metrics_by_condition
from sed_lightning.evaluation.tables import fmt_mean_std
from sed_lightning.postprocessing.saved_runs import (
    decode,
    load_split,
    read_postprocess,
    run_postprocess,
)
from sed_lightning.run_files import METHOD_FILES

DECODERS = ("own", "tuned")


def run_decoder(run_dir: Path, decoder: str) -> dict[str, Any]:
    """The run's own post-processing, or the one tuned on its validation scores."""
    if decoder == "own":
        return run_postprocess(run_dir)
    path = run_dir / METHOD_FILES["median"][0]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tuned decoder (run sed-tools tune on the run)")
    return read_postprocess(path)


def run_conditions(run_dir: Path, table: pd.DataFrame, split: str, decoder: str) -> dict:
    """``{column: {value: figures}}`` of one run's saved split; ``table``: the conditions."""
    saved = load_split(run_dir, split)
    estimated = decode(saved, run_decoder(run_dir, decoder))
    return metrics_by_condition(saved.reference, estimated, saved.classes, table, saved.files)


def summarize(per_run: Sequence[dict]) -> list[dict[str, Any]]:
    """One row per (condition, value): clips and mean/std over runs of every figure."""
    rows = []
    first = per_run[0]
    for column, values in first.items():
        for value, figures in values.items():
            row: dict[str, Any] = {"condition": column, "value": value}
            row["n_clips"] = figures["n_clips"]
            for key in FIGURES:
                found = [r[column][value][key] for r in per_run if value in r.get(column, {})]
                array = np.array(found, dtype=float)
                row[f"{key}_mean"] = float(np.nanmean(array)) if len(array) else float("nan")
                row[f"{key}_std"] = (
                    float(np.nanstd(array, ddof=1)) if len(array) > 1 else float("nan")
                )
            rows.append(row)
    return rows


def markdown(rows: Sequence[dict[str, Any]], n_runs: int, split: str, decoder: str) -> str:
    """The table: one row per (condition, value), mean ± std over the runs."""
    lines = [
        f"# Figures per condition ({split}, decoder: {decoder}; mean ± std over {n_runs} runs)",
        "",
        "| condition | value | clips | " + " | ".join(FIGURES) + " |",
        "|---|---|---|" + "---|" * len(FIGURES),
    ]
    for row in rows:
        cells = [fmt_mean_std(row[f"{k}_mean"], row[f"{k}_std"]) for k in FIGURES]
        lines.append(
            f"| {row['condition']} | {row['value']} | {row['n_clips']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def study(
    run_dirs: Sequence[Path], table: pd.DataFrame, split: str = "val", decoder: str = "own"
) -> tuple[dict[str, Any], list[str]]:
    """Score every run of ``run_dirs`` per condition of ``table``; returns the result
    (``runs`` scored, ``per_run`` figures, ``summary`` rows of :func:`summarize`, ``errors``)
    and one error line per run that could not be scored (``RUN_DIR: what went wrong``)."""
    per_run, scored, errors = [], [], []
    for run_dir in run_dirs:
        try:
            per_run.append(run_conditions(Path(run_dir), table, split, decoder))
            scored.append(str(run_dir))
        except (OSError, LabelFileError, ValueError) as err:
            errors.append(f"{run_dir}: {' '.join(str(err).split())}")
    rows = summarize(per_run) if per_run else []
    return {"runs": scored, "per_run": per_run, "summary": rows, "errors": errors}, errors
