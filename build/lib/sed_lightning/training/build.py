"""Build the run's parts from a (Hydra) config: only ``instantiate`` and wiring.

Every ``_target_`` group is built here before any data is prepared or step trained; an
argument its constructor does not take (a misspelt key) is a :class:`ConfigError` naming the
group and the key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sed_lightning.common import HEADLINE_METRICS
from sed_lightning.data.datamodule import SEDDataModule
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.labelconstraint.module import build_label_constraint_module
from sed_lightning.losses.sed_loss import build_sed_loss, loss_settings
from sed_lightning.losses.terms import LossTerm
from sed_lightning.training.mean_teacher import ConsistencyTerm
from sed_lightning.training.module import SEDModule
from sed_lightning.training.preflight import ConfigError
from sed_lightning.training.schedules import make_scheduler

log = logging.getLogger(__name__)

# Loss terms beside weak/strong built from ``loss.terms.<name>`` (when their weight is > 0).
TERMS: dict[str, type[LossTerm]] = {"consistency": ConsistencyTerm}


def build(key: str, make: Callable[[], Any]) -> Any:
    """``make()``, with a bad argument reported as a :class:`ConfigError` naming ``key``."""
    try:
        return make()
    except (InstantiationException, TypeError) as err:  # one line: main prints it as it is
        raise ConfigError(f"{key}: " + " ".join(str(err).split())) from err


def build_terms(settings: dict[str, Any]) -> dict[str, LossTerm]:
    """The loss terms of ``loss.terms`` other than weak/strong whose weight is > 0."""
    terms = {}
    for name, options in settings["terms"].items():
        if name in ("weak", "strong") or not options.get("weight"):
            continue
        if name not in TERMS:
            raise ConfigError(f"loss.terms.{name}: unknown loss term; terms: {sorted(TERMS)}")
        terms[name] = build(f"loss.terms.{name}", lambda n=name, o=options: TERMS[n](**o))
    return terms


def build_module(cfg: DictConfig) -> SEDModule:
    """Front end + model + loss terms + optimizer; the run config is kept for checkpoints."""
    class_names = list(cfg.data.class_names)
    frontend = build("features", lambda: instantiate(cfg.features))
    if frontend.sample_rate != cfg.data.sample_rate:
        raise ConfigError(
            f"features: the front end takes {frontend.sample_rate} Hz but data.sample_rate is "
            f"{cfg.data.sample_rate} (set data.sample_rate={frontend.sample_rate})"
        )
    model = build(
        "model",
        lambda: instantiate(cfg.model)(n_classes=len(class_names), n_mels=frontend.n_features),
    )
    if cfg.get("compile"):
        model.compile()  # in place: the state dict keeps its keys
    settings = loss_settings(cfg.loss)
    module = SEDModule(
        frontend=frontend,
        model=model,
        loss=build("loss", lambda: build_sed_loss(settings)),
        optimizer=build("optimizer", lambda: instantiate(cfg.optimizer)),
        scheduler=build("scheduler", lambda: instantiate(cfg.scheduler))
        if cfg.get("scheduler")
        else None,
        augment=build("augment", lambda: instantiate(cfg.augment)) if cfg.get("augment") else None,
        class_names=class_names,
        run_config=OmegaConf.to_container(cfg, resolve=True),
        terms=build_terms(settings),
    )
    if cfg.get("label_constraint"):  # the second method: + lambda * KL to label features
        module = build_label_constraint_module(cfg, module)
    check_optimizer(module)
    return module


def check_optimizer(module: SEDModule) -> None:
    """Try the partial optimizer and scheduler on a dummy parameter: a misspelt argument
    fails here, naming itself, not when fitting starts."""
    dummy = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = build("optimizer", lambda: module.optimizer_factory(params=dummy))
    if module.scheduler_factory is not None:
        build(
            "scheduler", lambda: make_scheduler(module.scheduler_factory, optimizer, lambda: 1000)
        )


def label_encoder(cfg: DictConfig, module: SEDModule) -> LabelEncoder:
    """The frame grid the model outputs for one clip (the front end says how many frames
    a clip gives and how far apart)."""
    clip_samples = int(round(cfg.data.clip_duration * cfg.data.sample_rate))
    return LabelEncoder.for_clip(
        class_names=list(cfg.data.class_names),
        n_input_frames=module.frontend.n_frames(clip_samples),
        hop_length=module.frontend.hop_length,
        time_pooling=module.model.time_pooling,
        sample_rate=cfg.data.sample_rate,
    )


def build_datamodule(cfg: DictConfig, module: SEDModule) -> SEDDataModule:
    return instantiate(cfg.data, label_encoder=label_encoder(cfg, module))


def build_trainer(cfg: DictConfig) -> L.Trainer:
    callbacks = [
        build(f"callbacks.{name}", lambda c=c: instantiate(c))
        for name, c in (cfg.get("callbacks") or {}).items()
        if c
    ]
    loggers = [
        build(f"logger.{name}", lambda lg=lg: instantiate(lg))
        for name, lg in (cfg.get("logger") or {}).items()
        if lg
    ]
    return build(
        "trainer", lambda: instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    )


def summary(metrics: dict[str, Any]) -> str:
    """A readable block of the headline test metrics."""
    rows = [
        f"  {k:<11} {float(metrics[f'test/{k}']):.4f}"
        for k in HEADLINE_METRICS
        if f"test/{k}" in metrics
    ]
    return "test metrics:\n" + "\n".join(rows)
