"""Weak + strong loss of the seed method: the ``weak`` and ``strong`` terms of the training
loss (the other terms: :mod:`sed_lightning.losses.terms`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.functional import binary_cross_entropy

from sed_lightning.losses.terms import sigmoid_rampup

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
    """``total = w_weak * L_weak + w_strong * L_strong`` with per-class BCE summed over classes:
    the ``weak`` and ``strong`` terms of the training loss.

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
            With ``"auto"`` these 0/1 weights multiply ``weak_weight`` / ``strong_weight``.
        min_share: the share under which a kind is ignored with ``weighting="auto"``.
        weak_rampup, strong_rampup: optimizer steps of each term's sigmoid ramp-up
            (:func:`~sed_lightning.losses.terms.sigmoid_rampup`; 0: none), applied when
            ``forward`` gets the ``step``.

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
        weak_rampup: int = 0,
        strong_rampup: int = 0,
    ) -> None:
        super().__init__()
        if weighting not in ("fixed", "auto"):
            raise ValueError(f"weighting must be 'fixed' or 'auto', got {weighting!r}")
        self.weak_weight = weak_weight
        self.strong_weight = strong_weight
        self.weighting = weighting
        self.min_share = min_share
        self.weak_rampup = int(weak_rampup)
        self.strong_rampup = int(strong_rampup)

    def weights(
        self, has_weak: torch.Tensor, has_strong: torch.Tensor, step: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_weak, w_strong)`` for a batch with these masks (0-d tensors), ramped up to
        optimizer step ``step`` (``None``: fully)."""
        w_weak, w_strong = self.weak_weight, self.strong_weight
        if step is not None:
            w_weak *= sigmoid_rampup(step, self.weak_rampup)
            w_strong *= sigmoid_rampup(step, self.strong_rampup)
        as_tensor = has_weak.new_tensor
        weights = as_tensor(w_weak, dtype=torch.float), as_tensor(w_strong, dtype=torch.float)
        if self.weighting == "fixed":
            return weights
        n_labelled = has_weak.sum().clamp(min=1).float()
        n_strong = (has_strong & has_weak).sum().float()
        weak_share = (has_weak.sum() - n_strong) / n_labelled
        strong_share = n_strong / n_labelled
        return (
            weights[0] * (weak_share >= self.min_share).float(),
            weights[1] * (strong_share >= self.min_share).float(),
        )

    def forward(
        self,
        weak_pred: torch.Tensor,
        strong_pred: torch.Tensor,
        weak_target: torch.Tensor,
        strong_target: torch.Tensor,
        has_weak: torch.Tensor,
        has_strong: torch.Tensor,
        step: int | None = None,
    ) -> LossOutput:
        weak = masked_mean(per_item_bce(weak_pred, weak_target), has_weak)
        strong = masked_mean(per_item_bce(strong_pred, strong_target), has_strong)
        w_weak, w_strong = self.weights(has_weak, has_strong, step)
        return LossOutput(w_weak * weak + w_strong * strong, weak, strong, w_weak, w_strong)


def loss_settings(node: Any) -> dict[str, Any]:
    """The ``loss`` config as ``{"weighting", "min_share", "terms": {name: settings}}``.

    Also reads the flat keys of checkpoints saved before the loss terms
    (``weak_weight``, ``strong_weight``, ``consistency_weight``, ``consistency_rampup``).

    >>> loss_settings({"weak_weight": 0.5, "consistency_weight": 2.0})["terms"]["consistency"]
    {'weight': 2.0, 'rampup': 0}
    """
    raw = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    raw = dict(raw or {})
    raw.pop("_target_", None)
    terms: dict[str, dict[str, Any]] = {k: dict(v or {}) for k, v in raw.pop("terms", {}).items()}
    legacy = {"weak_weight": ("weak", "weight"), "strong_weight": ("strong", "weight")}
    legacy |= {"consistency_weight": ("consistency", "weight")}
    legacy |= {"consistency_rampup": ("consistency", "rampup")}
    for key, (term, setting) in legacy.items():
        if key in raw:
            terms.setdefault(term, {}).setdefault(setting, raw.pop(key))
    for name, term in terms.items():
        term.setdefault("weight", 0.0 if name == "consistency" else 1.0)
        term.setdefault("rampup", 0)
    return {
        "weighting": raw.pop("weighting", "fixed"),
        "min_share": raw.pop("min_share", 0.1),
        "terms": terms,
        **raw,
    }


def build_sed_loss(settings: Mapping[str, Any]) -> SEDLoss:
    """The weak + strong terms of :func:`loss_settings`'s result."""
    terms = settings["terms"]
    weak, strong = terms.get("weak", {}), terms.get("strong", {})
    return SEDLoss(
        weak_weight=weak.get("weight", 1.0),
        strong_weight=strong.get("weight", 1.0),
        weighting=settings["weighting"],
        min_share=settings["min_share"],
        weak_rampup=weak.get("rampup", 0),
        strong_rampup=strong.get("rampup", 0),
    )
