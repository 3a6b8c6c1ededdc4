"""Build the run's parts from a (Hydra) config: only ``instantiate`` and wiring."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sed_lightning.data.datamodule import SEDDataModule
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.labelconstraint.module import build_label_constraint_module
from sed_lightning.training.module import SEDModule

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig) -> SEDModule:
    """Front end + model + loss + optimizer; the run config is kept for checkpoints."""
    class_names = list(cfg.data.class_names)
    frontend = instantiate(cfg.features)
    model = instantiate(cfg.model)(n_classes=len(class_names), n_mels=frontend.n_mels)
    if cfg.get("compile"):
        model.compile()  # in place: the state dict keeps its keys
    module = SEDModule(
        frontend=frontend,
        model=model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        augment=instantiate(cfg.augment) if cfg.get("augment") else None,
        class_names=class_names,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )
    if cfg.get("label_constraint"):  # the second method: + lambda * KL to label features
        module = build_label_constraint_module(cfg, module)
    return module


def label_encoder(cfg: DictConfig, module: SEDModule) -> LabelEncoder:
    """The frame grid the model outputs for one clip."""
    return LabelEncoder.for_clip(
        class_names=list(cfg.data.class_names),
        clip_samples=int(round(cfg.data.clip_duration * cfg.data.sample_rate)),
        hop_length=module.frontend.hop_length,
        time_pooling=module.model.time_pooling,
        sample_rate=cfg.data.sample_rate,
    )


def build_datamodule(cfg: DictConfig, module: SEDModule) -> SEDDataModule:
    return instantiate(cfg.data, label_encoder=label_encoder(cfg, module))


def build_trainer(cfg: DictConfig) -> L.Trainer:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [instantiate(lg) for lg in (cfg.get("logger") or {}).values() if lg]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def summary(metrics: dict[str, Any]) -> str:
    """A readable block of the headline test metrics."""
    keys = ["event_f1", "segment_f1", "psds1", "psds2", "clip_map"]
    rows = [f"  {k:<11} {float(metrics[f'test/{k}']):.4f}" for k in keys if f"test/{k}" in metrics]
    return "test metrics:\n" + "\n".join(rows)
