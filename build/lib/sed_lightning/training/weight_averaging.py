"""Exponential moving average (EMA) of the weights for validation, test and checkpoints.

Built on Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` (an
:class:`torch.optim.swa_utils.AveragedModel` of the whole LightningModule, updated after
every optimizer step): during validation the module holds the averaged weights, checkpoints
store them as ``state_dict`` (the raw weights under ``current_model_state``, for resuming),
and at the end of training the module keeps them. ``predict``, ``evaluate`` and
``init_from`` read ``state_dict``: the averaged weights.

Switched on with ``callbacks=ema`` (``conf/callbacks/ema.yaml``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch.optim.swa_utils import get_ema_multi_avg_fn


def ema_warmup_multi_avg_fn(decay: float = 0.999):
    """An :class:`~torch.optim.swa_utils.AveragedModel` ``multi_avg_fn``: EMA with the
    decay ``min(decay, 1 - 1 / (n + 1))`` at the ``n``-th update after the first copy.

    Until ``n`` reaches ``1 / (1 - decay) - 1`` the average is the plain mean of every
    weight seen so far (the early, random weights do not linger for ``1 / (1 - decay)``
    steps); from there on it is the EMA with ``decay``. The same warm-up as the mean
    teacher's (:func:`~sed_lightning.training.mean_teacher.ema_decay`).

    >>> avg, fn = [torch.tensor([0.0])], ema_warmup_multi_avg_fn(0.9)
    >>> for n, w in enumerate([3.0, 6.0], start=1):  # after the copy of 0.0
    ...     fn(avg, [torch.tensor([w])], torch.tensor(n))
    >>> avg[0]  # the mean of 0, 3 and 6
    tensor([3.])
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged) -> None:
        n = int(n_averaged)
        weight = 1.0 - min(decay, 1.0 - 1.0 / (n + 1))
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:  # integer buffers (batch-norm counters)
            for a, c in zip(averaged, current, strict=True):
                a.copy_(a * (1 - weight) + c * weight)

    return update


class EMAWeights(WeightAveraging):
    """EMA of the module's parameters and buffers, used for validation, test and checkpoints.

    After each optimizer step (from ``start_step`` on, every ``every_n_steps``):
    ``ema = decay * ema + (1 - decay) * weights``; the first update copies the weights.
    Buffers (batch-norm statistics) are averaged the same way, so the averaged weights need
    no batch-norm recomputation.

    A subclass of Lightning's ``WeightAveraging`` (lightning >= 2.6) that only changes
    what happens when a checkpoint is loaded outside fitting: Lightning then loads the raw
    weights (``current_model_state``) into the module, so ``trainer.test(ckpt_path=best)``
    after ``fit`` (what ``sed_lightning.train`` does) would test the raw weights. Here the
    module keeps the checkpoint's ``state_dict``, the averaged weights it was selected on.

    Args:
        decay: EMA decay per update.
        warmup: ``min(decay, 1 - 1 / (n + 1))`` at update ``n``
            (:func:`ema_warmup_multi_avg_fn`) instead of ``decay`` from the first update.
        start_step: first optimizer step (0-based) that updates the average.
        every_n_steps: update every this many optimizer steps.
        device: where the averaged copy lives (default: the module's device).
    """

    def __init__(
        self,
        decay: float = 0.999,
        warmup: bool = True,
        start_step: int = 0,
        every_n_steps: int = 1,
        device: str | None = None,
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        if every_n_steps < 1 or start_step < 0:
            raise ValueError(
                f"every_n_steps must be >= 1 and start_step >= 0, got {every_n_steps}, {start_step}"
            )
        avg_fn = ema_warmup_multi_avg_fn(decay) if warmup else get_ema_multi_avg_fn(decay)
        super().__init__(device=device, use_buffers=True, multi_avg_fn=avg_fn)
        self.decay, self.warmup = float(decay), bool(warmup)
        self.start_step, self.every_n_steps = int(start_step), int(every_n_steps)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """After optimizer steps ``start_step, start_step + every_n_steps, ...``; never at
        epoch ends."""
        return (
            step_idx is not None
            and step_idx >= self.start_step
            and (step_idx - self.start_step) % self.every_n_steps == 0
        )

    @property
    def averaged(self) -> L.LightningModule | None:
        """The averaged copy of the module (``None`` before fitting)."""
        return None if self._average_model is None else self._average_model.module

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # a resume: raw and averaged weights
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
        # else: test / validate / predict keep the checkpoint's (averaged) state_dict
