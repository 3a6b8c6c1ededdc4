"""Train, validate and test: ``python -m sed_lightning.train [overrides]``.

Writes into the Hydra run dir: ``metrics.json``, ``predictions.tsv``, ``scores/``,
``val_scores/`` (see :func:`run`), ``checkpoints/{last,best-*}.ckpt`` and the logger's files;
with ``postprocess=tuned_median`` / ``postprocess=sebbs`` also the decoder tuned on validation
and its test metrics (``postprocess_tuned.yaml`` + ``metrics_tuned.json``, or
``postprocess_sebbs.yaml`` + ``metrics_sebbs.json``); ``cost.json``: parameters, MACs per
10 s clip, wall time and energy of each phase (:mod:`sed_lightning.training.cost`;
``cost=none``: off).

Resume a run (model, optimizer, scheduler, sampler position, random state) in its own
folder: ``python -m sed_lightning.train <same overrides> hydra.run.dir=<run dir> ckpt_path=last``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import hydra
import lightning as L
from omegaconf import DictConfig

from sed_lightning.common import exit_error
from sed_lightning.config import register_configs
from sed_lightning.data.validation import DataValidationError
from sed_lightning.models.weights import WeightsError
from sed_lightning.selftraining.rounds import run_rounds
from sed_lightning.training.build import (
    build_datamodule,
    build_module,
    build_trainer,
    label_encoder,
    summary,
)
from sed_lightning.training.checkpoints import (
    best_checkpoint,
    load_weights,
    read_checkpoint,
    val_metrics,
)
from sed_lightning.training.cost import RunCost, log_summary
from sed_lightning.training.evaluation import save_val_scores
from sed_lightning.training.finetune import load_pretrained
from sed_lightning.training.preflight import (
    ConfigError,
    check_config,
    configure_wandb,
    resolve_ckpt_path,
    warn_config_changes,
)
from sed_lightning.training.run_info import add_to_run_info, write_run_info
from sed_lightning.training.tuning import tune_after_test

log = logging.getLogger(__name__)
register_configs()


@dataclass
class RunResult:
    """What a run gives back: every logged metric as floats, and its best checkpoint (the
    one tested and the one self-training labels with; ``""``: none)."""

    metrics: dict[str, float]
    best_checkpoint: str


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (optionally) and test; returns every logged metric as floats (see :func:`run`)."""
    return run(cfg).metrics


def run(cfg: DictConfig) -> RunResult:
    """Fit (optionally), test, then score the validation set with the tested weights
    (``val_scores/``, for ``sed-tools tune``) and, with ``postprocess.tune``, tune the
    decoder on it and score the test with the tuned one (``test_tuned/*`` or
    ``test_sebbs/*`` metrics); returns the logged metrics and the best checkpoint.

    The ``val/*`` metrics are those of the best checkpoint (the one tested), saved in it
    when it was written, not those of the last validation: a sweep optimizes the model it
    reports. Config values the schema cannot check (e.g. a class name in a per-class
    post-processing setting) and the checkpoint to resume from are checked before anything
    is trained; every checkpoint is loaded tensors-only (``weights_only=True``).
    """
    L.seed_everything(cfg.seed, workers=True)
    ckpt_path = resolve_ckpt_path(cfg) if cfg.train else None
    module = build_module(cfg)
    if cfg.get("init_from") and not ckpt_path:
        load_weights(module, cfg.init_from, "init_from")
    elif not ckpt_path:  # the one time a pretrained file is read; checkpoints carry it after
        load_pretrained(module.model)
    check_config(cfg, frame_hop=label_encoder(cfg, module).frame_hop)
    configure_wandb(cfg)
    if ckpt_path:
        read_checkpoint(ckpt_path, "ckpt_path")  # refused before anything runs if unsafe
        log.info("resuming from %s", ckpt_path)
        warn_config_changes(cfg, ckpt_path)
    datamodule = build_datamodule(cfg, module)
    trainer = build_trainer(cfg)
    if trainer.is_global_zero:  # every data problem is reported before training starts
        datamodule.prepare_data()
        datamodule.setup("fit" if cfg.train else "test")
    cost = RunCost(cfg.get("cost"), trainer.is_global_zero, cfg.paths.output_dir)
    cost.count_network(module, cfg.data.sample_rate)
    if cfg.train:
        with cost.phase("fit"):
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = best_checkpoint(trainer)
    if best:  # the tested checkpoint's validation metrics, not the last epoch's
        metrics.update(val_metrics(best))
    val_dir = None  # where the validation scores of the tested weights went
    if cfg.test:
        log.info("testing %s", best or "the current weights")
        with cost.phase("test"):
            trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        log.info(summary(metrics))
        # the tested weights score the validation set: post-processing is tuned on it
        # (sed-tools tune RUN_DIR), never on the test set
        with cost.phase("val_scores"):
            val_dir = save_val_scores(trainer, module)
    # postprocess.tune: the same tuning, now. Self-training calls run() once per round, so
    # every round's dir gets its own tuning of its own tested weights (a round is a whole
    # run: nothing round-specific to special-case; pseudo-labels use clip scores, untouched)
    if cfg.postprocess.get("tune") and cfg.test:
        with cost.phase("tune"):
            metrics.update(tune_after_test(cfg, trainer.is_global_zero, val_dir))
    write_cost(cost, cfg, trainer)
    log.info("outputs in %s", cfg.paths.output_dir)
    return RunResult(metrics, best or best_checkpoint(trainer, fallback_last=True))


def write_cost(cost: RunCost, cfg: DictConfig, trainer: L.Trainer) -> None:
    """``cost.json`` into the run dir, its figures into the W&B summary and ``run_info.json``
    (global rank 0; nothing with ``cost=none``)."""
    path = cost.write(cfg.paths.output_dir)
    if path is None:
        return
    log.info("%s -> %s", cost.summary(), path)
    log_summary(trainer.loggers, cost.flat())
    add_to_run_info(cfg.paths.output_dir, "cost", {"file": path.name, **cost.flat()})


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    write_run_info(cfg)  # run_info.json: package versions, overrides, start time
    try:
        if cfg.get("self_training") and cfg.self_training.rounds > 0:
            metrics = run_rounds(cfg, run)
        else:
            metrics = train(cfg)
    except ConfigError as err:  # one line naming the key, no traceback
        raise exit_error("config error", err) from None
    except DataValidationError as err:  # every bad file and TSV row, no traceback
        raise exit_error("data error", err, one_line=False) from None
    except WeightsError as err:  # one line naming the weights file
        raise exit_error("weights error", err) from None
    # the tested (best) checkpoint's validation metric (see train)
    return metrics.get(cfg.optimized_metric) if cfg.optimized_metric else None


if __name__ == "__main__":
    main()
