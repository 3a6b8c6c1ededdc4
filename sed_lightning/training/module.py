"""LightningModule: short steps that combine front end, model, loss and prediction collection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
from torch import nn

from sed_lightning.data.batch import SEDBatch
from sed_lightning.losses.sed_loss import LossOutput, SEDLoss
from sed_lightning.models.sed import SEDModel, SEDOutput
from sed_lightning.training.checkpoints import LAYOUT, LAYOUT_KEY, upgrade_checkpoint

if TYPE_CHECKING:
    from sed_lightning.training.mean_teacher import MeanTeacher


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
        loss: weak + strong loss.
        optimizer: factory ``optimizer(params)`` (Hydra ``_partial_``).
        scheduler: factory ``scheduler(optimizer)`` stepped every step, or ``None``.
        class_names: ordered class names (saved with the checkpoint).
        run_config: the resolved run config, saved in checkpoints so that ``predict``
            can rebuild the same pipeline.
        augment: training-time augmentation
            (:class:`~sed_lightning.features.augment.Augmentation`: ``augment(batch,
            frame_samples)`` on the batch, ``augment.features(x)`` on the features), or
            ``None``. Only the training step uses it.

    ``teacher`` is set by the :class:`~sed_lightning.training.mean_teacher.MeanTeacher`
    callback (a plain attribute, not a submodule); while set, the training loss gets its
    consistency term (:meth:`with_consistency`).
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
        self.predictions: dict[str, StagePredictions] = {}
        self.teacher: MeanTeacher | None = None

    def forward(self, audio: torch.Tensor) -> SEDOutput:
        return self.model(self.frontend(audio))

    def compute_loss(self, batch: SEDBatch, output: SEDOutput) -> LossOutput:
        return self.loss(
            output.weak,
            output.strong,
            batch.weak_labels,
            batch.strong_labels,
            batch.has_weak,
            batch.has_strong,
        )

    def _log_loss(self, stage: str, loss: LossOutput, batch_size: int) -> None:
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            loss.total,
            prog_bar=True,
            on_step=on_step,
            on_epoch=True,
            batch_size=batch_size,
        )
        self.log_dict(
            {f"{stage}/loss_weak": loss.weak, f"{stage}/loss_strong": loss.strong},
            on_step=on_step,
            on_epoch=True,
            batch_size=batch_size,
        )

    def augmented(self, batch: SEDBatch) -> tuple[SEDBatch, torch.Tensor]:
        """The training batch and its features, both augmented when ``augment`` is set."""
        if self.augment is None:
            return batch, self.frontend(batch.audio)
        frame_samples = self.frontend.hop_length * self.model.time_pooling
        batch = self.augment(batch, frame_samples=frame_samples)
        return batch, self.augment.features(self.frontend(batch.audio))

    def with_consistency(
        self, batch: SEDBatch, features: torch.Tensor, output: SEDOutput, loss: LossOutput
    ) -> LossOutput:
        """``loss`` with ``weight * consistency`` of the mean teacher added to ``total``
        (both logged), or ``loss`` itself when no teacher is attached."""
        if self.teacher is None:
            return loss
        mse, weight = self.teacher.consistency(batch, features, output, self.global_step)
        self.log_dict(
            {"train/loss_consistency": mse, "train/consistency_weight": weight},
            on_step=False,
            on_epoch=True,
            batch_size=len(batch),
        )
        return replace(loss, total=loss.total + weight * mse)

    def training_step(self, batch: SEDBatch, batch_idx: int) -> torch.Tensor:
        batch, features = self.augmented(batch)
        output = self.model(features)
        loss = self.with_consistency(batch, features, output, self.compute_loss(batch, output))
        self._log_loss("train", loss, len(batch))
        self.log_dict(
            {"train/weak_weight": loss.weak_weight, "train/strong_weight": loss.strong_weight},
            on_step=False,
            on_epoch=True,
            batch_size=len(batch),
        )
        return loss.total

    def _eval_step(self, stage: str, batch: SEDBatch) -> None:
        output = self(batch.audio)
        self._log_loss(stage, self.compute_loss(batch, output), len(batch))
        self.predictions[stage].add(batch.filenames, output)

    def on_validation_epoch_start(self) -> None:
        self.predictions["val"] = StagePredictions()

    def on_test_epoch_start(self) -> None:
        self.predictions["test"] = StagePredictions()

    def validation_step(self, batch: SEDBatch, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: SEDBatch, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sed_config"] = self.run_config
        checkpoint["class_names"] = self.class_names
        checkpoint[LAYOUT_KEY] = LAYOUT

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning calls this before loading the weights (resume, test of a best checkpoint).
        upgrade_checkpoint(checkpoint, self)
