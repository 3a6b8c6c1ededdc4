"""Loggers that survive a resume."""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only


class _ContinuingWriter(ExperimentWriter):
    """Keeps the rows of an existing ``metrics.csv`` logged before the resumed step."""

    def __init__(self, log_dir: str) -> None:
        self._merged = False
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # the stock writer deletes metrics.csv here
        pass

    def save(self) -> None:
        if self.metrics and not self._merged:
            self._merged = True
            self._keep_rows_before(min(int(m["step"]) for m in self.metrics))
        super().save()

    def _keep_rows_before(self, step: int) -> None:
        """Drop the rows a killed run logged after the checkpoint it is resumed from."""
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") and int(float(r["step"])) < step]
        with self._fs.open(self.metrics_file_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = sorted(keys)


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger that, when the run is resumed into the same folder, continues
    ``metrics.csv`` instead of deleting it: rows logged before the resumed step are kept,
    rows a killed run logged after its last checkpoint are dropped.

    One gap remains: Lightning writes an epoch's checkpoint (at the end of validation) a
    moment before it logs that epoch's training row (``train/*_epoch``). A run
    killed in between resumes without that one row; every other row is kept.

    Args:
        resume: whether this run resumes from a checkpoint (the run's ``ckpt_path``; any
            non-empty value counts). A fresh run replaces an old ``metrics.csv`` as usual.
        **kwargs: :class:`~lightning.pytorch.loggers.CSVLogger` arguments.
    """

    def __init__(self, *args: Any, resume: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume = bool(resume)

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None and self.resume and rank_zero_only.rank == 0:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return super().experiment
