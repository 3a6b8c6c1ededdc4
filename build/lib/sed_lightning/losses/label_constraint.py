"""KL term of label-constrained training: clip features pulled towards label features.

Both features are softmax-normalized over the feature dimension; the divergence is
``KL(label || clip) = sum_d p_label[d] * (log p_label[d] - log p_clip[d])``, the label
distribution being the target (``torch.nn.functional.kl_div(log p_clip, p_label)``).
A clip with several positive classes is compared with the mean of their label features
(mixed before the softmax); a clip without any positive class is left out.
"""

from __future__ import annotations

import torch
from torch.nn.functional import kl_div, log_softmax

from sed_lightning.losses.sed_loss import masked_mean

__all__ = ["label_mix", "label_constraint_kl"]


def label_mix(
    targets: torch.Tensor, label_features: torch.Tensor, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean label feature of each clip's positive classes (``target >= threshold``).

    Shape:
        - targets: ``(batch, n_classes)`` clip labels in [0, 1]
        - label_features: ``(n_classes, dim)``
        - output: ``(batch, dim)`` mixed features (zeros for a clip without a positive
          class) and ``(batch,)`` booleans, whether the clip has one

    Example:
        >>> features = torch.tensor([[2.0, 0.0], [0.0, 4.0], [1.0, 1.0]])
        >>> mix, has = label_mix(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), features)
        >>> mix, has
        (tensor([[1., 2.],
                [0., 0.]]), tensor([ True, False]))
    """
    positive = (targets >= threshold).to(label_features.dtype)
    count = positive.sum(dim=1, keepdim=True)
    return positive @ label_features / count.clamp(min=1.0), count.squeeze(1) > 0


def label_constraint_kl(
    clip_features: torch.Tensor,
    label_features: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean ``KL(softmax(label mix) || softmax(clip feature))`` over the labelled clips.

    Clips without a positive class, or where ``mask`` is False (e.g. clips without clip
    labels), are left out; the result is exactly 0 when none is left (no host sync).

    Shape:
        - clip_features: ``(batch, dim)`` unnormalized (logits of the distribution)
        - label_features: ``(n_classes, dim)`` unnormalized
        - targets: ``(batch, n_classes)`` clip labels in [0, 1]
        - mask: ``(batch,)`` booleans or ``None`` (every clip)
        - output: scalar

    Example:
        >>> labels = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
        >>> clip = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
        >>> label_constraint_kl(clip, labels, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        tensor(0.)
        >>> # p = softmax([1, -1]), q = [0.5, 0.5]: sum p log(p / q)
        >>> round(label_constraint_kl(clip, labels, torch.tensor([[0.0, 1.0]] * 2)).item(), 4)
        0.3278
    """
    mix, has_label = label_mix(targets, label_features)
    if mask is not None:
        has_label = has_label & mask
    log_target = log_softmax(mix, dim=-1)
    log_pred = log_softmax(clip_features, dim=-1)
    per_clip = kl_div(log_pred, log_target, reduction="none", log_target=True).sum(dim=-1)
    return masked_mean(per_clip, has_label)
