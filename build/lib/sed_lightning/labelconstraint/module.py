"""Label-constrained fine-tuning: the ``label_constraint`` term of the training loss,
``lambda * KL(label feature || clip feature)``, added to the SED loss.

The clip feature is the model's frame embeddings pooled over time and projected by a new
linear layer to the label-feature size; the label features come from the text classifier
of :mod:`sed_lightning.labelconstraint.text` (or a ``.pt`` file). Fine-tuning starts from a
converged checkpoint (weights only; the optimizer starts fresh). The term is a
:class:`~sed_lightning.losses.terms.LossTerm` in ``module.terms["label_constraint"]`` (its
projection trains with the model; label features and lambda are checkpointed buffers), so
it combines with any other term (e.g. the mean teacher's ``consistency``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from sed_lightning.data.batch import SEDBatch
from sed_lightning.labelconstraint.text import (
    LabelFeatures,
    load_label_features,
    save_label_features,
    text_label_features,
)
from sed_lightning.losses.label_constraint import label_constraint_kl
from sed_lightning.losses.terms import LossTerm, sigmoid_rampup
from sed_lightning.models.sed import SEDOutput
from sed_lightning.training import checkpoints
from sed_lightning.training.module import SEDModule
from sed_lightning.training.preflight import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "ClipProjection",
    "LabelConstraintTerm",
    "add_label_constraint",
    "build_label_constraint_module",
    "load_weights",
]

NAME = "label_constraint"  # the term's name: module.terms[NAME], train/loss/label_constraint
# State-dict entries the label constraint adds to a SEDModule (skipped when its checkpoint
# initialises another run).
EXTRA_KEYS = (f"terms.{NAME}.",)


class ClipProjection(nn.Module):
    """Frame embeddings pooled over time (mean or attention), then a linear projection.

    Args:
        in_features: embedding width.
        out_features: label-feature size.
        pooling: ``"mean"`` or ``"attention"`` (softmax over time of a linear score).

    Shape:
        - embeddings: ``(batch, n_frames, in_features)``
        - output: ``(batch, out_features)``

    Example:
        >>> proj = ClipProjection(2, 3)
        >>> emb = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
        >>> torch.allclose(proj(emb), proj.linear(torch.tensor([[2.0, 3.0]])))
        True
    """

    def __init__(self, in_features: int, out_features: int, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in ("mean", "attention"):
            raise ValueError(f"clip_pooling must be 'mean' or 'attention', got {pooling!r}")
        self.attention = nn.Linear(in_features, 1) if pooling == "attention" else None
        self.linear = nn.Linear(in_features, out_features)

    def pool(self, embeddings: torch.Tensor) -> torch.Tensor:
        if self.attention is None:
            return embeddings.mean(dim=1)
        weights = torch.softmax(self.attention(embeddings), dim=1)  # (B, T, 1)
        return (weights * embeddings).sum(dim=1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(embeddings))


def parse_lambda(value: Any) -> float:
    """``"auto"`` -> NaN (set from the first batch), else a non-negative number."""
    if isinstance(value, str) and value == "auto":
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"label_constraint.lambda_ must be 'auto' or a number, got {value!r}"
        ) from None
    if not number >= 0:
        raise ConfigError(f"label_constraint.lambda_ must be >= 0, got {value!r}")
    return number


class LabelConstraintTerm(LossTerm):
    """The ``label_constraint`` loss term: ``KL`` between the clip and label features.

    Args:
        label_features: ``(n_classes, dim)`` label features (kept as a buffer).
        width: the model's embedding width (the projection's input).
        lambda_: the KL weight, or ``"auto"``: ``(weak + strong loss) / KL`` of the first training
            batch with labelled clips (detached; averaged over the processes), fixed
            afterwards; a buffer, so checkpointed.
        rampup: optimizer steps of the weight's sigmoid ramp-up (0: none).
        clip_pooling: ``"mean"`` or ``"attention"`` pooling of the embeddings over time.
        labels: the label features with their texts (written to ``output_dir`` at fit start).
        output_dir: where ``label_features.pt`` and ``label_texts.json`` go (``None``: nowhere).
    """

    in_eval = True  # validation and test report val/loss/label_constraint too

    def __init__(
        self,
        label_features: torch.Tensor,
        width: int,
        lambda_: float | str = "auto",
        rampup: int = 0,
        clip_pooling: str = "mean",
        labels: LabelFeatures | None = None,
        output_dir: str | None = None,
    ) -> None:
        lam = parse_lambda(lambda_)
        super().__init__(weight=lam, rampup=rampup)
        self.clip_projection = ClipProjection(width, label_features.shape[1], clip_pooling)
        self.register_buffer("label_features", label_features.detach().clone().float())
        self.register_buffer("kl_lambda", torch.tensor(lam))
        self.labels = labels
        self.output_dir = output_dir
        self._lambda_set = not math.isnan(lam)

    def forward(
        self, module: L.LightningModule, batch: SEDBatch, features: torch.Tensor, output: SEDOutput
    ) -> torch.Tensor:
        """KL term of the batch over its clips with clip labels (0 if none)."""
        clip = self.clip_projection(output.embeddings)
        return label_constraint_kl(clip, self.label_features, batch.weak_labels, batch.has_weak)

    def weight_at(
        self, module: L.LightningModule, value: torch.Tensor, base: torch.Tensor
    ) -> torch.Tensor:
        """lambda (ramped up); with ``auto`` it is set once, from the first training batch
        with ``kl > 0`` (``base / kl`` averaged over the processes that have one)."""
        if not self._lambda_set and self.training:
            self._set_lambda(module, base.detach(), value.detach())
        ramp = sigmoid_rampup(module.global_step, self.rampup) if self.training else 1.0
        return torch.nan_to_num(self.kl_lambda, nan=0.0) * ramp

    def _set_lambda(self, module: L.LightningModule, sed: torch.Tensor, kl: torch.Tensor) -> None:
        valid = (kl > 0).float()
        stats = torch.stack([valid * sed / kl.clamp(min=1e-12), valid])
        if module._trainer is not None:  # every rank calls this at the same steps
            stats = module.trainer.strategy.reduce(stats, reduce_op="sum")
        if stats[1] > 0:  # host sync only until lambda is set
            self.kl_lambda.copy_(stats[0] / stats[1])
            self._lambda_set = True
            log.info("label constraint: lambda = %.4g (auto)", self.kl_lambda.item())

    def callbacks(self) -> list[L.Callback]:
        return [LabelConstraintFiles(self)]


class LabelConstraintFiles(L.Callback):
    """The term's fit-time chores: after a resume the restored lambda counts as set; the
    label features and texts are written to the run dir (global rank 0)."""

    def __init__(self, term: LabelConstraintTerm) -> None:
        self.term = term

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        term = self.term
        if term.output_dir and term.labels is not None and trainer.is_global_zero:
            save_label_features(term.output_dir, term.labels, module.class_names)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.term._lambda_set = bool(torch.isfinite(self.term.kl_lambda))


def load_weights(module: SEDModule, path: str | Path) -> None:
    """Load a checkpoint's front-end + model weights into ``module`` (strict; weights only).

    Entries a label-constrained checkpoint adds (projection, label features, lambda) are
    skipped, so fine-tuned checkpoints can be fine-tuned again.
    """
    checkpoints.load_weights(module, path, "label_constraint.ckpt", EXTRA_KEYS)


def label_features_for(cfg: DictConfig, class_names: Sequence[str]) -> LabelFeatures:
    """From ``text_model_path`` (a ``.pt`` file) or the trained text classifier."""
    lc = cfg.label_constraint
    if lc.get("text_model_path"):
        try:
            return load_label_features(lc.text_model_path, class_names)
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(f"label_constraint.text_model_path: {err}") from err
    encoder = OmegaConf.to_container(lc.text_encoder, resolve=True)
    seed = encoder.pop("seed", cfg.seed)
    result = text_label_features(class_names, list(lc.templates), seed=seed, **encoder)
    log.info("label constraint: text classifier accuracy %.3f", result.accuracy)
    return result


def add_label_constraint(module: SEDModule, term: LabelConstraintTerm) -> SEDModule:
    """``module`` with ``term`` as its ``label_constraint`` loss term."""
    module.terms[NAME] = term
    return module


def build_label_constraint_module(cfg: DictConfig, module: SEDModule) -> SEDModule:
    """A built :class:`SEDModule` with the ``label_constraint`` term of ``cfg.label_constraint``
    added, and the weights of ``label_constraint.ckpt`` if set.

    Its saved run config gets ``label_constraint.ckpt = null``: the checkpoints of this run
    rebuild it without the starting checkpoint (its weights are in them)."""
    lc = cfg.label_constraint
    if lc.get("ckpt"):
        load_weights(module, lc.ckpt)
    else:
        log.info("label_constraint.ckpt is null: the label constraint starts from fresh weights")
    if isinstance(module.run_config.get(NAME), dict):
        module.run_config[NAME] = {**module.run_config[NAME], "ckpt": None}
    labels = label_features_for(cfg, module.class_names)
    term = LabelConstraintTerm(
        label_features=labels.features,
        width=module.model.head.in_features,
        lambda_=lc.get("lambda_", "auto"),
        rampup=lc.get("rampup", 0),
        clip_pooling=lc.get("clip_pooling", "mean"),
        labels=labels,
        output_dir=cfg.paths.get("output_dir"),
    )
    return add_label_constraint(module, term)
