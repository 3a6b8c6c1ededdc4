"""Weights & Biases media: the resolved config, per-class F1 tables, event timelines, and a
study's results table.

:class:`WandbMedia` is added with the W&B logger (``logger=wandb``, see
``conf/logger/wandb.yaml``). It reads what :class:`~sed_lightning.training.evaluation.
SEDEvaluation` scored (no metric is computed here) and, when a ``WandbLogger`` is active,
logs:

* the resolved run config (``SEDModule`` saves no hyperparameters, so nothing else does);
* ``val/per_class_f1`` (every validation) and ``test/per_class_f1``: ``wandb.Table`` with
  the columns ``class, event_f1, segment_f1``;
* ``val/timelines`` every ``every_n_epochs`` validations: a PNG of reference vs predicted
  events of ``n_clips`` validation clips (one panel per clip, classes on the y axis), also
  written to ``<output_dir>/timelines/epoch_XXX.png`` (written even without W&B).

Offline W&B (the default, see ``preflight.configure_wandb``) keeps all of it in the run's
``wandb/offline-run-*`` folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
from lightning.pytorch.loggers import WandbLogger

from sed_lightning.evaluation.scoring import StageResult
from sed_lightning.training.evaluation import SEDEvaluation

log = logging.getLogger(__name__)

TABLE_COLUMNS = ["class", "event_f1", "segment_f1"]


def wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
    """The trainer's W&B logger, if it has one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)


def stage_result(trainer: L.Trainer, stage: str) -> StageResult | None:
    """What the run's :class:`SEDEvaluation` scored last for ``stage`` (``val``/``test``)."""
    for callback in trainer.callbacks:
        if isinstance(callback, SEDEvaluation):
            return callback.last_results.get(stage)
    return None


def per_class_rows(result: StageResult) -> list[list[Any]]:
    """``[class, event F1, segment F1]`` rows of a scored stage."""
    return [[c, f1["event"], f1["segment"]] for c, f1 in result.per_class.items()]


def timeline_clips(result: StageResult, n_clips: int) -> list[str]:
    """The first ``n_clips`` clips (by name) with reference events, then any others."""
    with_events = set(result.reference["filename"])
    files = sorted(result.durations)
    return sorted(files, key=lambda f: f not in with_events)[:n_clips]


def draw_events(
    ax: Any, table: pd.DataFrame, clip: str, rows: dict[str, int], shift: float, color: str
) -> None:
    """Bars for the events of ``clip`` in ``table``, on each class's row moved by ``shift``."""
    events = table[table["filename"] == clip]
    for onset, offset, label in zip(
        events["onset"], events["offset"], events["event_label"], strict=True
    ):
        ax.broken_barh([(onset, offset - onset)], (rows[label] + shift - 0.17, 0.34), color=color)


def timeline_figure(
    result: StageResult, classes: Sequence[str], clips: Sequence[str], title: str = ""
) -> Any:
    """One panel per clip: reference (upper, green) and predicted (lower, orange) event bars,
    one row per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = 0.35 * len(classes) * len(clips) + 1.0
    fig, axes = plt.subplots(len(clips), 1, figsize=(9.0, height), squeeze=False)
    rows = {c: i for i, c in enumerate(classes)}
    for ax, clip in zip(axes[:, 0], clips, strict=True):
        draw_events(ax, result.reference, clip, rows, 0.2, "tab:green")
        draw_events(ax, result.estimated, clip, rows, -0.2, "tab:orange")
        ax.set_xlim(0, result.durations[clip])
        ax.set_ylim(-0.6, len(classes) - 0.4)
        ax.set_yticks(range(len(classes)), classes, fontsize="small")
        ax.set_title(clip, fontsize="small")
    axes[-1, 0].set_xlabel("time (s)   green: reference, orange: predicted")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_timelines(
    result: StageResult, classes: Sequence[str], n_clips: int, path: Path, title: str = ""
) -> Path:
    """Draw :func:`timeline_figure` for the first clips and save it as a PNG."""
    import matplotlib.pyplot as plt

    fig = timeline_figure(result, classes, timeline_clips(result, n_clips), title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


class WandbMedia(L.Callback):
    """Logs the config, per-class F1 tables and event timelines to W&B (see module doc).

    Args:
        output_dir: the run dir (``timelines/`` goes there; ``None``: a temporary PNG only
            when W&B is active).
        n_clips: validation clips drawn in each timeline.
        every_n_epochs: draw the timelines every this many validations.
    """

    def __init__(
        self, output_dir: str | None = None, n_clips: int = 4, every_n_epochs: int = 1
    ) -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self.n_clips = n_clips
        self.every_n_epochs = max(1, every_n_epochs)
        self.config_logged = False
        self.validations = 0

    def _log_config(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        logger = wandb_logger(trainer)
        config = getattr(module, "run_config", None)
        if logger is None or self.config_logged or not config or not trainer.is_global_zero:
            return
        logger.log_hyperparams(config)
        self.config_logged = True

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._log_config(trainer, module)

    def on_test_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._log_config(trainer, module)

    def _log_table(self, trainer: L.Trainer, stage: str) -> StageResult | None:
        result = stage_result(trainer, stage)
        logger = wandb_logger(trainer)
        if result is None or not result.per_class or not trainer.is_global_zero:
            return None
        if logger is not None:
            logger.log_table(
                f"{stage}/per_class_f1",
                columns=TABLE_COLUMNS,
                data=per_class_rows(result),
                step=trainer.global_step,
            )
        return result

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        result = self._log_table(trainer, "val")
        if result is None:
            return
        self.validations += 1
        if (self.validations - 1) % self.every_n_epochs == 0:
            self._log_timelines(trainer, result)

    def on_test_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._log_table(trainer, "test")

    def _log_timelines(self, trainer: L.Trainer, result: StageResult) -> None:
        logger = wandb_logger(trainer)
        if self.output_dir is None and logger is None:
            return
        folder = self.output_dir or Path(logger.experiment.dir)
        name = f"epoch_{trainer.current_epoch:03d}.png"
        classes = list(trainer.datamodule.encoder.class_names)
        title = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        path = save_timelines(result, classes, self.n_clips, folder / "timelines" / name, title)
        if logger is not None:
            logger.log_image(
                "val/timelines", [str(path)], step=trainer.global_step, caption=[title]
            )


def log_results_table(
    df: pd.DataFrame,
    project: str,
    name: str | None = None,
    save_dir: str | Path | None = None,
    image: str | Path | None = None,
    key: str = "results",
    mode: str | None = None,
) -> Path:
    """Log a study's results table (and its plot) as a W&B run of its own; returns the run's
    folder.

    ``mode`` (``online``/``offline``) defaults to ``WANDB_MODE`` if set, else online only when
    an API key is configured (``WANDB_API_KEY`` or netrc), else offline: no login prompt and
    no network needed (upload later with ``wandb sync``). The run folder goes under
    ``save_dir/wandb`` (default: the current directory).
    """
    import wandb

    from sed_lightning.training.preflight import _wandb_credentials

    mode = mode or os.environ.get("WANDB_MODE") or ("online" if _wandb_credentials() else "offline")
    save_dir = Path(save_dir or ".")
    save_dir.mkdir(parents=True, exist_ok=True)
    alone = wandb.run is None  # no other run of this process to keep alive
    run = wandb.init(project=project, name=name, dir=str(save_dir), mode=mode, job_type="report")
    try:
        run.log({key: wandb.Table(dataframe=df.reset_index(drop=True))})
        if image is not None:
            run.log({f"{key}_plot": wandb.Image(str(image))})
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
        if alone:  # stop W&B's service: child processes must not inherit its WANDB_SERVICE
            wandb.teardown()
    log.info("results table logged to W&B (%s): %s", mode, run_dir)
    return run_dir
