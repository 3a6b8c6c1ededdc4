"""Label-constrained fine-tuning: the SED loss plus ``lambda * KL(label feature || clip feature)``.

The clip feature is the model's frame embeddings pooled over time and projected by a new
linear layer to the label-feature size; the label features come from the text classifier
of :mod:`sed_lightning.labelconstraint.text` (or a ``.pt`` file). Fine-tuning starts from a
converged checkpoint (weights only; the optimizer starts fresh).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from sed_lightning.losses.sed_loss import LossOutput
from sed_lightning.models.sed import SEDOutput
from sed_lightning.training import checkpoints
from sed_lightning.training.module import SEDModule
from sed_lightning.training.preflight import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "ClipProjection",
    "LabelConstraintModule",
    "build_label_constraint_module",
    "load_weights",
]

# State-dict entries the label constraint adds to a SEDModule.
EXTRA_KEYS = ("clip_projection.", "label_features", "kl_lambda")


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


class LabelConstraintModule(SEDModule):
    """:class:`SEDModule` whose loss adds ``lambda * KL`` between clip and label features.

    Args:
        label_features: ``(n_classes, dim)`` label features (kept as a buffer).
        lambda_: the KL weight, or ``"auto"``: ``loss_sed / loss_kl`` of the first batch
            with labelled clips (detached), fixed afterwards; a buffer, so checkpointed.
        clip_pooling: ``"mean"`` or ``"attention"`` pooling of the embeddings over time.
        labels: the label features with their texts (written to ``output_dir`` at fit start).
        output_dir: where ``label_features.pt`` and ``label_texts.json`` go (``None``: nowhere).
        **sed: the :class:`SEDModule` arguments.
    """

    def __init__(
        self,
        label_features: torch.Tensor,
        lambda_: float | str = "auto",
        clip_pooling: str = "mean",
        labels: LabelFeatures | None = None,
        output_dir: str | None = None,
        **sed: Any,
    ) -> None:
        super().__init__(**sed)
        width = self.model.head.in_features
        self.clip_projection = ClipProjection(width, label_features.shape[1], clip_pooling)
        self.register_buffer("label_features", label_features.detach().clone().float())
        self.register_buffer("kl_lambda", torch.tensor(parse_lambda(lambda_)))
        self.labels = labels
        self.output_dir = output_dir
        self._lambda_set = not math.isnan(parse_lambda(lambda_))

    def kl_loss(self, batch: SEDBatch, output: SEDOutput) -> torch.Tensor:
        """KL term of the batch over its clips with clip labels (0 if none)."""
        clip = self.clip_projection(output.embeddings)
        return label_constraint_kl(clip, self.label_features, batch.weak_labels, batch.has_weak)

    def current_lambda(self, sed: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
        """The KL weight; with ``auto`` it is set once, from the first training batch with
        ``kl > 0`` (``sed / kl`` averaged over the ranks that have one)."""
        if not self._lambda_set and self.training:
            self._set_lambda(sed.detach(), kl.detach())
        return torch.nan_to_num(self.kl_lambda, nan=0.0)

    def _set_lambda(self, sed: torch.Tensor, kl: torch.Tensor) -> None:
        valid = (kl > 0).float()
        stats = torch.stack([valid * sed / kl.clamp(min=1e-12), valid])
        if self._trainer is not None:  # every rank calls this at the same steps
            stats = self.trainer.strategy.reduce(stats, reduce_op="sum")
        if stats[1] > 0:  # host sync only until lambda is set
            self.kl_lambda.copy_(stats[0] / stats[1])
            self._lambda_set = True
            log.info("label constraint: lambda = %.4g (auto)", self.kl_lambda.item())

    def constrained_loss(
        self, batch: SEDBatch, output: SEDOutput
    ) -> tuple[LossOutput, dict[str, torch.Tensor]]:
        """The SED loss with ``total`` = SED + lambda * KL, and the terms to log."""
        sed = self.compute_loss(batch, output)
        kl = self.kl_loss(batch, output)
        lam = self.current_lambda(sed.total, kl)
        terms = {"loss_sed": sed.total, "loss_kl": kl, "kl_lambda": lam}
        total = sed.total + lam * kl
        return LossOutput(total, sed.weak, sed.strong, sed.weak_weight, sed.strong_weight), terms

    def _log_terms(self, stage: str, terms: dict[str, torch.Tensor], batch_size: int) -> None:
        self.log_dict(
            {f"{stage}/{k}": v for k, v in terms.items()},
            on_step=False,
            on_epoch=True,
            batch_size=batch_size,
        )

    def training_step(self, batch: SEDBatch, batch_idx: int) -> torch.Tensor:
        batch, features = self.augmented(batch)
        output = self.model(features)
        loss, terms = self.constrained_loss(batch, output)
        loss = self.with_consistency(batch, features, output, loss)
        self._log_loss("train", loss, len(batch))
        terms |= {"weak_weight": loss.weak_weight, "strong_weight": loss.strong_weight}
        self._log_terms("train", terms, len(batch))
        return loss.total

    def _eval_step(self, stage: str, batch: SEDBatch) -> None:
        output = self(batch.audio)
        loss, terms = self.constrained_loss(batch, output)
        self._log_loss(stage, loss, len(batch))
        self._log_terms(stage, {k: terms[k] for k in ("loss_sed", "loss_kl")}, len(batch))
        self.predictions[stage].add(batch.filenames, output)

    def on_train_start(self) -> None:
        """After a resume the restored lambda counts as set."""
        self._lambda_set = bool(torch.isfinite(self.kl_lambda))

    def on_fit_start(self) -> None:
        if self.output_dir and self.labels is not None and self.trainer.is_global_zero:
            save_label_features(self.output_dir, self.labels, self.class_names)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The saved run config rebuilds this module without the starting checkpoint
        (its weights are in this one)."""
        super().on_save_checkpoint(checkpoint)
        config = copy.deepcopy(self.run_config)
        if isinstance(config.get("label_constraint"), dict):
            config["label_constraint"]["ckpt"] = None
        checkpoint["sed_config"] = config


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


def build_label_constraint_module(cfg: DictConfig, module: SEDModule) -> LabelConstraintModule:
    """The label-constrained version of a built :class:`SEDModule` (same front end, model,
    loss, optimizer, scheduler and augmentation), with the weights of ``label_constraint.ckpt``
    if set."""
    lc = cfg.label_constraint
    if lc.get("ckpt"):
        load_weights(module, lc.ckpt)
    else:
        log.info("label_constraint.ckpt is null: the label constraint starts from fresh weights")
    labels = label_features_for(cfg, module.class_names)
    return LabelConstraintModule(
        label_features=labels.features,
        lambda_=lc.get("lambda_", "auto"),
        clip_pooling=lc.get("clip_pooling", "mean"),
        labels=labels,
        output_dir=cfg.paths.get("output_dir"),
        frontend=module.frontend,
        model=module.model,
        loss=module.loss,
        optimizer=module.optimizer_factory,
        scheduler=module.scheduler_factory,
        class_names=module.class_names,
        run_config=module.run_config,
        augment=module.augment,
    )
