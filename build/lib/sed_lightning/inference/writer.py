"""Prediction writer: each file's events (and frame scores, and a plot, when asked) are
written as soon as its batch is done, so a stopped run loses at most one batch."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
from lightning.pytorch.callbacks import BasePredictionWriter
from sed_scores_eval.base_modules.scores import create_score_dataframe
from tqdm import tqdm

from sed_lightning.inference import journal
from sed_lightning.inference.module import FileResult
from sed_lightning.inference.predictor import Predictor

log = logging.getLogger(__name__)


class ArchiveWriter(BasePredictionWriter):
    """Append each finished file to this process's journal
    (:mod:`sed_lightning.inference.journal`); write its frame scores to
    ``scores_dir/<name>.tsv`` (sed_scores_eval format) and, for the first ``plot_max``
    files, a picture to ``plot_dir/<name>.png``. Shows files/s and the real-time factor.

    Args:
        predictor: decodes events (its post-processor) and draws plots (its front end).
        folder: the journal folder.
        n_files: files this run scores (all processes together), for the progress bar.
        scores_dir: where frame scores go, or ``None``.
        plot_dir: where plots go, or ``None``.
        plot_max: plots per process at most.
    """

    def __init__(
        self,
        predictor: Predictor,
        folder: Path,
        n_files: int,
        scores_dir: str | Path | None = None,
        plot_dir: str | Path | None = None,
        plot_max: int = 20,
    ) -> None:
        super().__init__(write_interval="batch")
        self.predictor = predictor
        self.folder = Path(folder)
        self.n_files = n_files
        self.scores_dir = Path(scores_dir) if scores_dir else None
        self.plot_dir = Path(plot_dir) if plot_dir else None
        self.plot_max = plot_max
        self.plotted = 0
        self.failed = 0
        self.audio_seconds = 0.0
        self.done = 0
        self.started = 0.0
        self.handle = None
        self.bar = None

    def on_predict_start(self, trainer, pl_module) -> None:
        self.handle = (self.folder / f"rank{trainer.global_rank}.jsonl").open("a")
        self.started = time.perf_counter()
        share = -(-self.n_files // trainer.world_size)
        self.bar = tqdm(
            total=share,
            unit="file",
            desc=f"predict (rank {trainer.global_rank})" if trainer.world_size > 1 else "predict",
            disable=trainer.global_rank != 0,
            dynamic_ncols=True,
        )

    def write_on_batch_end(
        self,
        trainer,
        pl_module,
        prediction: list[FileResult],
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        lines = [self._finish(result) for result in prediction]
        self.handle.write("".join(lines))
        self.handle.flush()
        os.fsync(self.handle.fileno())  # on disk before the next batch starts
        self.done += len(prediction)
        seconds = max(time.perf_counter() - self.started, 1e-9)
        self.bar.update(len(prediction))
        self.bar.set_postfix(
            files_per_s=f"{self.done / seconds:.1f}",
            rtf=f"{self.audio_seconds / seconds:.0f}x",
            failed=self.failed,
        )

    def _finish(self, result: FileResult) -> str:
        name = result.file.name
        if result.error is not None:
            self.failed += 1
            log.warning("failed: %s: %s", name, result.error)
            return journal.record(result.file, None, 0.0, result.error)
        self.audio_seconds += result.duration
        events = self.predictor.postprocessor.decode(result.scores, name, result.duration)
        if self.scores_dir is not None:
            self._write_scores(name, result)
        if self.plot_dir is not None and self.plotted < self.plot_max:
            from sed_lightning.inference.plot import plot_file  # matplotlib only when asked

            plot_file(
                self.predictor,
                result.file.path,
                result.scores,
                events,
                self.plot_dir / f"{name}.png",
            )
            self.plotted += 1
        return journal.record(result.file, events, result.duration, None)

    def _write_scores(self, name: str, result: FileResult) -> None:
        hop = self.predictor.encoder.frame_hop
        n = len(result.scores)
        timestamps = [min(k * hop, result.duration) if k == n else k * hop for k in range(n + 1)]
        frame = create_score_dataframe(
            result.scores, timestamps, self.predictor.encoder.class_names
        )
        path = self.scores_dir / (name.rsplit(".", 1)[0] + ".tsv")
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, sep="\t", index=False)

    def on_predict_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.handle is not None:
            self.handle.close()
        seconds = time.perf_counter() - self.started
        log.info(
            "rank %d: %d file(s) in %.1f s (%.2f files/s, %.0fx real time), %d failed",
            trainer.global_rank,
            self.done,
            seconds,
            self.done / max(seconds, 1e-9),
            self.audio_seconds / max(seconds, 1e-9),
            self.failed,
        )


def write_outputs(out: Path, events: pd.DataFrame, failed: list[tuple[str, str]]) -> Path:
    """The events TSV (replaced atomically) and ``failed.tsv`` beside it (removed when no
    file failed). Returns the ``failed.tsv`` path."""
    from sed_lightning.data.tsv import write_strong_tsv

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    write_strong_tsv(events, tmp)
    os.replace(tmp, out)
    failed_path = out.parent / "failed.tsv"
    if failed:
        table = pd.DataFrame(failed, columns=["filename", "reason"])
        table.to_csv(failed_path, sep="\t", index=False)
    elif failed_path.is_file():
        failed_path.unlink()
    return failed_path
