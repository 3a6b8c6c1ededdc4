"""Mean teacher (Tarvainen & Valpola 2017), as in the DCASE Task 4 baseline: an EMA copy of the
network whose predictions the student is pulled towards on clips without frame labels."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from sed_lightning.data.batch import SEDBatch
from sed_lightning.losses.consistency import (
    KINDS,
    consistency_mse,
    covered_clips,
    sigmoid_rampup,
)
from sed_lightning.models.sed import SEDOutput

log = logging.getLogger(__name__)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``t = decay * t + (1 - decay) * s`` for every parameter; buffers (batch-norm
    statistics) are copied from the student.

    Example:
        >>> t, s = nn.Linear(1, 1), nn.Linear(1, 1)
        >>> with torch.no_grad():
        ...     _ = t.weight.fill_(1.0), s.weight.fill_(3.0)
        >>> ema_update(t, s, decay=0.75)
        >>> t.weight.item()  # 0.75 * 1 + 0.25 * 3
        1.5
    """
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.lerp_(s.detach().to(t.dtype), 1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)


def ema_decay(decay: float, step: int) -> float:
    """The baseline's warm-up: ``min(decay, 1 - 1 / (step + 1))``, ``step`` = optimizer steps
    done so far (1 after the first), so the early teacher follows the student closely.

    >>> ema_decay(0.999, 1), ema_decay(0.999, 3), ema_decay(0.999, 10_000)
    (0.5, 0.75, 0.999)
    """
    return min(decay, 1.0 - 1.0 / (step + 1))


class MeanTeacher(L.Callback):
    """Mean-teacher consistency for a :class:`~sed_lightning.training.module.SEDModule`.

    At fit start the teacher is made: a frozen deep copy of the module's ``model`` (the
    front end is shared: the teacher sees the student's features, augmented ones included),
    on the module's device, in **eval mode** (no dropout; batch-norm uses the statistics
    copied from the student). The DCASE baseline runs its teacher in train mode for dropout
    noise; eval mode gives deterministic targets. The callback attaches itself as
    ``module.teacher`` (a plain attribute: the teacher is not a submodule, so the module's
    ``state_dict`` keys do not change); the training step then adds
    ``weight(step) * consistency`` from :meth:`consistency`.

    After every optimizer step the teacher follows the student (:func:`ema_update` with the
    warm-up of :func:`ema_decay`). Its weights are in this callback's ``state_dict``, so a
    resumed run continues with the same teacher. With ``consistency_weight`` 0 the callback
    does nothing at all (no teacher is made).

    Args:
        consistency_weight: the weight of the consistency term once ramped up (0: off).
        rampup_steps: optimizer steps of the sigmoid ramp-up :func:`sigmoid_rampup` (0: none).
        decay: EMA decay of the teacher's parameters.
        clips: which clips the consistency covers, any of ``unlabeled`` (no labels), ``weak``
            (clip labels only), ``strong`` (frame labels); the default
            ``[unlabeled, weak]`` is every clip without frame labels. Unlabeled clips are only
            in the batch with ``data.batch_sizes.unlabeled > 0``.
    """

    def __init__(
        self,
        consistency_weight: float = 0.0,
        rampup_steps: int = 0,
        decay: float = 0.999,
        clips: Sequence[str] = ("unlabeled", "weak"),
    ) -> None:
        unknown = sorted(set(clips) - set(KINDS))
        if unknown:
            raise ValueError(f"mean teacher: unknown clip kind(s) {unknown}; kinds: {KINDS}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"mean teacher: decay must be in [0, 1], got {decay}")
        self.consistency_weight = float(consistency_weight)
        self.rampup_steps = int(rampup_steps)
        self.decay = float(decay)
        self.clips = list(clips)
        self.teacher: nn.Module | None = None
        self._pending: dict[str, Any] | None = None  # restored before the teacher exists
        self._updated_at = 0  # global step of the last EMA update

    @property
    def active(self) -> bool:
        return self.consistency_weight > 0

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.active:
            return
        self.teacher = copy.deepcopy(module.model).to(module.device).eval()
        self.teacher.requires_grad_(False)
        if self._pending is not None:
            self.load_state_dict(self._pending)
        module.teacher = self  # plain attribute (a Callback is not an nn.Module)
        log.info(
            "mean teacher: weight %g, ramp-up %d steps", self.consistency_weight, self.rampup_steps
        )

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        """Update the teacher once per optimizer step (not per batch when accumulating)."""
        if self.teacher is None or trainer.global_step == self._updated_at:
            return
        ema_update(self.teacher, module.model, ema_decay(self.decay, trainer.global_step))
        self._updated_at = trainer.global_step

    def weight(self, step: int) -> float:
        """The ramped consistency weight at optimizer step ``step``."""
        return self.consistency_weight * sigmoid_rampup(step, self.rampup_steps)

    def consistency(
        self, batch: SEDBatch, features: torch.Tensor, student: SEDOutput, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mse, weight)``: the student/teacher MSE over the covered clips of the batch
        (:func:`consistency_mse`) and the ramped weight (a tensor, for logging).

        Shape:
            - features: ``(batch, n_mels, time)`` the student's input features
        """
        with torch.no_grad():
            teacher = self.teacher(features.detach())
        mask = covered_clips(batch.has_weak, batch.has_strong, self.clips)
        mse = consistency_mse(student.strong, student.weak, teacher.strong, teacher.weak, mask)
        return mse, mse.new_tensor(self.weight(step))

    def state_dict(self) -> dict[str, Any]:
        if self.teacher is None:
            return {}
        return {"teacher": self.teacher.state_dict(), "updated_at": self._updated_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "teacher" not in state_dict or not self.active:
            return
        if self.teacher is None:  # restored before fit start: applied when the teacher is made
            self._pending = state_dict
            return
        self.teacher.load_state_dict(state_dict["teacher"])
        self._updated_at = int(state_dict["updated_at"])
        self._pending = None
