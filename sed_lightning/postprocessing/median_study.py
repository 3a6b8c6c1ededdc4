"""Median-filter study from saved scores (no retraining, no model loaded).

Usage (:mod:`sed_lightning.tools`)::

    sed-tools median-study RUN_DIR [RUN_DIR ...] --out experiments/median_filter
        [--windows 1 3 5 7 11 21] [--thresholds 0.1 ... 0.9] [--min-durations 0 ... 1.0]
        [--wandb PROJECT]

A RUN_DIR without ``scores/`` is searched for runs (every folder under it holding
``scores/``), e.g. ``experiments/median_filter/runs``.

For every run (one per seed) and every median window (frames; seconds = frames x the frame
hop of the saved scores) the test event/segment F1 (sed_eval) are computed from ``scores/``
with the run's own threshold and ``min_duration``; row ``tuned`` applies the per-class
windows, thresholds and minimum durations tuned on the run's ``val_scores/`` over the grids
(:func:`sed_lightning.postprocessing.tuning.tune`) to test. The reference is the run's own
configured window (row ``configured`` when that is a per-class mapping). :func:`study`
writes into ``out``: ``runs.csv`` (one row per run and window), ``results.csv`` / ``results.md``
(mean ± std over runs; paired t-test, ``scipy.stats.ttest_rel``, against the reference;
n/a with fewer than 2 pairs) and ``results.png`` (F1 vs window, std error bars).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sed_lightning.evaluation.metrics import sed_eval_metrics
from sed_lightning.evaluation.tables import fmt_cell, paired_ttest_p
from sed_lightning.postprocessing import resolve_per_class, window_in_frames
from sed_lightning.postprocessing.saved_runs import SavedSplit, decode, load_split, run_postprocess
from sed_lightning.postprocessing.tuning import DEFAULT_GRID, MedianGrid, tune
from sed_lightning.run_files import SPLIT_FILES

METRICS = ("event_f1", "segment_f1")
TUNED = "tuned"
CONFIGURED = "configured"
TEST_NAME = "paired t-test (scipy.stats.ttest_rel)"
TEST_SCORES = SPLIT_FILES["test"][0]  # scores/: a run folder holds it


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Run folders (holding ``scores/``): each path itself, or the runs found under it."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / TEST_SCORES).is_dir():
            runs.append(path)
        else:
            runs += sorted(d.parent for d in path.rglob(TEST_SCORES) if d.is_dir())
    if not runs:
        raise FileNotFoundError(f"no run folder (with scores/) in or under {list(paths)}")
    return runs


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved config (``.hydra/config.yaml``); ``{}`` when it has none."""
    config = run_dir / ".hydra" / "config.yaml"
    return (yaml.safe_load(config.read_text()) or {}) if config.is_file() else {}


def run_seed(run_dir: Path) -> Any:
    """The run's seed (``.hydra/config.yaml``), else its folder name."""
    seed = run_config(run_dir).get("seed")
    return run_dir.name if seed is None else seed


def run_budget(run_dir: Path) -> str:
    """How long the run trained (``trainer.max_epochs``), for the table header."""
    epochs = (run_config(run_dir).get("trainer") or {}).get("max_epochs")
    return "unknown" if epochs is None else f"{epochs} epochs"


def reference_window(base: Mapping[str, Any], classes: Sequence[str], hop: float) -> int | str:
    """The run's configured window in frames, or ``configured`` when it differs by class."""
    windows = resolve_per_class("median_window", base["median_window"], classes)
    frames = {window_in_frames(w, hop) for w in windows.values()}
    return frames.pop() if len(frames) == 1 else CONFIGURED


def f1_row(test: SavedSplit, postprocess: Mapping[str, Any]) -> dict[str, float]:
    """Test event/segment F1 (sed_eval) under ``postprocess``."""
    f1 = sed_eval_metrics(test.reference, decode(test, postprocess), test.classes, test.files)
    return {name: f1[name] for name in METRICS}


def run_rows(run_dir: Path, grid: MedianGrid) -> list[dict[str, Any]]:
    """One row per window of ``grid`` (+ ``configured`` when per-class, + ``tuned``: the
    median tuning over all of ``grid``) for one run."""
    test = load_split(run_dir, "test")
    base = run_postprocess(run_dir)
    hop = test.frame_hop
    ref = reference_window(base, test.classes, hop)
    settings: dict[Any, dict[str, Any]] = {
        w: {**base, "median_window": round(w * hop, 6)}
        for w in sorted(set(grid.windows) | ({ref} if isinstance(ref, int) else set()))
    }
    if ref == CONFIGURED:
        settings[CONFIGURED] = base
    settings[TUNED] = tune(load_split(run_dir, "val"), base, grid).postprocess
    seed = run_seed(run_dir)
    return [
        {
            "run": str(run_dir),
            "seed": seed,
            "budget": run_budget(run_dir),
            "window": str(label),
            "window_s": label * hop if isinstance(label, int) else float("nan"),
            "reference": label == ref,
            **f1_row(test, postprocess),
        }
        for label, postprocess in settings.items()
    ]


def window_order(label: str) -> tuple[int, float]:
    """Numeric windows first (ascending), then ``configured``, then ``tuned``."""
    if label.isdigit():
        return (0, float(label))
    return (1 if label == CONFIGURED else 2, 0.0)


def paired_p(values: pd.Series, reference: pd.Series) -> float:
    """p of the paired t-test over the runs both have (NaN with fewer than 2 pairs)."""
    both = pd.concat([values, reference], axis=1, keys=["a", "b"]).dropna()
    return paired_ttest_p(list(both["a"]), list(both["b"]))


def summarize(raw: pd.DataFrame) -> pd.DataFrame:
    """Per window: runs, mean/std (ddof=1) of each metric and p against the reference."""
    reference = raw[raw["reference"]].set_index("run")
    rows = []
    for label in sorted(raw["window"].unique(), key=window_order):
        part = raw[raw["window"] == label].set_index("run")
        is_ref = bool(part["reference"].all())
        row: dict[str, Any] = {"window": label, "reference": is_ref, "n_runs": len(part)}
        for name in METRICS:
            row[f"{name}_mean"] = float(part[name].mean())
            row[f"{name}_std"] = float(part[name].std(ddof=1)) if len(part) > 1 else math.nan
            row[f"{name}_p"] = math.nan if is_ref else paired_p(part[name], reference[name])
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, raw: pd.DataFrame, seconds: float) -> str:
    """``results.md``: what was compared, then the table and the chart."""
    runs = raw.drop_duplicates("run")
    lines = [
        "# Median-filter study (from saved scores, no retraining)",
        "",
        f"- runs: {len(runs)} ({', '.join(f'`{r}` (seed {s})' for r, s in zip(runs['run'], runs['seed'], strict=True))})",
        f"- training budget of the runs: {', '.join(sorted(set(raw.get('budget', ['unknown']))))}",
        "- windows: median-filter length in frames; threshold and min_duration: each run's own",
        f"- `{TUNED}`: per-class window, threshold and minimum duration tuned on each run's validation scores "
        "(max event-based F1), applied to test",
        "- reference (marked (ref)): each run's configured window",
        f"- cells: mean ± std (ddof=1) over runs of the test metric (sed_eval); p: {TEST_NAME} "
        "against the reference (n/a with fewer than 2 pairs)",
        f"- computed {datetime.now():%Y-%m-%d %H:%M} in {seconds:.1f} s",
        "",
        "| window | runs | " + " | ".join(METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for row in table.to_dict("records"):
        name = f"**{row['window']}** (ref)" if row["reference"] else row["window"]
        cells = " | ".join(fmt_cell(row, m) for m in METRICS)
        lines.append(f"| {name} | {row['n_runs']} | {cells} |")
    return "\n".join([*lines, "", "![results](results.png)", ""])


def plot(table: pd.DataFrame, path: Path) -> None:
    """F1 (mean ± std over runs) per window as lines, ``configured``/``tuned`` as separate
    points; the reference is starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(table))
    windows = table["window"].str.isdigit().to_numpy()
    ref = table["reference"].to_numpy()
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    for name in METRICS:
        mean = table[f"{name}_mean"].to_numpy()
        std = np.nan_to_num(table[f"{name}_std"].to_numpy())
        line = ax.errorbar(x[windows], mean[windows], std[windows], marker="o", capsize=3)
        line[0].set_label(name)
        color = line[0].get_color()
        ax.errorbar(x[~windows], mean[~windows], std[~windows], fmt="s", capsize=3, color=color)
        ax.plot(x[ref], mean[ref], "k*", markersize=12)
    labels = [f"{w} (ref)" if r else w for w, r in zip(table["window"], ref, strict=True)]
    ax.set_xticks(x, labels)
    ax.set_xlabel("median window (frames)")
    ax.set_ylabel("test F1 (mean ± std over runs)")
    ax.set_title("Median-filter study")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def study(
    run_dirs: Sequence[Path],
    out: Path,
    grid: MedianGrid = DEFAULT_GRID,
) -> pd.DataFrame:
    """Write ``runs.csv``, ``results.csv``, ``results.md`` and ``results.png`` into ``out``
    for the runs in or under ``run_dirs`` (see :func:`find_runs`)."""
    start = time.perf_counter()
    runs = find_runs(run_dirs)
    raw = pd.DataFrame([row for run in runs for row in run_rows(run, grid)])
    table = summarize(raw)
    out.mkdir(parents=True, exist_ok=True)
    raw.to_csv(out / "runs.csv", index=False)
    table.to_csv(out / "results.csv", index=False)
    plot(table, out / "results.png")
    (out / "results.md").write_text(markdown(table, raw, time.perf_counter() - start))
    return table
