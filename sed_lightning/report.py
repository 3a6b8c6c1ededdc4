"""Ablation report: ``python -m sed_lightning.report experiments/<study> [--runs-dir DIR]``.

Finds every run under the study folder (a run dir holds ``.hydra/overrides.yaml`` and
``metrics.json``; a self-training run holds ``rounds/round_K/metrics.json`` instead and
counts as one run per round, ``rounds=K``), groups the runs into configurations by their
swept overrides without the seed, and writes into the study folder:

- ``results.csv``: one row per configuration, mean / std / p-value of each metric (the
  DESED-style macro figures, and the DCASE 2016 Task 2 figures ``dcase2016/*`` when the
  runs' ``metrics.json`` hold them);
- ``results.md``: the same as a table under a header naming the study, its training
  budget, the seeds, the dates of the runs and the package versions;
- ``results.png``: a bar chart of the means with std error bars.

The validation columns (``val/*``, from ``metrics_val.json``) come first, the test ones
after. When runs hold test figures of a decoder tuned on validation after training
(``tune_postprocess RUN_DIR`` or ``postprocess=tuned_median``: ``metrics_tuned.json``;
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

Swept overrides are the keys of ``hydra.sweeper.params``, the command-line sweeps of the
multirun (``multirun.yaml``) and the keys listed in ``study.factors``. The reference
configuration is ``study.reference`` (comma-separated ``key=value``); each other
configuration is compared with it by a paired t-test over the seeds both have.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from sed_lightning.common import HEADLINE_METRICS
from sed_lightning.evaluation.settings import DCASE2016_KEYS
from sed_lightning.evaluation.tables import fmt_cell, paired_ttest_p
from sed_lightning.run_files import METHOD_FILES, METRICS_FILE, RUN_INFO, VAL_METRICS_FILE
from sed_lightning.training.cost import COST_COLUMNS, fmt_cost, read_cost
from sed_lightning.training.tuning import prefixed, tuned_prefix

log = logging.getLogger(__name__)

METRICS = HEADLINE_METRICS  # the table's columns (one home: sed_lightning.common)
# In the table when any run has them: the DCASE 2016 Task 2 figures (micro; *_er: lower is better).
OPTIONAL_METRICS = DCASE2016_KEYS
#: In the table (first) when the runs wrote ``metrics_val.json``: the validation figures,
#: the split that chooses defaults (the test columns only report).
VALIDATION_METRICS = ("val/event_f1", "val/psds1", "val/dcase2016/onset_f1")
METRIC_PREFIX = "test/"
#: Written after training by ``tune_postprocess`` (or ``postprocess.tune``): test figures of
#: the decoder tuned on validation (median window + threshold per class; cSEBBs).
TUNED_FILES = tuple(metrics for _, metrics in METHOD_FILES.values())
#: The prefixes of their test figures in a run's metrics (and the table): ``test_tuned/``,
#: ``test_sebbs/`` (:func:`sed_lightning.training.tuning.tuned_prefix`).
TUNED_PREFIXES = tuple(tuned_prefix(name, "test") for name in TUNED_FILES)
#: The figures of the tuned decoders in the table (when a run has them): the event-level ones
#: that depend on the decoder (PSDS does not; its column would repeat the untuned one).
#: psds1_filtered (median+threshold tuning only): PSDS of the scores median-filtered with the
#: tuned windows, the DCASE baselines' PSDS; psds1_boxes (cSEBBs only): PSDS of the boxes
TUNED_METRICS = ("event_f1", "dcase2016/onset_f1", "psds1_filtered", "psds1_boxes")
TUNED_COLUMNS = tuple(prefix + m for prefix in TUNED_PREFIXES for m in TUNED_METRICS)
#: Columns a run may lack (older runs): each is the mean over the runs that have it.
PARTIAL_COLUMNS = (*TUNED_COLUMNS, *COST_COLUMNS)
ROUND_KEY = "rounds"
TEST_NAME = "paired t-test (scipy.stats.ttest_rel)"


# ---------------------------------------------------------------- reading the runs


@dataclass
class RunDir:
    """What a run folder says about how it was made (``.hydra/`` and ``run_info.json``)."""

    path: Path
    overrides: dict[str, str]
    swept: list[str]
    choices: dict[str, Any]
    config: DictConfig
    info: dict[str, Any]


@dataclass
class Run:
    """One result: a run (or one round of a self-training run) with its configuration."""

    path: Path
    seed: Any
    factors: dict[str, str]
    study: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    started: datetime | None = None


def strip_prefix(key: str) -> str:
    """An override key without its ``+``/``++``/``~`` prefix.

    Example:
        >>> strip_prefix("++trainer.max_epochs"), strip_prefix("model/pooling")
        ('trainer.max_epochs', 'model/pooling')
    """
    return key.lstrip("+~")


def as_text(value: Any) -> str:
    """A config value as Hydra writes it on a command line (``null``, ``true``, ``0.5``).

    Example:
        >>> as_text(None), as_text(True), as_text(0.5), as_text("mean")
        ('null', 'true', '0.5', 'mean')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def parse_overrides(lines: Iterable[str]) -> list[tuple[str, str, bool]]:
    """``(key, value, is_sweep)`` of Hydra override strings (keys without ``+``/``~``).

    Example:
        >>> parse_overrides(["model/pooling=mean", "seed=1,2", "+trainer.x=null"])
        [('model/pooling', 'mean', False), ('seed', '1,2', True), ('trainer.x', 'null', False)]
    """
    lines = [str(line) for line in lines]
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception:  # an override Hydra's grammar rejects: split it by hand
        return [(strip_prefix(s.partition("=")[0]), s.partition("=")[2], False) for s in lines]
    return [(o.key_or_group, override_value(o), o.is_sweep_override()) for o in parsed]


def override_value(override: Any) -> str:
    """The value of a parsed override as text (a sweep: as written)."""
    if override.is_sweep_override():
        return override.input_line.partition("=")[2]
    return override.get_value_element_as_str()


def multirun_sweeps(run: Path, root: Path) -> list[str]:
    """Keys swept on the command line of the multirun that made ``run`` (its multirun.yaml)."""
    for folder in [run, *run.parents]:
        path = folder / "multirun.yaml"
        if path.is_file():
            task = OmegaConf.select(OmegaConf.load(path), "hydra.overrides.task") or []
            return [key for key, _, sweep in parse_overrides(task) if sweep]
        if folder == root:
            break
    return []


def hydra_settings(path: Path) -> tuple[list[str], dict[str, Any]]:
    """The ``hydra.sweeper.params`` keys and the group choices in a run's ``hydra.yaml``."""
    if not path.is_file():
        return [], {}
    hydra = OmegaConf.load(path).hydra
    params = OmegaConf.select(hydra, "sweeper.params") or {}
    choices = OmegaConf.select(hydra, "runtime.choices")
    choices = OmegaConf.to_container(choices) if isinstance(choices, DictConfig) else {}
    return [strip_prefix(str(k)) for k in params], choices


def read_run_dir(path: Path, root: Path) -> RunDir:
    """Load the ``.hydra/`` files and ``run_info.json`` of one run folder."""
    hydra_dir = path / ".hydra"
    lines = OmegaConf.load(hydra_dir / "overrides.yaml")
    overrides = {key: value for key, value, _ in parse_overrides(lines)}
    params, choices = hydra_settings(hydra_dir / "hydra.yaml")
    config = OmegaConf.load(hydra_dir / "config.yaml")
    info = read_info(path)
    swept = params + multirun_sweeps(path, root)
    return RunDir(path, overrides, swept, choices, config, info)


def read_info(folder: Path) -> dict[str, Any]:
    """A folder's ``run_info.json`` (``{}`` when it has none)."""
    path = folder / RUN_INFO
    return json.loads(path.read_text()) if path.is_file() else {}


ROUND_DIR = re.compile(r"round_(\d+)")


def result_files(path: Path) -> list[tuple[int | None, Path]]:
    """``(round, metrics.json)`` of a run: one per self-training round, else ``(None, ...)``."""
    rounds = []
    for metrics in path.glob(f"rounds/round_*/{METRICS_FILE}"):
        match = ROUND_DIR.fullmatch(metrics.parent.name)
        if match:
            rounds.append((int(match.group(1)), metrics))
    if rounds:
        return sorted(rounds)
    metrics = path / METRICS_FILE
    return [(None, metrics)] if metrics.is_file() else []


def find_run_dirs(root: Path) -> list[Path]:
    """Every run folder under ``root`` that has results (folders without are logged).

    A run folder inside another one (e.g. a round of a self-training run) is part of it.
    """
    runs: list[Path] = []
    found = sorted(root.glob("**/.hydra/overrides.yaml"), key=lambda p: (len(p.parts), p))
    for overrides in found:
        run = overrides.parent.parent
        if any(parent in runs for parent in run.parents):
            continue
        if result_files(run):
            runs.append(run)
        else:
            log.warning("no metrics.json in %s (unfinished run?): left out", run)
    return sorted(runs)


# ---------------------------------------------------------------- configurations


def study_metadata(config: DictConfig) -> dict[str, Any]:
    """The run's ``study`` node, resolved where it can be (``{}`` when absent)."""
    study = config.get("study")
    if study is None:
        return {}
    try:
        return OmegaConf.to_container(study, resolve=True)
    except Exception:  # an interpolation that needs Hydra (e.g. ${hydra:...})
        return OmegaConf.to_container(study, resolve=False)


def factor_keys(run_dirs: Sequence[RunDir]) -> list[str]:
    """The keys that define a configuration, no seed: every swept key and ``study.factors``.

    A study with neither (separate single-configuration commands, e.g. ``scheduler=cosine``
    then ``scheduler=cosine data.batch_sizes.strong=24``) is told apart by its command-line
    overrides: each key whose value differs between two runs of the same seed (a per-seed
    value such as a checkpoint path does not split a configuration).
    """
    keys: dict[str, None] = {}
    for run in run_dirs:
        extra = study_metadata(run.config).get("factors") or []
        for key in [*run.swept, *extra]:
            keys[strip_prefix(key)] = None
    for key in RUN_KEYS:
        keys.pop(key, None)
    if keys:
        return list(keys)
    for key in sorted({k for run in run_dirs for k in run.overrides} - RUN_KEYS):
        if key.startswith("hydra"):
            continue
        by_seed: dict[Any, set[str | None]] = {}
        for run in run_dirs:
            by_seed.setdefault(run.config.get("seed"), set()).add(run.overrides.get(key))
        if any(len(values) > 1 for values in by_seed.values()):
            keys[key] = None
    return list(keys)


#: Keys of how a run was made, not of what it is: never a configuration's factor.
RUN_KEYS = {"seed", "ckpt_path"}


def factor_value(run: RunDir, key: str) -> str | None:
    """``key``'s value in ``run``: its override, else its group choice, else its config value;
    ``None`` when the run has no such key (it was made before the key existed)."""
    if key in run.overrides:
        return run.overrides[key]
    if key in run.choices:
        return as_text(run.choices[key])
    absent = object()
    try:
        value = OmegaConf.select(run.config, key, default=absent)
    except Exception:
        return None
    return None if value is absent else as_text(value)


def factor_values(run_dirs: Sequence[RunDir], keys: Sequence[str]) -> list[dict[str, str]]:
    """Each run's value of each key. A run made before a key existed (no such key in its
    config, or no group choice where other runs have one: an inline node that became a
    config group) gets the value most runs that have the key and do not set it carry,
    that is the default, so a study spanning a new option is not split by it.

        >>> from types import SimpleNamespace as Ns
        >>> from omegaconf import OmegaConf as C
        >>> old = Ns(overrides={}, choices={}, config=C.create({"x": 1}))
        >>> new = Ns(overrides={}, choices={}, config=C.create({"x": 1, "p": 0.0}))
        >>> on = Ns(overrides={"p": "0.5"}, choices={}, config=C.create({"x": 1, "p": 0.5}))
        >>> factor_values([old, new, on], ["p"])
        [{'p': '0.0'}, {'p': '0.0'}, {'p': '0.5'}]
    """
    grouped = {key for key in keys if any(key in run.choices for run in run_dirs)}

    def own(run: RunDir, key: str) -> str | None:
        if key in grouped and key not in run.choices and key not in run.overrides:
            return None
        return factor_value(run, key)

    values = [{key: own(run, key) for key in keys} for run in run_dirs]
    defaults = {}
    for key in keys:
        unset = [
            v[key] for run, v in zip(run_dirs, values, strict=True) if key not in run.overrides
        ]
        present = [value for value in unset if value is not None]
        defaults[key] = Counter(present).most_common(1)[0][0] if present else "null"
    return [{k: defaults[k] if v is None else v for k, v in row.items()} for row in values]


def started(info: Mapping[str, Any], metrics: Path) -> datetime:
    """When the run started (run_info.json), else when its metrics were written."""
    if "started" in info:
        return datetime.fromisoformat(info["started"])
    return datetime.fromtimestamp(metrics.stat().st_mtime).astimezone()


def expand(run: RunDir, base: Mapping[str, str]) -> list[Run]:
    """One :class:`Run` per result of a run folder (per round for self-training runs; a
    round's own ``run_info.json`` stands in when the run folder has none); ``base``: its
    factors (:func:`factor_values`)."""
    study = study_metadata(run.config)
    runs = []
    for round_, path in result_files(run.path):
        factors = base if round_ is None else {**base, ROUND_KEY: str(round_)}
        info = run.info or read_info(path.parent)
        run_ = Run(path=path.parent, seed=run.config.get("seed"), factors=factors, study=study)
        run_.metrics = json.loads(path.read_text())
        validation = path.parent / VAL_METRICS_FILE  # written with the test outputs
        if round_ is None and validation.is_file():
            run_.metrics.update(json.loads(validation.read_text()))
        run_.metrics.update(tuned_metrics(path.parent))
        run_.metrics.update(read_cost(path.parent))  # {} for runs made before cost.json
        run_.versions, run_.started = info.get("versions", {}), started(info, path)
        runs.append(run_)
    return runs


def tuned_metrics(folder: Path) -> dict[str, float]:
    """The test figures of the decoders tuned on validation that ``folder`` holds
    (:data:`TUNED_FILES`), under their prefixes: ``test_tuned/...``, ``test_sebbs/...``
    (``{}`` without the files; the in-sample ``val/...`` of ``metrics_sebbs.json`` left out).
    """
    out: dict[str, float] = {}
    for name in TUNED_FILES:
        path = folder / name
        if path.is_file():
            figures = prefixed(json.loads(path.read_text()), name)
            out.update({k: v for k, v in figures.items() if k.startswith(TUNED_PREFIXES)})
    return out


def load_runs(runs_dir: Path) -> list[Run]:
    """Every result under ``runs_dir`` with its configuration (raises when there is none)."""
    folders = find_run_dirs(runs_dir)
    if not folders:
        raise FileNotFoundError(
            f"no run found under {runs_dir} (a run folder has .hydra/overrides.yaml and "
            "metrics.json, or rounds/round_K/metrics.json)"
        )
    run_dirs = [read_run_dir(path, runs_dir) for path in folders]
    values = factor_values(run_dirs, factor_keys(run_dirs))
    return [
        run for run_dir, base in zip(run_dirs, values, strict=True) for run in expand(run_dir, base)
    ]


def label(factors: Mapping[str, str]) -> str:
    """A configuration's name: its ``key=value`` pairs (``all runs`` when nothing varies)."""
    return ", ".join(f"{k}={v}" for k, v in factors.items()) or "all runs"


COMMON = "common settings"


def short_labels(
    factors: Mapping[str, Mapping[str, str]],
) -> tuple[dict[str, str], dict[str, str]]:
    """Names for the table: each configuration shows only what it changes.

    A key's most frequent value among the configurations is its common setting when no
    other value is as frequent; a configuration's short name lists its other keys
    (:data:`COMMON` when it has none). Names stay unique: two configurations with the
    same short name agree on every key. ``factors``: full label -> its factors.

    Returns ``(full label -> short name, common key -> value)``.

    Example:
        >>> names, common = short_labels({
        ...     "a=1, b=x": {"a": "1", "b": "x"},
        ...     "a=1, b=y": {"a": "1", "b": "y"},
        ...     "a=2, b=x": {"a": "2", "b": "x"},
        ... })
        >>> names["a=1, b=y"], names["a=2, b=x"], names["a=1, b=x"], common
        ('b=y', 'a=2', 'common settings', {'a': '1', 'b': 'x'})
    """
    keys = list(dict.fromkeys(k for f in factors.values() for k in f))
    common: dict[str, str] = {}
    for key in keys:
        counts = Counter(f.get(key) for f in factors.values()).most_common()
        (value, n), rest = counts[0], counts[1:]
        if value is not None and n > 1 and (not rest or rest[0][1] < n):
            common[key] = value
    names = {
        name: ", ".join(f"{k}={v}" for k, v in f.items() if common.get(k) != v) or COMMON
        for name, f in factors.items()
    }
    return names, common


def group(runs: Iterable[Run]) -> dict[str, dict[Any, Run]]:
    """``configuration label -> seed -> run``; a seed run twice keeps its latest run."""
    groups: dict[str, dict[Any, Run]] = {}
    for run in sorted(runs, key=lambda r: r.started.timestamp() if r.started else 0.0):
        seeds = groups.setdefault(label(run.factors), {})
        if run.seed in seeds:
            log.warning(
                "%s, seed %s: run twice, keeping %s", label(run.factors), run.seed, run.path
            )
        seeds[run.seed] = run
    return groups


def reference_pairs(reference: Any) -> dict[str, str]:
    """``study.reference`` (``"k=v, k2=v2"`` or a list of ``k=v``) as a mapping.

    Example:
        >>> reference_pairs("model/pooling=attention")
        {'model/pooling': 'attention'}
    """
    if reference is None:
        return {}
    items = reference if isinstance(reference, list) else str(reference).split(",")
    pairs = (str(item).strip().partition("=") for item in items if str(item).strip())
    return {strip_prefix(k.strip()): v.strip() for k, _, v in pairs}


def is_reference(factors: Mapping[str, str], reference: Mapping[str, str]) -> bool:
    """Whether a configuration is the reference (the only one when nothing varies)."""
    if not factors:
        return True
    shared = [k for k in reference if k in factors]
    return bool(shared) and all(factors[k] == reference[k] for k in shared)


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
        "weights after training (tune_postprocess or postprocess.tune): "
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sed_lightning.report",
        description="Ablation report over a study's runs: results.csv, results.md, results.png.",
    )
    parser.add_argument("study_dir", type=Path, help="experiments/<study>: results.* go here")
    parser.add_argument("--runs-dir", type=Path, help="where the runs are (default: study_dir)")
    parser.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="also log the table and plot as a W&B run of PROJECT (offline unless configured)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        table = report(args.study_dir, args.runs_dir)
    except FileNotFoundError as err:
        raise SystemExit(f"report: {err}") from None
    if args.wandb:
        from sed_lightning.training.wandb_media import log_results_table

        folder = log_results_table(
            table,
            args.wandb,
            name=f"ablation-{args.study_dir.name}",
            save_dir=args.study_dir,
            image=args.study_dir / "results.png",
        )
        print(f"W&B run: {folder}")
    print((args.study_dir / "results.md").read_text())
    print(f"written: {args.study_dir}/results.csv, results.md, results.png")


if __name__ == "__main__":
    main()
