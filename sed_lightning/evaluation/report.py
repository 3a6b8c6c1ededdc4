"""Ablation report: ``sed-tools report experiments/<study> [--runs-dir DIR]``.

:func:`report` tabulates every run under the study folder, grouped into configurations
(:mod:`sed_lightning.evaluation.report_runs`: a configuration is the runs of every seed
with the same swept overrides), and writes into the study folder:

- ``results.csv``: one row per configuration, mean / std / p-value of each metric (the
  DESED-style macro figures, and the DCASE 2016 Task 2 figures ``dcase2016/*`` when the
  runs' ``metrics.json`` hold them);
- ``results.md``: the same as a table under a header naming the study, its training
  budget, the seeds, the dates of the runs and the package versions;
- ``results.png``: a bar chart of the means with std error bars.

The validation columns (``val/*``, from ``metrics_val.json``) come first, the test ones
after. When runs hold test figures of a decoder tuned on validation after training
(``sed-tools tune RUN_DIR`` or ``postprocess=tuned_median``: ``metrics_tuned.json``;
``--method sebbs`` or ``postprocess=sebbs``: ``metrics_sebbs.json``), the decoder-dependent
event figures (:data:`TUNED_METRICS`) get columns ``test_tuned/<metric>`` and
``test_sebbs/<metric>`` (the prefixes of the run's own logged metrics) after the untuned test
ones; their mean is over the runs that have the file (``<metric>_n`` in the CSV, ``n=K`` in
the markdown where fewer than the seeds). The raw-score PSDS does not depend on the decoder
(one column); the tuned files add the PSDS of the filtered scores / of the boxes. The
``val/*`` figures of ``metrics_sebbs.json`` are in-sample (tuned on that set): not a column.

The cost columns (:data:`COST_COLUMNS`: parameters, MACs per 10 s clip, training and test
kWh, fit time) come last, from each run's ``cost.json`` (:mod:`sed_lightning.training.cost`),
the mean over the runs that have one (no test; an empty cell for runs made before it).

The reference configuration is ``study.reference`` (comma-separated ``key=value``); each
other configuration is compared with it by a paired t-test over the seeds both have.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sed_lightning.common import HEADLINE_METRICS
from sed_lightning.evaluation.report_runs import (
    COMMON,
    TUNED_PREFIXES,
    Run,
    group,
    is_reference,
    label,
    load_runs,
    reference_pairs,
    short_labels,
)
from sed_lightning.evaluation.settings import DCASE2016_KEYS
from sed_lightning.evaluation.tables import fmt_cell, paired_ttest_p
from sed_lightning.run_files import RUN_INFO
from sed_lightning.training.cost import COST_COLUMNS, fmt_cost

log = logging.getLogger(__name__)

METRICS = HEADLINE_METRICS  # the table's columns (one home: sed_lightning.common)
# In the table when any run has them: the DCASE 2016 Task 2 figures (micro; *_er: lower is better).
OPTIONAL_METRICS = DCASE2016_KEYS
#: In the table (first) when the runs wrote ``metrics_val.json``: the validation figures,
#: the split that chooses defaults (the test columns only report).
VALIDATION_METRICS = ("val/event_f1", "val/psds1", "val/dcase2016/onset_f1")
METRIC_PREFIX = "test/"
#: The figures of the tuned decoders in the table (when a run has them): the event-level ones
#: that depend on the decoder (PSDS does not; its column would repeat the untuned one).
#: psds1_filtered (median+threshold tuning only): PSDS of the scores median-filtered with the
#: tuned windows, the DCASE baselines' PSDS; psds1_boxes (cSEBBs only): PSDS of the boxes
TUNED_METRICS = ("event_f1", "dcase2016/onset_f1", "psds1_filtered", "psds1_boxes")
TUNED_COLUMNS = tuple(prefix + m for prefix in TUNED_PREFIXES for m in TUNED_METRICS)
#: Columns a run may lack (older runs): each is the mean over the runs that have it.
PARTIAL_COLUMNS = (*TUNED_COLUMNS, *COST_COLUMNS)
TEST_NAME = "paired t-test (scipy.stats.ttest_rel)"


# ---------------------------------------------------------------- the table


def metric(run: Run, name: str) -> float:
    """A test metric of a run (``val/...``: a validation one; ``test_tuned/...``,
    ``test_sebbs/...``: a test one of a tuned decoder; NaN when missing)."""
    qualified = name.startswith(("val/", "cost/", *TUNED_PREFIXES))
    value = run.metrics.get(name if qualified else METRIC_PREFIX + name)
    return float("nan") if value is None else float(value)


def metric_names(runs: Sequence[Run]) -> tuple[str, ...]:
    """The table's metrics: the :data:`VALIDATION_METRICS` and :data:`OPTIONAL_METRICS` a
    run has, around :data:`METRICS`, then the :data:`TUNED_COLUMNS` and the
    :data:`COST_COLUMNS` a run has."""
    val = [m for m in VALIDATION_METRICS if any(m in r.metrics for r in runs)]
    extra = [m for m in OPTIONAL_METRICS if any(METRIC_PREFIX + m in r.metrics for r in runs)]
    tuned = [m for m in PARTIAL_COLUMNS if any(m in r.metrics for r in runs)]
    return (*val, *METRICS, *extra, *tuned)


def table_metrics(table: pd.DataFrame) -> list[str]:
    """The metrics a summary table has columns for (in table order)."""
    every = (*VALIDATION_METRICS, *METRICS, *OPTIONAL_METRICS, *PARTIAL_COLUMNS)
    return [m for m in every if f"{m}_mean" in table.columns]


def paired_p(config: Mapping[Any, Run], reference: Mapping[Any, Run], name: str) -> float:
    """p-value of the paired t-test over the seeds both have (NaN with fewer than 2); for a
    tuned decoder's figure, over the seeds whose runs both have it."""
    seeds = [s for s in config if s in reference]
    pairs = [(metric(config[s], name), metric(reference[s], name)) for s in seeds]
    if name in TUNED_COLUMNS:
        pairs = [(a, b) for a, b in pairs if not (np.isnan(a) or np.isnan(b))]
    return paired_ttest_p([a for a, _ in pairs], [b for _, b in pairs])


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``rounds=10`` after ``rounds=2``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def summary_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per configuration (reference first): seeds, mean/std/p of each metric."""
    groups = group(runs)
    reference = reference_pairs(next((r.study.get("reference") for r in runs if r.study), None))
    factors = {label(r.factors): r.factors for r in runs}
    refs = [name for name in groups if is_reference(factors[name], reference)]
    if len(refs) != 1:
        log.warning("reference %s matches %d configurations: no test", reference, len(refs))
    ref = refs[0] if len(refs) == 1 else None
    order = sorted(groups, key=lambda name: (name != ref, natural_key(name)))
    names = metric_names(runs)
    table = pd.DataFrame(
        [table_row(name, groups[name], groups.get(ref), name == ref, names) for name in order]
    )
    shown, common = short_labels(factors)
    table.insert(1, "name", [shown[c] for c in table["configuration"]])
    table.attrs["common"] = common  # the settings the names leave out (results.md says them)
    return table


def table_row(
    config: str,
    seeds: Mapping[Any, Run],
    reference: Mapping | None,
    is_ref: bool,
    names: Sequence[str] = METRICS,
) -> dict:
    """The summary of one configuration (a run without a metric counts it as NaN, but for a
    tuned decoder's figure or a cost: its mean / std are over the runs that have it,
    ``<name>_n``; a cost has no test)."""
    row: dict[str, Any] = {
        "configuration": config,
        "reference": is_ref,
        "n_seeds": len(seeds),
        "seeds": " ".join(str(s) for s in sorted(seeds, key=lambda s: natural_key(str(s)))),
    }
    for name in names:
        values = np.array([metric(run, name) for run in seeds.values()])
        if name in PARTIAL_COLUMNS:  # not every run may have been tuned or costed
            values = values[~np.isnan(values)]
        row[f"{name}_mean"] = float(values.mean()) if len(values) else float("nan")
        row[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        no_test = is_ref or reference is None or name in COST_COLUMNS
        row[f"{name}_p"] = float("nan") if no_test else paired_p(seeds, reference, name)
        if name in PARTIAL_COLUMNS:
            row[f"{name}_n"] = len(values)
    return row


# ---------------------------------------------------------------- writing


def versions_text(runs: Sequence[Run]) -> str:
    """The package versions of the runs (every value when runs differ)."""
    values: dict[str, list[str]] = {}
    for run in runs:
        for name, version in run.versions.items():
            values.setdefault(name, [])
            if version not in values[name]:
                values[name].append(version)
    if not values:
        return f"not recorded (no {RUN_INFO} in the runs)"
    missing = sum(not run.versions for run in runs)
    text = ", ".join(f"{name} {' / '.join(v)}" for name, v in values.items())
    return text + (f" ({missing} result(s) without {RUN_INFO})" if missing else "")


def header(runs: Sequence[Run], runs_dir: Path, names: Sequence[str] = METRICS) -> list[str]:
    """The lines above the markdown table."""
    study = next((r.study for r in runs if r.study), {})
    budgets = sorted({str(r.study.get("budget", "not recorded")) for r in runs})
    seeds = sorted({str(r.seed) for r in runs}, key=natural_key)
    dates = sorted(r.started for r in runs if r.started)
    span = f"{dates[0]:%Y-%m-%d %H:%M} to {dates[-1]:%Y-%m-%d %H:%M}" if dates else "unknown"
    lines = [
        f"# Ablation study: {study.get('name', runs_dir.name)}",
        "",
        f"- reference: `{study.get('reference', 'not set')}` (in bold, marked (ref))",
        f"- training budget: {'; '.join(budgets)}",
        f"- seeds: {', '.join(seeds)}",
        f"- runs: {len(runs)} results (a self-training round counts as one), {span}, "
        f"under `{runs_dir}`",
        f"- packages: {versions_text(runs)}",
        f"- cells: mean ± std (ddof=1) over seeds of the test-set metric; p: {TEST_NAME} "
        "against the reference over the seeds both have (n/a with fewer than 2 pairs)",
    ]
    splits = []
    if any(name.startswith("val/") for name in names):
        splits.append(
            "- val/*: the same figures on the validation set (the split every choice is made "
            "on); the other columns: test, reported once"
        )
    tuned = [p for p in TUNED_PREFIXES if any(name.startswith(p) for name in names)]
    if tuned:
        splits.append(("; " if splits else "- ") + tuned_text(tuned))
    if splits:
        lines.append("".join(splits))
    costs = [name for name in names if name in COST_COLUMNS]
    if costs:
        lines.append(
            "- cost/*: what a run cost (cost.json): "
            + ", ".join(f"{name} = {COST_COLUMNS[name]}" for name in costs)
            + " (mean over the runs that have cost.json; energy by CodeCarbon, method in "
            "cost.json; fit = training with its validations)"
        )
    if any(name in DCASE2016_KEYS for name in names):
        lines.append(
            "- dcase2016/*: the DCASE 2016 Task 2 figures (sed_eval, overall = micro): "
            "onset-only event-based F1 / error rate with a 200 ms collar, segment-based error "
            "rate / F1 on 1 s segments; error rates: lower is better"
        )
    return [*lines, ""]


def tuned_text(prefixes: Sequence[str]) -> str:
    """What the tuned columns of ``prefixes`` (``test_tuned/``, ``test_sebbs/``) hold."""
    what = {
        TUNED_PREFIXES[
            0
        ]: "per-class median window + threshold + minimum duration (metrics_tuned.json)",
        TUNED_PREFIXES[1]: "cSEBBs, sound event bounding boxes (metrics_sebbs.json)",
    }
    return (
        ", ".join(f"{prefix}*" for prefix in prefixes)
        + ": test figures with the decoder tuned on the validation scores of the tested "
        "weights after training (sed-tools tune or postprocess.tune): "
        + "; ".join(f"{prefix.rstrip('/')} = {what[prefix]}" for prefix in prefixes)
        + "; the unprefixed test columns: the run's own fixed decoder; psds1/psds2: of the "
        "raw frame scores, whatever the decoder; psds1_filtered: of the scores median-filtered "
        "with the tuned windows (as the DCASE baselines report PSDS); psds1_boxes: of the "
        "cSEBBs boxes; n=K: the mean over the K seeds whose run has the file (an empty cell: "
        "none has)"
    )


def cell(row: Mapping[str, Any], name: str) -> str:
    """A markdown cell: :func:`fmt_cell` (a cost: its mean, :func:`fmt_cost`); for a tuned
    decoder's figure or a cost, ``n=K`` when fewer than the configuration's seeds have it,
    empty when none has."""
    n = row.get(f"{name}_n")
    if n is None or pd.isna(n):
        return fmt_cell(row, name)
    if n == 0:
        return ""
    text = fmt_cost(name, row[f"{name}_mean"]) if name in COST_COLUMNS else fmt_cell(row, name)
    return text if n == row["n_seeds"] else f"{text}, n={int(n)}"


def markdown(table: pd.DataFrame, runs: Sequence[Run], runs_dir: Path) -> str:
    """``results.md``: header, table and the chart."""
    names = table_metrics(table)
    lines = header(runs, runs_dir, names)
    common = table.attrs.get("common", {})
    if common and len(table) > 1:
        settings = ", ".join(f"`{k}={v}`" for k, v in common.items())
        lines.append(f"- {COMMON} (a configuration names only what it changes): {settings}")
    lines.append("| configuration | seeds | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for row in table.to_dict("records"):
        name = f"**{row['name']}** (ref)" if row["reference"] else row["name"]
        cells = [cell(row, m) for m in names]
        lines.append(f"| {name} | {row['n_seeds']} | " + " | ".join(cells) + " |")
    lines += ["", "![results](results.png)", ""]
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path, title: str) -> None:
    """Bar chart: one group per metric, one bar per configuration, std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m for m in table_metrics(table) if m not in COST_COLUMNS]  # other scales
    n = len(table)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(names) + 0.4 * n), 4.0))
    x = np.arange(len(names))
    for i, row in enumerate(table.to_dict("records")):
        means = [row[f"{m}_mean"] for m in names]
        stds = [np.nan_to_num(row[f"{m}_std"]) for m in names]
        name = row["name"] + (" (ref)" if row["reference"] else "")
        ax.bar(x + (i - (n - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=name)
    ax.set_xticks(x, names, rotation=20 if len(names) > len(METRICS) else 0)
    ax.set_ylabel("test score (mean ± std over seeds)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(study_dir: Path, runs_dir: Path | None = None) -> pd.DataFrame:
    """Write ``results.csv``, ``results.md`` and ``results.png`` into ``study_dir``."""
    runs_dir = runs_dir or study_dir
    runs = load_runs(runs_dir)
    table = summary_table(runs)
    study_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(study_dir / "results.csv", index=False)
    (study_dir / "results.md").write_text(markdown(table, runs, runs_dir))
    name = next((r.study.get("name") for r in runs if r.study.get("name")), study_dir.name)
    plot(table, study_dir / "results.png", f"Ablation: {name}")
    return table
