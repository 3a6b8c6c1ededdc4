"""Loggers that survive a resume."""

from __future__ import annotations

import csv
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_only


class _ContinuingWriter(ExperimentWriter):
    """Keeps the rows of an existing ``metrics.csv`` logged before the resumed step."""

    def __init__(self, log_dir: str, restored_rows: list[dict[str, Any]]) -> None:
        self._merged = False
        self.restored_rows = restored_rows
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # the stock writer deletes metrics.csv here
        pass

    def save(self) -> None:
        if self.metrics and not self._merged:
            self._merged = True
            first_new = min(int(m["step"]) for m in self.metrics)
            kept = self._keep_rows_before(first_new)
            # rows the checkpoint carries that the killed run never wrote (EpochRowKeeper)
            self.metrics[:0] = [
                dict(row)
                for row in self.restored_rows
                if int(row["step"]) < first_new and not any(_holds(k, row) for k in kept)
            ]
        super().save()

    def _keep_rows_before(self, step: int) -> list[dict[str, str]]:
        """Drop the rows a killed run logged after the checkpoint it is resumed from;
        returns the rows kept."""
        if not self._fs.isfile(self.metrics_file_path):
            return []
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") and int(float(r["step"])) < step]
        with self._fs.open(self.metrics_file_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = sorted(keys)
        return rows


def _holds(written: dict[str, str], row: dict[str, Any]) -> bool:
    """Whether a row read back from metrics.csv already has ``row``'s step and values."""
    return int(float(written["step"])) == int(row["step"]) and all(
        written.get(key) not in (None, "") for key in row
    )


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger that, when the run is resumed into the same folder, continues
    ``metrics.csv`` instead of deleting it: rows logged before the resumed step are kept,
    rows a killed run logged after its last checkpoint are dropped.

    Lightning writes an epoch's checkpoint a moment before it logs that epoch's training
    row (``train/*_epoch``); :class:`EpochRowKeeper` puts that row in the checkpoint, so a
    run killed in between still gets it back (``conf/logger/csv.yaml`` adds both).

    Args:
        resume: whether this run resumes from a checkpoint (the run's ``ckpt_path``; any
            non-empty value counts). A fresh run replaces an old ``metrics.csv`` as usual.
        **kwargs: :class:`~lightning.pytorch.loggers.CSVLogger` arguments.
    """

    def __init__(self, *args: Any, resume: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume = bool(resume)
        self.restored_rows: list[dict[str, Any]] = []

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None and self.resume and rank_zero_only.rank == 0:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self.restored_rows)
        return super().experiment


class EpochRowKeeper(L.Callback):
    """Carries an epoch's training row in the checkpoint written just before it is logged.

    Lightning saves the epoch-end checkpoint (in ``on_train_epoch_end`` or at the end of
    validation) before it logs the epoch's aggregated training metrics. This callback
    computes that row when the checkpoint is written and stores it; on resume it hands it
    to :class:`ResumableCSVLogger`, which writes it if the killed run had not. Mid-epoch
    checkpoints carry no row (the resumed run logs the epoch's row itself).

    The aggregation reads Lightning's training result collection
    (``fit_loop.epoch_loop._results``), a private attribute: Lightning has no public way to
    get an epoch's training aggregates before it logs them.
    """

    def __init__(self) -> None:
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        return {"row": self._pending_row()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        row = state_dict.get("row")
        if row and self._trainer is not None:
            for logger in self._trainer.loggers:
                if isinstance(logger, ResumableCSVLogger):
                    logger.restored_rows.append(dict(row))

    def _pending_row(self) -> dict[str, Any] | None:
        trainer = self._trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return None
        loop = trainer.fit_loop.epoch_loop
        if not loop._num_ready_batches_reached():
            return None  # mid-epoch
        # Computing now caches the values Lightning logs a moment later (same numbers).
        logged = loop._results.metrics(on_step=False)["log"]
        if not logged:
            return None  # already logged and reset
        # the row as Lightning's logger connector writes it (log_metrics, step=None)
        row = {k: float(v) for k, v in logged.items()}
        row["epoch"] = trainer.current_epoch
        # Lightning counts the epoch's last batch after validation and logs this row one
        # step back: at validation end the count is already the row's step.
        row["step"] = loop._batches_that_stepped - (0 if trainer.validating else 1)
        return row
