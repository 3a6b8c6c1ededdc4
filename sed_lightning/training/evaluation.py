"""Callback scoring validation/test predictions and writing the test outputs of a run."""

from __future__ import annotations

import json
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
from sed_lightning.data.tsv import STRONG_COLUMNS, write_strong_tsv
from sed_lightning.evaluation.metrics import clip_map, compute_all, sed_eval_metrics
from sed_lightning.evaluation.scores import scores_to_dataframes, write_scores
from sed_lightning.postprocessing import PostProcessor
from sed_lightning.training.module import SEDModule, StagePredictions

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


def reference_table(dataset: SEDDataset) -> pd.DataFrame:
    return pd.DataFrame(dataset.reference_events(), columns=list(STRONG_COLUMNS))


class SEDEvaluation(L.Callback):
    """Post-processes collected frame probabilities and computes the SED metrics.

    Validation logs ``val/event_f1``, ``val/segment_f1``, ``val/clip_map`` (and PSDS when
    ``val_psds``); test logs every metric under ``test/`` and writes into ``output_dir``:
    ``metrics.json``, ``predictions.tsv`` (DESED format) and ``scores/`` (frame scores in
    sed_scores_eval format).

    Args:
        postprocess: :class:`PostProcessor` settings (``median_window``, ``threshold``,
            ``min_duration``, each a number or a per-class mapping).
        output_dir: where test outputs go (``None``: nothing written).
        val_psds: also compute PSDS on validation (slower).
    """

    def __init__(
        self, postprocess: Mapping[str, Any], output_dir: str | None = None, val_psds: bool = False
    ) -> None:
        self.postprocess = dict(postprocess)
        self.output_dir = Path(output_dir) if output_dir else None
        self.val_psds = val_psds
        self.last_test_metrics: dict[str, float] = {}
        # stage -> the clips each rank scored in the last epoch of that stage
        self.scored_by_rank: dict[str, list[list[str]]] = {}

    def postprocessor(self, trainer: L.Trainer) -> PostProcessor:
        encoder = trainer.datamodule.encoder
        return PostProcessor(encoder.class_names, encoder.frame_hop, **self.postprocess)

    def _score(
        self, trainer: L.Trainer, module: SEDModule, stage: str, dataset: SEDDataset, full: bool
    ) -> tuple[dict[str, float], pd.DataFrame, dict[str, pd.DataFrame]]:
        preds, by_rank = gather_predictions(module.predictions[stage])
        self._record_shards(trainer, stage, by_rank)
        files = self._scored_files(trainer, stage, dataset, preds)
        frames = {f: preds.frames[f] for f in files}
        clip_seconds = dataset.clip_samples / dataset.sample_rate
        durations = {f: (dataset.durations or {}).get(f, clip_seconds) for f in files}
        estimated = self.postprocessor(trainer)(frames, durations)
        reference = reference_table(dataset)
        reference = reference[reference["filename"].isin(files)]
        encoder = dataset.encoder
        clip_scores = torch.tensor(np.stack([preds.clips[f] for f in files]))
        clip_targets = torch.tensor(
            np.stack([encoder.encode_weak(dataset.clip_labels(f)) for f in files])
        )
        score_dfs = scores_to_dataframes(frames, encoder.frame_hop, encoder.class_names)
        if not full:
            f1 = sed_eval_metrics(reference, estimated, encoder.class_names, filenames=files)
            metrics = {
                f"{stage}/event_f1": f1["event_f1"],
                f"{stage}/segment_f1": f1["segment_f1"],
                f"{stage}/clip_map": clip_map(clip_scores, clip_targets.long()),
            }
            return metrics, estimated, score_dfs
        metrics = compute_all(
            reference,
            estimated,
            score_dfs,
            durations,
            encoder.class_names,
            clip_scores,
            clip_targets.long(),
            prefix=f"{stage}/",
            filenames=files,
            drop_classes_without_events=True,
        )
        return metrics, estimated, score_dfs

    def _record_shards(self, trainer: L.Trainer, stage: str, by_rank: list[list[str]]) -> None:
        """Keep which rank scored which clips; warn when ranks overlap (e.g. padding)."""
        self.scored_by_rank[stage] = by_rank
        if len(by_rank) > 1 and trainer.is_global_zero:
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

    @staticmethod
    def _scored_files(
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

    def on_validation_epoch_end(self, trainer: L.Trainer, module: SEDModule) -> None:
        if trainer.sanity_checking:
            return
        dataset = trainer.datamodule.dataset(trainer.datamodule.val_set)
        metrics, _, _ = self._score(trainer, module, "val", dataset, full=self.val_psds)
        headline = metrics.pop("val/event_f1")
        module.log("val/event_f1", headline, prog_bar=True)
        module.log_dict(metrics)

    def on_test_epoch_end(self, trainer: L.Trainer, module: SEDModule) -> None:
        dataset = trainer.datamodule.dataset(trainer.datamodule.test_set)
        metrics, estimated, score_dfs = self._score(trainer, module, "test", dataset, full=True)
        module.log_dict(metrics)
        self.last_test_metrics = metrics
        if self.output_dir is not None and trainer.is_global_zero:
            self.write_outputs(metrics, estimated, score_dfs)
            if trainer.world_size > 1:
                self.write_shards()

    def write_outputs(
        self,
        metrics: Mapping[str, float],
        estimated: pd.DataFrame,
        score_dfs: Mapping[str, pd.DataFrame],
    ) -> None:
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(dict(metrics), indent=2, sort_keys=True))
        write_strong_tsv(estimated, out / "predictions.tsv")
        write_scores(score_dfs, out / "scores")
        log.info("test outputs written to %s (metrics.json, predictions.tsv, scores/)", out)

    def write_shards(self) -> None:
        """``eval_shards.json``: for the last validation and the test, the clips each
        process scored (written by multi-process runs, to check the evaluation split)."""
        path = self.output_dir / "eval_shards.json"
        path.write_text(json.dumps(self.scored_by_rank, indent=1))
        log.info("per-process scored clips written to %s", path)
