"""Callback scoring validation/test predictions, gathered across processes.

The scoring itself is :func:`sed_lightning.evaluation.scoring.score_set` (pure); the files
are written by :class:`sed_lightning.training.outputs.RunOutputs`. What is here: gathering
every process's predictions (each clip once), checking the shards, the references of a set,
and :func:`save_val_scores`, the step of ``train`` that scores the validation set with the
tested weights.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from sed_lightning.data.datasets import SEDDataset
from sed_lightning.data.tsv import STRONG_COLUMNS
from sed_lightning.evaluation.scoring import StageResult, score_set
from sed_lightning.postprocessing import PostProcessor, decoder_settings
from sed_lightning.run_files import VAL_METRICS_FILE
from sed_lightning.training.module import SEDModule, StagePredictions
from sed_lightning.training.outputs import RunOutputs

log = logging.getLogger(__name__)


def gather_predictions(predictions: StagePredictions) -> tuple[StagePredictions, list[list[str]]]:
    """Merge every rank's predictions by filename (a clip scored twice counts once).

    Also returns the clips each rank scored (``[rank] -> filenames``, in order).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return predictions, [list(predictions.frames)]
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (predictions.frames, predictions.clips))
    merged = StagePredictions()
    for frames, clips in parts:
        merged.frames.update(frames)
        merged.clips.update(clips)
    return merged, [list(frames) for frames, _ in parts]


def reference_table(dataset: SEDDataset, files: list[str] | None = None) -> pd.DataFrame:
    """Strong reference of ``dataset`` (restricted to ``files``); clips without events are
    listed in ``attrs["empty_files"]`` (written as empty rows by ``write_strong_tsv``)."""
    table = pd.DataFrame(dataset.reference_events(), columns=list(STRONG_COLUMNS))
    files = list(dataset.filenames) if files is None else files
    table = table[table["filename"].isin(files)].reset_index(drop=True)
    table.attrs["empty_files"] = sorted(set(files) - set(table["filename"]))
    return table


def clip_durations(dataset: SEDDataset, files: list[str]) -> dict[str, float]:
    """Each clip's duration (the clip length where the set lists none)."""
    clip_seconds = dataset.clip_samples / dataset.sample_rate
    return {f: (dataset.durations or {}).get(f, clip_seconds) for f in files}


def predict_set(trainer: L.Trainer, module: SEDModule, loader: Any) -> StagePredictions:
    """Frame/clip probabilities of ``module`` as it is now (eval mode, on the trainer's
    device, in its precision) for every batch of ``loader``; the module's device and mode
    are restored afterwards (Lightning moves it to the CPU when ``test`` ends)."""
    device, training = module.device, module.training
    module.to(trainer.strategy.root_device).eval()
    preds = StagePredictions()
    try:
        with torch.inference_mode(), trainer.precision_plugin.val_step_context():
            for batch in loader:
                batch = trainer.strategy.batch_to_device(batch)
                preds.add(batch.filenames, module(batch.audio))
    finally:
        module.to(device).train(training)
    return preds


def scored_files(
    trainer: L.Trainer, stage: str, dataset: SEDDataset, preds: StagePredictions
) -> list[str]:
    """The clips to score: all of them, or the predicted ones when batches are limited."""
    missing = sorted(set(dataset.filenames) - set(preds.frames))
    limit = getattr(trainer, f"limit_{stage}_batches", 1.0)
    if missing and not (trainer.fast_dev_run or limit != 1.0):
        raise RuntimeError(
            f"{stage}: {len(missing)} of {len(dataset)} clips got no prediction, e.g. {missing[:3]}"
        )
    return [f for f in dataset.filenames if f in preds.frames]


def warn_repeated(stage: str, by_rank: list[list[str]]) -> None:
    """Warn when ranks scored the same clips (e.g. a padding sampler)."""
    counts = Counter(f for files in by_rank for f in files)
    repeated = sorted(f for f, n in counts.items() if n > 1)
    if repeated:
        log.warning(
            "%s: %d clip(s) were scored by more than one process (counted once), e.g. "
            "%s: shard the evaluation loaders without padding (EvalShardSampler)",
            stage,
            len(repeated),
            repeated[:3],
        )


class SEDEvaluation(L.Callback):
    """Scores the collected frame probabilities of every validation and test epoch.

    Validation logs ``val/event_f1``, ``val/segment_f1``, ``val/clip_map`` (and PSDS when
    ``val_psds``); test logs every metric under ``test/`` and, on rank 0, writes into
    ``output_dir`` (:class:`~sed_lightning.training.outputs.RunOutputs`): ``metrics.json``,
    ``predictions.tsv``, ``postprocess.yaml``, ``scores/``, ``test_reference.tsv``,
    ``test_durations.tsv`` and, with several processes, ``eval_shards.json``.

    With ``save_val_scores``, ``train`` then scores the validation set with the tested
    weights (:func:`save_val_scores`): ``val_scores/``, ``val_reference.tsv`` and
    ``val_durations.tsv``, so that post-processing can be tuned on validation only
    (``sed-tools tune RUN_DIR``).

    Args:
        postprocess: :class:`PostProcessor` settings (``median_window``, ``threshold``,
            ``min_duration``, each a number or a per-class mapping); a ``tune`` key (the
            run's ``postprocess`` node) is ignored: ``train`` tunes after the test.
        output_dir: where test outputs go (``None``: nothing written).
        val_psds: also compute PSDS on validation (slower).
        save_val_scores: write the validation scores of the tested weights (skipped with
            ``fast_dev_run``).
        dcase2016: add the DCASE 2016 Task 2 figures (``dcase2016/onset_f1``,
            ``dcase2016/onset_er``, ``dcase2016/segment_er``, ``dcase2016/segment_f1``; see
            :func:`~sed_lightning.evaluation.metrics.dcase2016_metrics`) wherever PSDS is
            computed (test, and validation with ``val_psds``).
    """

    def __init__(
        self,
        postprocess: Mapping[str, Any],
        output_dir: str | None = None,
        val_psds: bool = False,
        save_val_scores: bool = True,
        dcase2016: bool = True,
    ) -> None:
        self.postprocess = decoder_settings(postprocess)
        self.outputs = RunOutputs(output_dir) if output_dir else None
        self.val_psds = val_psds
        self.save_val_scores = save_val_scores
        self.dcase2016 = dcase2016
        self.last_test_metrics: dict[str, float] = {}
        self.last_results: dict[str, StageResult] = {}
        # stage -> the clips each rank scored in the last epoch of that stage
        self.scored_by_rank: dict[str, list[list[str]]] = {}

    @property
    def output_dir(self) -> Path | None:
        return None if self.outputs is None else self.outputs.output_dir

    def postprocessor(self, trainer: L.Trainer) -> PostProcessor:
        encoder = trainer.datamodule.encoder
        return PostProcessor(encoder.class_names, encoder.frame_hop, **self.postprocess)

    def _score(
        self, trainer: L.Trainer, module: SEDModule, stage: str, dataset: SEDDataset, full: bool
    ) -> StageResult:
        preds, by_rank = gather_predictions(module.predictions[stage])
        self.scored_by_rank[stage] = by_rank
        if len(by_rank) > 1 and trainer.is_global_zero:
            warn_repeated(stage, by_rank)
        files = scored_files(trainer, stage, dataset, preds)
        result = self.score_files(trainer, stage, dataset, preds, files, full)
        self.last_results[stage] = result
        return result

    def score_files(
        self,
        trainer: L.Trainer,
        stage: str,
        dataset: SEDDataset,
        preds: StagePredictions,
        files: list[str],
        full: bool,
    ) -> StageResult:
        """Score the predictions of ``files`` of ``dataset`` (metrics prefixed ``stage/``)."""
        targets = np.stack([dataset.encoder.encode_weak(dataset.clip_labels(f)) for f in files])
        return score_set(
            {f: preds.frames[f] for f in files},
            preds.clips,
            reference_table(dataset, files),
            targets,
            clip_durations(dataset, files),
            self.postprocessor(trainer),
            stage,
            full=full,
            dcase2016=self.dcase2016,
        )

    def on_validation_epoch_end(self, trainer: L.Trainer, module: SEDModule) -> None:
        if trainer.sanity_checking:
            return
        dataset = trainer.datamodule.dataset(trainer.datamodule.val_set)
        metrics = dict(self._score(trainer, module, "val", dataset, full=self.val_psds).metrics)
        module.log("val/event_f1", metrics.pop("val/event_f1"), prog_bar=True)
        module.log_dict(metrics)

    def on_test_epoch_end(self, trainer: L.Trainer, module: SEDModule) -> None:
        dataset = trainer.datamodule.dataset(trainer.datamodule.test_set)
        result = self._score(trainer, module, "test", dataset, full=True)
        module.log_dict(result.metrics)
        self.last_test_metrics = result.metrics
        if self.outputs is None or not trainer.is_global_zero:
            return
        self.outputs.write_test(
            result.metrics, result.estimated, result.score_dfs, self.postprocess
        )
        self.outputs.write_set("test", result.reference, result.durations)
        if trainer.world_size > 1:
            self.outputs.write_shards(self.scored_by_rank)


def save_val_scores(trainer: L.Trainer, module: SEDModule) -> Path | None:
    """Score the validation set with ``module``'s weights (after ``trainer.test``: the tested
    ones) and write ``val_scores/``, ``val_reference.tsv``, ``val_durations.tsv`` and
    ``metrics_val.json`` (every test figure, on validation: ``val/...``) where
    the run's :class:`SEDEvaluation` writes (every process scores its share, rank 0
    writes). Nothing without that callback, its ``output_dir`` or ``save_val_scores``, or
    with ``fast_dev_run``. Returns the folder written to (rank 0), else ``None``."""
    evaluation = next((c for c in trainer.callbacks if isinstance(c, SEDEvaluation)), None)
    if evaluation is None or evaluation.outputs is None or not evaluation.save_val_scores:
        return None
    if trainer.fast_dev_run:
        log.info("fast_dev_run: validation scores of the tested weights not written")
        return None
    datamodule = trainer.datamodule
    dataset = datamodule.dataset(datamodule.val_set)
    preds, _ = gather_predictions(predict_set(trainer, module, datamodule.val_dataloader()))
    if not trainer.is_global_zero:
        return None
    files = [f for f in dataset.filenames if f in preds.frames]
    # every figure of the test (PSDS, DCASE 2016 too) on validation: the column that
    # chooses defaults (the report's validation column)
    result = evaluation.score_files(trainer, "val", dataset, preds, files, full=True)
    evaluation.outputs.write_set("val", result.reference, result.durations, result.score_dfs)
    evaluation.outputs.write_metrics(VAL_METRICS_FILE, result.metrics)
    log.info(
        "validation scores and metrics of the tested weights written to %s "
        "(val_scores/, metrics_val.json)",
        evaluation.output_dir,
    )
    return evaluation.output_dir
