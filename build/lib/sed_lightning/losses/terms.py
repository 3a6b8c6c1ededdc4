"""The training loss as named terms: ``total = sum_k weight_k(step) * value_k``.

The weak and strong BCE terms come from :class:`~sed_lightning.losses.sed_loss.SEDLoss`;
every other term is a :class:`LossTerm` the module holds in ``module.terms`` (an
``nn.ModuleDict``, so a term's parameters train and its buffers are checkpointed) and adds
to the loss of every training step. A term that needs something outside the training step
(the mean teacher's EMA copy of the network, the label constraint's files) brings its
Lightning callbacks (:meth:`LossTerm.callbacks`; the module hands them to the trainer).
Every term is logged by name: ``<stage>/loss/<name>`` and ``train/weight/<name>``.

Where each term lives:

* ``weak``, ``strong``: :mod:`sed_lightning.losses.sed_loss` (settings ``loss.terms.weak``,
  ``loss.terms.strong``);
* ``consistency`` (mean teacher): :class:`sed_lightning.training.mean_teacher.ConsistencyTerm`
  and its :class:`~sed_lightning.training.mean_teacher.MeanTeacher` callback, the MSE in
  :mod:`sed_lightning.losses.consistency` (settings ``loss.terms.consistency``);
* ``label_constraint`` (KL to label features):
  :class:`sed_lightning.labelconstraint.module.LabelConstraintTerm`, the KL in
  :mod:`sed_lightning.losses.label_constraint` (settings: the ``label_constraint`` group).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import lightning as L
import torch
from torch import nn

if TYPE_CHECKING:
    from sed_lightning.data.batch import SEDBatch
    from sed_lightning.models.sed import SEDOutput


def sigmoid_rampup(step: int, rampup_steps: int) -> float:
    """``exp(-5 (1 - t)^2)`` with ``t = step / rampup_steps`` clipped to ``[0, 1]``
    (Laine & Aila 2017): every term's ramp-up.

    Starts at ``exp(-5) ~ 0.0067``, reaches 1 at ``rampup_steps`` and stays there;
    ``rampup_steps <= 0`` means no ramp-up (always 1).

    Example:
        >>> round(sigmoid_rampup(0, 100), 4), round(sigmoid_rampup(50, 100), 4)
        (0.0067, 0.2865)
        >>> sigmoid_rampup(100, 100), sigmoid_rampup(500, 100), sigmoid_rampup(0, 0)
        (1.0, 1.0, 1.0)
    """
    if rampup_steps <= 0:
        return 1.0
    t = min(max(step / rampup_steps, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


class LossTerm(nn.Module):
    """One named term of the training loss beside the weak/strong BCE.

    Subclasses compute the unweighted value in :meth:`forward`; the weight at a step is
    ``weight * sigmoid_rampup(step, rampup)`` unless :meth:`weight_at` is overridden.

    Args:
        weight: the term's weight once ramped up.
        rampup: optimizer steps of its sigmoid ramp-up (0: none).

    Attributes:
        in_eval: whether validation/test also compute the term (into ``val/loss``).
    """

    in_eval = False

    def __init__(self, weight: float = 1.0, rampup: int = 0) -> None:
        super().__init__()
        self.weight = float(weight)
        self.rampup = int(rampup)

    def forward(
        self, module: L.LightningModule, batch: SEDBatch, features: torch.Tensor, output: SEDOutput
    ) -> torch.Tensor:
        """The unweighted value of the term on one batch (a scalar tensor)."""
        raise NotImplementedError

    def weight_at(
        self, module: L.LightningModule, value: torch.Tensor, base: torch.Tensor
    ) -> torch.Tensor:
        """The weight at the module's optimizer step (a tensor, for logging); ``base`` is the
        weighted weak + strong loss of the batch, for terms weighted relative to it."""
        return value.new_tensor(self.weight * sigmoid_rampup(module.global_step, self.rampup))

    def callbacks(self) -> list[L.Callback]:
        """Lightning callbacks the term needs (the module hands them to the trainer)."""
        return []

    def extra_repr(self) -> str:
        return f"weight={self.weight}, rampup={self.rampup}"
