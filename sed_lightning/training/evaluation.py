"""Callback scoring validation/test predictions and writing the test outputs of a run."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import yaml

from sed_lightning.data.datasets import SEDDataset
from sed_lightning.data.tsv import STRONG_COLUMNS, write_durations_tsv, write_strong_tsv
from sed_lightning.evaluation.metrics import clip_map, compute_all, sed_eval_metrics
from sed_lightning.evaluation.scores import scores_to_dataframes, write_scores
from sed_lightning.postprocessing import PostProcessor
from sed_lightning.training import run_info
from sed_lightning.training.module import SEDModule, StagePredictions

log = logging.getLogger(__name__)

VERSIONED_PACKAGES = ("torch", "lightning", "sed_eval", "sed_scores_eval")


def package_versions(packages: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """``{"versions/<package>": version}`` (from ``run_info.package_versions``, Python's
    included): flat string keys, so that metrics.json stays one flat mapping."""
    return {f"versions/{k}": v for k, v in run_info.package_versions(packages).items()}


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


def predict_set(trainer: L.Trainer, module: SEDModule, loader: Any) -> StagePredictions:
    """Frame/clip probabilities of ``module`` as it is now (eval mode, the trainer's device
    and precision) for every batch of ``loader``."""
    preds = StagePredictions()
    with torch.inference_mode(), trainer.precision_plugin.val_step_context():
        for batch in loader:
            batch = trainer.strategy.batch_to_device(batch)
            preds.add(batch.filenames, module(batch.audio))
    return preds


@dataclass
class StageResult:
    """What one validation/test epoch was scored on and what it scored (for other callbacks,
    e.g. :class:`~sed_lightning.training.wandb_media.WandbMedia`)."""

    metrics: dict[str, float]
    estimated: pd.DataFrame
    reference: pd.DataFrame
    score_dfs: dict[str, pd.DataFrame]
    durations: dict[str, float]
    # class -> {"event": F1, "segment": F1}
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)


class SEDEvaluation(L.Callback):
    """Post-processes collected frame probabilities and computes the SED metrics.

    Validation logs ``val/event_f1``, ``val/segment_f1``, ``val/clip_map`` (and PSDS when
    ``val_psds``); test logs every metric under ``test/`` and writes into ``output_dir``:
    ``metrics.json`` (with the versions of the evaluation packages), ``predictions.tsv``
    (DESED format), ``scores/`` (frame scores in sed_scores_eval format),
    ``test_reference.tsv``, ``test_durations.tsv`` and ``postprocess.yaml`` (the settings
    that made ``predictions.tsv``).

    With ``save_val_scores`` the tested weights also score the validation set right after
    the test (no extra ``trainer.validate``): ``val_scores/``, ``val_reference.tsv`` and
    ``val_durations.tsv``, so that post-processing can be tuned on validation only
    (``python -m sed_lightning.tune_postprocess RUN_DIR``).

    Args:
        postprocess: :class:`PostProcessor` settings (``median_window``, ``threshold``,
            ``min_duration``, each a number or a per-class mapping).
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
        self.postprocess = dict(postprocess)
        self.output_dir = Path(output_dir) if output_dir else None
        self.val_psds = val_psds
        self.save_val_scores = save_val_scores
        self.dcase2016 = dcase2016
        self.last_test_metrics: dict[str, float] = {}
        self.last_results: dict[str, StageResult] = {}
        # stage -> the clips each rank scored in the last epoch of that stage
        self.scored_by_rank: dict[str, list[list[str]]] = {}

    def postprocessor(self, trainer: L.Trainer) -> PostProcessor:
        encoder = trainer.datamodule.encoder
        return PostProcessor(encoder.class_names, encoder.frame_hop, **self.postprocess)

    @staticmethod
    def _durations(dataset: SEDDataset, files: list[str]) -> dict[str, float]:
        clip_seconds = dataset.clip_samples / dataset.sample_rate
        return {f: (dataset.durations or {}).get(f, clip_seconds) for f in files}

    def _score(
        self, trainer: L.Trainer, module: SEDModule, stage: str, dataset: SEDDataset, full: bool
    ) -> StageResult:
        preds, by_rank = gather_predictions(module.predictions[stage])
        self._record_shards(trainer, stage, by_rank)
        files = self._scored_files(trainer, stage, dataset, preds)
        frames = {f: preds.frames[f] for f in files}
        durations = self._durations(dataset, files)
        estimated = self.postprocessor(trainer)(frames, durations)
        reference = reference_table(dataset, files)
        encoder = dataset.encoder
        clip_scores = torch.tensor(np.stack([preds.clips[f] for f in files]))
        clip_targets = torch.tensor(
            np.stack([encoder.encode_weak(dataset.clip_labels(f)) for f in files])
        )
        score_dfs = scores_to_dataframes(frames, encoder.frame_hop, encoder.class_names)
        result = StageResult({}, estimated, reference, score_dfs, durations)
        if not full:
            f1 = sed_eval_metrics(reference, estimated, encoder.class_names, filenames=files)
            result.metrics = {
                f"{stage}/event_f1": f1["event_f1"],
                f"{stage}/segment_f1": f1["segment_f1"],
                f"{stage}/clip_map": clip_map(clip_scores, clip_targets.long()),
            }
            result.per_class = {
                c: {"event": f1["event_f1_per_class"][c], "segment": f1["segment_f1_per_class"][c]}
                for c in encoder.class_names
            }
            return result
        result.metrics = compute_all(
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
            dcase2016=self.dcase2016,
        )
        result.per_class = {
            c: {
                "event": result.metrics[f"{stage}/event_f1/{c}"],
                "segment": result.metrics[f"{stage}/segment_f1/{c}"],
            }
            for c in encoder.class_names
        }
        return result

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
        result = self._score(trainer, module, "val", dataset, full=self.val_psds)
        self.last_results["val"] = result
        metrics = dict(result.metrics)
        headline = metrics.pop("val/event_f1")
        module.log("val/event_f1", headline, prog_bar=True)
        module.log_dict(metrics)

    def on_test_epoch_end(self, trainer: L.Trainer, module: SEDModule) -> None:
        dataset = trainer.datamodule.dataset(trainer.datamodule.test_set)
        result = self._score(trainer, module, "test", dataset, full=True)
        self.last_results["test"] = result
        module.log_dict(result.metrics)
        self.last_test_metrics = result.metrics
        if self.output_dir is None:
            return
        if trainer.is_global_zero:
            self.write_outputs(result.metrics, result.estimated, result.score_dfs)
            self.write_set(result.reference, result.durations, "test")
            if trainer.world_size > 1:
                self.write_shards()
        if self.save_val_scores:
            self.write_val_scores(trainer, module)

    def write_val_scores(self, trainer: L.Trainer, module: SEDModule) -> None:
        """Score the validation set with the weights being tested; write ``val_scores/``,
        ``val_reference.tsv`` and ``val_durations.tsv`` (every rank scores its share)."""
        if trainer.fast_dev_run:
            log.info("fast_dev_run: validation scores of the tested weights not written")
            return
        datamodule = trainer.datamodule
        dataset = datamodule.dataset(datamodule.val_set)
        preds, _ = gather_predictions(predict_set(trainer, module, datamodule.val_dataloader()))
        if not trainer.is_global_zero:
            return
        files = [f for f in dataset.filenames if f in preds.frames]
        frames = {f: preds.frames[f] for f in files}
        encoder = dataset.encoder
        write_scores(
            scores_to_dataframes(frames, encoder.frame_hop, encoder.class_names),
            self.output_dir / "val_scores",
        )
        self.write_set(reference_table(dataset, files), self._durations(dataset, files), "val")
        log.info(
            "validation scores of the tested weights written to %s/val_scores", self.output_dir
        )

    def write_set(self, reference: pd.DataFrame, durations: Mapping[str, float], name: str) -> None:
        """``<name>_reference.tsv`` and ``<name>_durations.tsv`` next to the scores."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_strong_tsv(reference, self.output_dir / f"{name}_reference.tsv")
        write_durations_tsv(durations, self.output_dir / f"{name}_durations.tsv")

    def write_outputs(
        self,
        metrics: Mapping[str, float],
        estimated: pd.DataFrame,
        score_dfs: Mapping[str, pd.DataFrame],
    ) -> None:
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        saved = {**dict(metrics), **package_versions()}
        (out / "metrics.json").write_text(json.dumps(saved, indent=2, sort_keys=True))
        write_strong_tsv(estimated, out / "predictions.tsv")
        write_scores(score_dfs, out / "scores")
        (out / "postprocess.yaml").write_text(yaml.safe_dump(_plain(self.postprocess)))
        log.info("test outputs written to %s (metrics.json, predictions.tsv, scores/)", out)

    def write_shards(self) -> None:
        """``eval_shards.json``: for the last validation and the test, the clips each
        process scored (written by multi-process runs, to check the evaluation split)."""
        path = self.output_dir / "eval_shards.json"
        path.write_text(json.dumps(self.scored_by_rank, indent=1))
        log.info("per-process scored clips written to %s", path)


def _plain(value: Any) -> Any:
    """omegaconf containers -> plain dicts/lists (for YAML)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
