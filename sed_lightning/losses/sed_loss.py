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
    """Loss terms of one batch; ``total = weak_weight * weak + strong_weight * strong``."""

    total: torch.Tensor
    weak: torch.Tensor
    strong: torch.Tensor
    weak_weight: float
    strong_weight: float


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
    bce = binary_cross_entropy(prediction.clamp(_EPS, 1 - _EPS), target, reduction="none")
    return bce.sum(dim=1).mean()


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
    ) -> None:
        super().__init__()
        if weighting not in ("fixed", "auto"):
            raise ValueError(f"weighting must be 'fixed' or 'auto', got {weighting!r}")
        self.weak_weight = weak_weight
        self.strong_weight = strong_weight
        self.weighting = weighting
        self.min_share = min_share

    def weights(self, has_weak: torch.Tensor, has_strong: torch.Tensor) -> tuple[float, float]:
        """``(w_weak, w_strong)`` for a batch with these masks."""
        if self.weighting == "fixed":
            return self.weak_weight, self.strong_weight
        n_labelled = int(has_weak.sum())
        if n_labelled == 0:
            return 0.0, 0.0
        n_strong = int((has_strong & has_weak).sum())
        weak_share = (n_labelled - n_strong) / n_labelled
        strong_share = n_strong / n_labelled
        return float(weak_share >= self.min_share), float(strong_share >= self.min_share)

    def forward(
        self,
        weak_pred: torch.Tensor,
        strong_pred: torch.Tensor,
        weak_target: torch.Tensor,
        strong_target: torch.Tensor,
        has_weak: torch.Tensor,
        has_strong: torch.Tensor,
    ) -> LossOutput:
        zero = weak_pred.sum() * 0.0  # keeps the graph (and device) when a term is empty
        weak = summed_bce(weak_pred[has_weak], weak_target[has_weak]) if has_weak.any() else zero
        strong = (
            summed_bce(strong_pred[has_strong], strong_target[has_strong])
            if has_strong.any()
            else zero
        )
        w_weak, w_strong = self.weights(has_weak, has_strong)
        return LossOutput(w_weak * weak + w_strong * strong, weak, strong, w_weak, w_strong)
