"""Validation figures per condition (background, EBR level) of saved runs, no model loaded.

Usage::

    python -m sed_lightning.tune_postprocess conditions RUN_DIR [RUN_DIR ...]
        --conditions data_cache/dcase2016_office/validation/recipes.jsonl
        [--split val] [--decoder own|tuned] [--out FILE.json]

Each run's saved scores of the split (``val_scores/``; ``--split test``: ``scores/``) are
decoded by the run's own post-processing (``--decoder tuned``: its
``postprocess_tuned.yaml``, tuned on the validation scores, so in-sample on validation) and
scored per condition (:func:`sed_lightning.evaluation.conditions.metrics_by_condition`: a
TSV ``filename`` + condition columns, or a synthesized set's ``recipes.jsonl``). Printed:
one row per condition value, mean ± std over the runs of each figure. Where the gap
between generated and recorded backgrounds is large, a detector is likely to lose on
recordings it never heard: the figure to watch when changing the training soundscapes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed_lightning.common import plain
from sed_lightning.data.tsv import LabelFileError
from sed_lightning.evaluation.conditions import FIGURES, metrics_by_condition, read_conditions
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
        raise FileNotFoundError(f"{path}: no tuned decoder (run tune_postprocess on the run)")
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sed_lightning.tune_postprocess conditions",
        description="Figures per condition (background kind, background, EBR level) of saved "
        "runs' scores.",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument(
        "--conditions",
        type=Path,
        required=True,
        help="TSV (filename + condition columns) or the split's synthesized recipes.jsonl",
    )
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--decoder", choices=DECODERS, default="own")
    parser.add_argument("--out", type=Path, help="write the per-run and summary figures as JSON")
    args = parser.parse_args(argv)
    try:
        table = read_conditions(args.conditions)
    except LabelFileError as err:
        raise SystemExit(f"conditions: {err}") from None
    per_run, scored, errors = [], [], []
    for run_dir in args.run_dirs:
        try:
            per_run.append(run_conditions(run_dir, table, args.split, args.decoder))
            scored.append(str(run_dir))
        except (OSError, LabelFileError, ValueError) as err:
            errors.append(f"conditions: {run_dir}: {' '.join(str(err).split())}")
    for line in errors:
        print(line, file=sys.stderr)
    if not per_run:
        raise SystemExit("conditions: no run could be scored")
    rows = summarize(per_run)
    print(markdown(rows, len(per_run), args.split, args.decoder))
    if args.out:
        result = {"runs": scored, "per_run": per_run, "summary": rows, "errors": errors}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(plain(result, nan=None), indent=2))
        print(f"written: {args.out}")
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
