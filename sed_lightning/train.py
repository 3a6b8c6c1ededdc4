"""Train, validate and test: ``python -m sed_lightning.train [overrides]``.

Writes into the Hydra run dir: ``metrics.json``, ``predictions.tsv``, ``scores/``,
``checkpoints/{last,best-*}.ckpt`` and the logger's files.
"""

from __future__ import annotations

import logging

import hydra
import lightning as L
from omegaconf import DictConfig

from sed_lightning.config import register_configs
from sed_lightning.training.build import build_datamodule, build_module, build_trainer, summary

log = logging.getLogger(__name__)
register_configs()


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (optionally) and test; returns every logged metric as floats."""
    L.seed_everything(cfg.seed, workers=True)
    module = build_module(cfg)
    datamodule = build_datamodule(cfg, module)
    trainer = build_trainer(cfg)
    if cfg.train:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        log.info("testing %s", best or "the current weights")
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        log.info(summary(metrics))
    log.info("outputs in %s", cfg.paths.output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.optimized_metric) if cfg.optimized_metric else None


if __name__ == "__main__":
    main()
