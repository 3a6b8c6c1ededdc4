"""LightningModule: short steps that combine front end, model, loss and prediction collection."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from sed_lightning.data.batch import SEDBatch
from sed_lightning.losses.sed_loss import LossOutput, SEDLoss
from sed_lightning.losses.terms import LossTerm
from sed_lightning.models.sed import SEDModel, SEDOutput
from sed_lightning.training.checkpoints import (
    LAYOUT,
    LAYOUT_KEY,
    VAL_METRICS_KEY,
    upgrade_checkpoint,
)
from sed_lightning.training.finetune import make_optimizer, set_epoch
from sed_lightning.training.schedules import make_scheduler


class StagePredictions:
    """Frame and clip probabilities collected over one validation/test epoch.

    ``frames[filename]`` is ``(n_frames, n_classes)``; ``clips[filename]`` is ``(n_classes,)``.
    """

    def __init__(self) -> None:
        self.frames: dict[str, np.ndarray] = {}
        self.clips: dict[str, np.ndarray] = {}

    def add(self, filenames: Sequence[str], output: SEDOutput) -> None:
        strong = output.strong.detach().float().transpose(1, 2).cpu().numpy()
        weak = output.weak.detach().float().cpu().numpy()
        for name, s, w in zip(filenames, strong, weak, strict=True):
            self.frames[name] = s
            self.clips[name] = w


class SEDModule(L.LightningModule):
    """Weak/strong SED training of the seed method.

    Args:
        frontend: waveform -> features module.
        model: the SED network.
        loss: the weak + strong terms of the training loss.
        optimizer: factory ``optimizer(params)`` (Hydra ``_partial_``).
        scheduler: factory ``scheduler(optimizer)`` stepped every step, or ``None``.
        class_names: ordered class names (saved with the checkpoint).
        run_config: the resolved run config, saved in checkpoints so that ``predict``
            can rebuild the same pipeline.
        augment: training-time augmentation
            (:class:`~sed_lightning.features.augment.Augmentation`: ``augment(batch,
            frame_samples)`` on the batch, ``augment.features(x)`` on the features), or
            ``None``. Only the training step uses it.
        terms: the other terms of the training loss by name
            (:class:`~sed_lightning.losses.terms.LossTerm`: mean-teacher ``consistency``,
            ``label_constraint``, ...); their callbacks join the trainer's
            (:meth:`configure_callbacks`).

    The training loss is ``sum_k weight_k(step) * value_k`` over ``weak``, ``strong`` and
    ``terms`` (:meth:`loss_terms`); each is logged as ``<stage>/loss/<name>``.
    """

    def __init__(
        self,
        frontend: nn.Module,
        model: SEDModel,
        loss: SEDLoss,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None,
        class_names: Sequence[str],
        run_config: dict | None = None,
        augment: nn.Module | None = None,
        terms: Mapping[str, LossTerm] | None = None,
    ) -> None:
        super().__init__()
        self.frontend = frontend
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names)
        self.run_config = run_config or {}
        self.augment = augment
        self.terms = nn.ModuleDict(dict(terms or {}))
        self.predictions: dict[str, StagePredictions] = {}

    def forward(self, audio: torch.Tensor) -> SEDOutput:
        return self.model(self.frontend(audio))

    def compute_loss(
        self, batch: SEDBatch, output: SEDOutput, step: int | None = None
    ) -> LossOutput:
        """The weak + strong terms (ramped up to optimizer step ``step``; ``None``: fully)."""
        return self.loss(
            output.weak,
            output.strong,
            batch.weak_labels,
            batch.strong_labels,
            batch.has_weak,
            batch.has_strong,
            step=step,
        )

    def loss_terms(
        self, batch: SEDBatch, features: torch.Tensor, output: SEDOutput, training: bool = True
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{name: (value, weight)}`` of every term of the loss on this batch (in
        evaluation, ``training=False``: the weak/strong terms and those with ``in_eval``)."""
        sed = self.compute_loss(batch, output, self.global_step if training else None)
        terms = {"weak": (sed.weak, sed.weak_weight), "strong": (sed.strong, sed.strong_weight)}
        for name, term in self.terms.items():
            if training or term.in_eval:
                value = term(self, batch, features, output)
                terms[name] = (value, term.weight_at(self, value, sed.total))
        return terms

    def log_loss(
        self, stage: str, terms: dict[str, tuple[torch.Tensor, torch.Tensor]], batch_size: int
    ) -> torch.Tensor:
        """Log ``<stage>/loss`` and every term's ``<stage>/loss/<name>`` (and, in training,
        ``train/weight/<name>``); returns the total."""
        total = sum(weight * value for value, weight in terms.values())
        on_step = stage == "train"
        log = {"on_epoch": True, "batch_size": batch_size}
        self.log(f"{stage}/loss", total, prog_bar=True, on_step=on_step, **log)
        values = {f"{stage}/loss/{name}": value for name, (value, _) in terms.items()}
        self.log_dict(values, on_step=on_step, **log)
        if stage == "train":
            weights = {f"train/weight/{name}": weight for name, (_, weight) in terms.items()}
            self.log_dict(weights, on_step=False, **log)
        return total

    def augmented(self, batch: SEDBatch) -> tuple[SEDBatch, torch.Tensor]:
        """The training batch and its features, both augmented when ``augment`` is set."""
        if self.augment is None:
            return batch, self.frontend(batch.audio)
        frame_samples = self.frontend.hop_length * self.model.time_pooling
        batch = self.augment(batch, frame_samples=frame_samples)
        return batch, self.augment.features(self.frontend(batch.audio))

    def training_step(self, batch: SEDBatch, batch_idx: int) -> torch.Tensor:
        batch, features = self.augmented(batch)
        output = self.model(features)
        return self.log_loss("train", self.loss_terms(batch, features, output), len(batch))

    def _eval_step(self, stage: str, batch: SEDBatch) -> None:
        features = self.frontend(batch.audio)
        output = self.model(features)
        self.log_loss(stage, self.loss_terms(batch, features, output, False), len(batch))
        self.predictions[stage].add(batch.filenames, output)

    def configure_callbacks(self) -> list[L.Callback]:
        """The callbacks the loss terms need (e.g. the mean teacher's EMA)."""
        return [callback for term in self.terms.values() for callback in term.callbacks()]

    def on_train_epoch_start(self) -> None:
        set_epoch(self.model, self.current_epoch)  # freezing / unfreezing a pretrained part

    def on_validation_epoch_start(self) -> None:
        self.predictions["val"] = StagePredictions()

    def on_test_epoch_start(self) -> None:
        self.predictions["test"] = StagePredictions()

    def validation_step(self, batch: SEDBatch, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: SEDBatch, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def configure_optimizers(self) -> dict[str, Any]:
        # a pretrained part may train at its own rate (training/finetune.py)
        optimizer = make_optimizer(self.optimizer_factory, self)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        # a schedule over the whole run (scheduler=cosine) gets the run's optimizer steps
        scheduler = make_scheduler(
            self.scheduler_factory, optimizer, lambda: self.trainer.estimated_stepping_batches
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sed_config"] = self.run_config
        checkpoint["class_names"] = self.class_names
        checkpoint[LAYOUT_KEY] = LAYOUT
        if self._trainer is not None:  # the validation this checkpoint was saved after
            metrics = self.trainer.callback_metrics.items()
            checkpoint[VAL_METRICS_KEY] = {k: float(v) for k, v in metrics if k.startswith("val/")}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning calls this before loading the weights (resume, test of a best checkpoint).
        upgrade_checkpoint(checkpoint, self)
