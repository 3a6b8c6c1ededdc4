"""The evaluation files of a run, written into its output folder.

* ``metrics.json``: every test metric plus ``versions/<package>`` (:func:`package_versions`);
* ``predictions.tsv``: the test events (DESED format) and ``postprocess.yaml``, the
  settings that made them;
* ``scores/`` and ``val_scores/``: frame scores (sed_scores_eval format) of the test and
  validation sets;
* ``<set>_reference.tsv`` and ``<set>_durations.tsv`` beside them (what
  ``sed-tools tune RUN_DIR`` reads);
* ``eval_shards.json``: the clips each process scored (multi-process runs).

Only files: what is written is computed by :mod:`sed_lightning.evaluation.scoring`; the
names are those of :mod:`sed_lightning.run_files`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sed_lightning.common import plain
from sed_lightning.data.tsv import write_durations_tsv, write_strong_tsv
from sed_lightning.evaluation.scores import write_scores
from sed_lightning.run_files import (
    EVAL_SHARDS_FILE,
    METRICS_FILE,
    POSTPROCESS_FILE,
    PREDICTIONS_FILE,
    SPLIT_FILES,
)
from sed_lightning.training import run_info

log = logging.getLogger(__name__)

VERSIONED_PACKAGES = ("torch", "lightning", "sed_eval", "sed_scores_eval")


def package_versions(packages: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """``{"versions/<package>": version}`` (from ``run_info.package_versions``, Python's
    included): flat string keys, so that metrics.json stays one flat mapping."""
    return {f"versions/{k}": v for k, v in run_info.package_versions(packages).items()}


class RunOutputs:
    """Writes a run's evaluation files into ``output_dir`` (created when needed)."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)

    def _dir(self) -> Path:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        return self.output_dir

    def write_test(
        self,
        metrics: Mapping[str, float],
        estimated: pd.DataFrame,
        score_dfs: Mapping[str, pd.DataFrame],
        postprocess: Mapping[str, Any],
    ) -> None:
        """``metrics.json`` (with the package versions), ``predictions.tsv``, ``scores/``
        and ``postprocess.yaml``."""
        out = self._dir()
        self.write_metrics(METRICS_FILE, metrics)
        write_strong_tsv(estimated, out / PREDICTIONS_FILE)
        write_scores(score_dfs, out / SPLIT_FILES["test"][0])
        (out / POSTPROCESS_FILE).write_text(yaml.safe_dump(plain(postprocess)))
        log.info("test outputs written to %s (metrics.json, predictions.tsv, scores/)", out)

    def write_metrics(self, name: str, metrics: Mapping[str, float]) -> Path:
        """``name`` (e.g. ``metrics.json``): the metrics and the package versions."""
        path = self._dir() / name
        saved = {**dict(metrics), **package_versions()}
        path.write_text(json.dumps(saved, indent=2, sort_keys=True))
        return path

    def write_set(
        self,
        name: str,
        reference: pd.DataFrame,
        durations: Mapping[str, float],
        score_dfs: Mapping[str, pd.DataFrame] | None = None,
    ) -> None:
        """Split ``name``'s (``val`` | ``test``) reference, durations and, given
        ``score_dfs``, scores (:data:`~sed_lightning.run_files.SPLIT_FILES`:
        ``val_reference.tsv``, ``val_durations.tsv``, ``val_scores/``)."""
        out = self._dir()
        scores_dir, reference_file, durations_file = SPLIT_FILES[name]
        write_strong_tsv(reference, out / reference_file)
        write_durations_tsv(durations, out / durations_file)
        if score_dfs is not None:
            write_scores(score_dfs, out / scores_dir)

    def write_shards(self, scored_by_rank: Mapping[str, list[list[str]]]) -> None:
        """``eval_shards.json``: for the last validation and the test, the clips each
        process scored (to check the evaluation split)."""
        path = self._dir() / EVAL_SHARDS_FILE
        path.write_text(json.dumps(dict(scored_by_rank), indent=1))
        log.info("per-process scored clips written to %s", path)
