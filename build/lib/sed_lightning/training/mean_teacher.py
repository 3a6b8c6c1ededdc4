"""Mean teacher (Tarvainen & Valpola 2017), as in the DCASE Task 4 baseline: an EMA copy of the
network whose predictions the student is pulled towards on clips without frame labels.

The method is two parts: the ``consistency`` term of the training loss
(:class:`ConsistencyTerm`, settings ``loss.terms.consistency``) and the callback that keeps
the teacher (:class:`MeanTeacher`: made at fit start, EMA after every optimizer step,
checkpointed). The term brings its callback (:meth:`ConsistencyTerm.callbacks`), so a run
needs nothing but ``loss.terms.consistency.weight > 0``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from sed_lightning.data.batch import KINDS, SEDBatch
from sed_lightning.losses.consistency import consistency_mse, covered_clips
from sed_lightning.losses.terms import LossTerm
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
    # A hand-written lerp rather than torch.optim.swa_utils (AveragedModel +
    # get_ema_multi_avg_fn): AveragedModel keeps its own n_averaged buffer and deep copy,
    # cannot take this step-dependent decay warm-up (its avg_fn gets the number of averages,
    # not the optimizer step, which a resumed run must continue from), and its state_dict
    # keys ("module.", "n_averaged") would change the callback's checkpointed state.
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
    """The teacher of the mean-teacher ``consistency`` term: an EMA copy of the network.

    At fit start the teacher is made: a frozen deep copy of the module's ``model`` (the
    front end is shared: the teacher sees the student's features, augmented ones included),
    on the module's device, in **eval mode** (no dropout; batch-norm uses the statistics
    copied from the student). The DCASE baseline runs its teacher in train mode for dropout
    noise; eval mode gives deterministic targets. The teacher is not a submodule of the
    LightningModule, so the module's ``state_dict`` keys do not change.

    After every optimizer step the teacher follows the student (:func:`ema_update` with the
    warm-up of :func:`ema_decay`). Its weights are in this callback's ``state_dict``, so a
    resumed run continues with the same teacher.

    Args:
        decay: EMA decay of the teacher's parameters.
    """

    def __init__(self, decay: float = 0.999) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"mean teacher: decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.teacher: nn.Module | None = None
        self._pending: dict[str, Any] | None = None  # restored before the teacher exists
        self._updated_at = 0  # global step of the last EMA update

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.teacher = copy.deepcopy(module.model).to(module.device).eval()
        self.teacher.requires_grad_(False)
        if self._pending is not None:
            self.load_state_dict(self._pending)
        log.info("mean teacher: EMA decay %g", self.decay)

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        """Update the teacher once per optimizer step (not per batch when accumulating)."""
        if self.teacher is None or trainer.global_step == self._updated_at:
            return
        ema_update(self.teacher, module.model, ema_decay(self.decay, trainer.global_step))
        self._updated_at = trainer.global_step

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> SEDOutput:
        if self.teacher is None:
            raise RuntimeError("mean teacher: no teacher before fit start (MeanTeacher callback)")
        return self.teacher(features.detach())

    def state_dict(self) -> dict[str, Any]:
        if self.teacher is None:
            return {}
        return {"teacher": self.teacher.state_dict(), "updated_at": self._updated_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "teacher" not in state_dict:
            return
        if self.teacher is None:  # restored before fit start: applied when the teacher is made
            self._pending = state_dict
            return
        self.teacher.load_state_dict(state_dict["teacher"])
        self._updated_at = int(state_dict["updated_at"])
        self._pending = None


class ConsistencyTerm(LossTerm):
    """The ``consistency`` loss term: MSE between the student's and the teacher's frame and
    clip probabilities (:func:`~sed_lightning.losses.consistency.consistency_mse`) over the
    covered clips, the teacher kept by its :class:`MeanTeacher` callback.

    Args:
        weight: the term's weight once ramped up.
        rampup: optimizer steps of the sigmoid ramp-up (0: none).
        decay: EMA decay of the teacher (:class:`MeanTeacher`).
        clips: which clips the consistency covers, any of ``unlabeled`` (no labels), ``weak``
            (clip labels only), ``strong`` (frame labels); the default
            ``[unlabeled, weak]`` is every clip without frame labels. Unlabeled clips are only
            in the batch with ``data.batch_sizes.unlabeled > 0``.
    """

    def __init__(
        self,
        weight: float = 1.0,
        rampup: int = 0,
        decay: float = 0.999,
        clips: Sequence[str] = ("unlabeled", "weak"),
    ) -> None:
        super().__init__(weight, rampup)
        unknown = sorted(set(clips) - set(KINDS))
        if unknown:
            raise ValueError(f"mean teacher: unknown clip kind(s) {unknown}; kinds: {KINDS}")
        self.clips = list(clips)
        self.mean_teacher = MeanTeacher(decay)  # a plain attribute: not a submodule

    def forward(
        self, module: L.LightningModule, batch: SEDBatch, features: torch.Tensor, output: SEDOutput
    ) -> torch.Tensor:
        teacher = self.mean_teacher.predict(features)
        mask = covered_clips(batch.has_weak, batch.has_strong, self.clips)
        return consistency_mse(output.strong, output.weak, teacher.strong, teacher.weak, mask)

    def callbacks(self) -> list[L.Callback]:
        return [self.mean_teacher]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, decay={self.mean_teacher.decay}, clips={self.clips}"
