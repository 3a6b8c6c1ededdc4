"""The runs of an ablation study, read from their folders and grouped into configurations:
what the report (:mod:`sed_lightning.evaluation.report`, ``sed-tools report``) tabulates.

:func:`load_runs` finds every run under a folder (a run dir holds ``.hydra/overrides.yaml``
and ``metrics.json``; a self-training run holds ``rounds/round_K/metrics.json`` instead and
counts as one run per round, ``rounds=K``), reads how each was made (``.hydra/``,
``run_info.json``) and what it scored: ``metrics.json``, ``metrics_val.json``, the test
figures of decoders tuned on validation (:data:`TUNED_FILES`, under
:data:`TUNED_PREFIXES`) and ``cost.json``.

Swept overrides are the keys of ``hydra.sweeper.params``, the command-line sweeps of the
multirun (``multirun.yaml``) and the keys listed in ``study.factors`` (:func:`factor_keys`);
the runs are grouped into configurations by them, without the seed (:func:`group`). The
reference configuration is ``study.reference`` (comma-separated ``key=value``,
:func:`reference_pairs`, :func:`is_reference`).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from sed_lightning.run_files import METHOD_FILES, METRICS_FILE, RUN_INFO, VAL_METRICS_FILE
from sed_lightning.training.cost import read_cost
from sed_lightning.training.tuning import prefixed, tuned_prefix

log = logging.getLogger(__name__)

#: Written after training by ``sed-tools tune`` (or ``postprocess.tune``): test figures of
#: the decoder tuned on validation (median window + threshold per class; cSEBBs).
TUNED_FILES = tuple(metrics for _, metrics in METHOD_FILES.values())
#: The prefixes of their test figures in a run's metrics (and the table): ``test_tuned/``,
#: ``test_sebbs/`` (:func:`sed_lightning.training.tuning.tuned_prefix`).
TUNED_PREFIXES = tuple(tuned_prefix(name, "test") for name in TUNED_FILES)
ROUND_KEY = "rounds"


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
