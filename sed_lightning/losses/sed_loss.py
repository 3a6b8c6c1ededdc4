"""Weak + strong loss of the seed method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy

_EPS = 1e-7


@dataclass
class LossOutput:
    """Loss terms of one batch; ``total = weak_weight * weak + strong_weight * strong``.

    All are tensors (no host-device synchronisation in the training step).
    """

    total: torch.Tensor
    weak: torch.Tensor
    strong: torch.Tensor
    weak_weight: torch.Tensor
    strong_weight: torch.Tensor


def summed_bce(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over classes (dim 1), averaged over everything else.

    Shape:
        - prediction, target: ``(batch, n_classes)`` or ``(batch, n_classes, n_frames)``
        - output: scalar

    Example:
        >>> p = torch.tensor([[0.5, 0.5]])
        >>> round(summed_bce(p, torch.tensor([[1.0, 0.0]])).item(), 4)  # 2 * ln 2
        1.3863
    """
    return per_item_bce(prediction, target).mean()


def per_item_bce(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-item BCE ``(batch,)``: summed over classes, averaged over frames if any.

    Computed in float32 with autocast off: under mixed precision the probabilities may be
    half precision, and ``binary_cross_entropy`` is not autocast-safe.
    """
    with torch.autocast(prediction.device.type, enabled=False):
        prediction, target = prediction.float().clamp(_EPS, 1 - _EPS), target.float()
        bce = binary_cross_entropy(prediction, target, reduction="none")
    return bce.sum(dim=1).flatten(1).mean(dim=1) if bce.dim() > 2 else bce.sum(dim=1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; exactly 0 when the mask is empty (no sync)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


class SEDLoss(nn.Module):
    """``total = w_weak * L_weak + w_strong * L_strong`` with per-class BCE summed over classes.

    The weak loss covers every clip with clip labels (weak clips, strong clips whose tags
    are derived from their events, pseudo-labelled clips); the strong loss covers only the
    clips with frame labels and is exactly 0 when a batch has none.

    Args:
        weak_weight: ``w_weak`` for ``weighting="fixed"``.
        strong_weight: ``w_strong`` for ``weighting="fixed"``.
        weighting: ``"fixed"`` uses the weights above; ``"auto"`` derives them from the
            share of each kind among the labelled clips of the batch: a kind whose share is
            below ``min_share`` gets weight 0, the others weight 1 (the seed method: 1:1 mix
            -> both 1; fewer than 10 % strong clips -> strong loss ignored).
        min_share: the share under which a kind is ignored with ``weighting="auto"``.
        consistency_weight: the mean-teacher consistency weight once ramped up (0: off).
            Only stored here (``forward`` ignores it): the
            :class:`~sed_lightning.training.mean_teacher.MeanTeacher` callback reads it from
            ``loss.consistency_weight`` in the config and adds the term in the training step.
        consistency_rampup: optimizer steps of its sigmoid ramp-up (stored, as above).

    Shape:
        - weak_pred, weak_target: ``(batch, n_classes)``
        - strong_pred, strong_target: ``(batch, n_classes, n_frames)``
        - has_weak, has_strong: ``(batch,)`` booleans; a strong clip is also a weak one
    """

    def __init__(
        self,
        weak_weight: float = 1.0,
        strong_weight: float = 1.0,
        weighting: Literal["fixed", "auto"] = "fixed",
        min_share: float = 0.1,
        consistency_weight: float = 0.0,
        consistency_rampup: int = 0,
    ) -> None:
        super().__init__()
        if weighting not in ("fixed", "auto"):
            raise ValueError(f"weighting must be 'fixed' or 'auto', got {weighting!r}")
        self.weak_weight = weak_weight
        self.strong_weight = strong_weight
        self.weighting = weighting
        self.min_share = min_share
        self.consistency_weight = consistency_weight
        self.consistency_rampup = consistency_rampup

    def weights(
        self, has_weak: torch.Tensor, has_strong: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_weak, w_strong)`` for a batch with these masks (0-d tensors)."""
        if self.weighting == "fixed":
            as_tensor = has_weak.new_tensor
            return as_tensor(self.weak_weight, dtype=torch.float), as_tensor(
                self.strong_weight, dtype=torch.float
            )
        n_labelled = has_weak.sum().clamp(min=1).float()
        n_strong = (has_strong & has_weak).sum().float()
        weak_share = (has_weak.sum() - n_strong) / n_labelled
        strong_share = n_strong / n_labelled
        return (weak_share >= self.min_share).float(), (strong_share >= self.min_share).float()

    def forward(
        self,
        weak_pred: torch.Tensor,
        strong_pred: torch.Tensor,
        weak_target: torch.Tensor,
        strong_target: torch.Tensor,
        has_weak: torch.Tensor,
        has_strong: torch.Tensor,
    ) -> LossOutput:
        weak = masked_mean(per_item_bce(weak_pred, weak_target), has_weak)
        strong = masked_mean(per_item_bce(strong_pred, strong_target), has_strong)
        w_weak, w_strong = self.weights(has_weak, has_strong)
        return LossOutput(w_weak * weak + w_strong * strong, weak, strong, w_weak, w_strong)
