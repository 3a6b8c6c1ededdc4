"""Mean-teacher consistency: the ramp-up of its weight and the masked student/teacher MSE.

Used by :class:`~sed_lightning.training.mean_teacher.ConsistencyTerm` (as in the DCASE Task 4
baseline: Tarvainen & Valpola 2017; the ramp-up, Laine & Aila 2017, is every term's:
:func:`~sed_lightning.losses.terms.sigmoid_rampup`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sed_lightning.data.batch import KINDS, clip_kind_masks
from sed_lightning.losses.sed_loss import masked_mean
from sed_lightning.losses.terms import sigmoid_rampup

__all__ = ["KINDS", "clip_kind_masks", "consistency_mse", "covered_clips", "sigmoid_rampup"]


def covered_clips(
    has_weak: torch.Tensor, has_strong: torch.Tensor, kinds: Sequence[str]
) -> torch.Tensor:
    """Which clips of a batch are of one of ``kinds`` (``strong``, ``weak``, ``unlabeled``).

    A strong clip also has clip labels, so ``weak`` means clip labels without frame labels;
    ``["unlabeled", "weak"]`` is ``~has_strong``.

    Shape:
        - has_weak, has_strong: ``(batch,)`` booleans
        - output: ``(batch,)`` booleans

    Example:
        >>> has_weak = torch.tensor([True, True, False])
        >>> has_strong = torch.tensor([True, False, False])
        >>> covered_clips(has_weak, has_strong, ["unlabeled", "weak"]).tolist()
        [False, True, True]
        >>> covered_clips(has_weak, has_strong, ["unlabeled"]).tolist()
        [False, False, True]
    """
    masks = clip_kind_masks(has_weak, has_strong)
    covered = torch.zeros_like(has_strong, dtype=torch.bool)
    for kind in kinds:
        covered = covered | masks[kind]
    return covered


def consistency_mse(
    student_strong: torch.Tensor,
    student_weak: torch.Tensor,
    teacher_strong: torch.Tensor,
    teacher_weak: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """MSE(student, teacher) of the frame probabilities plus that of the clip probabilities,
    over the clips in ``mask``; exactly 0 (with a graph) when none is (no host sync).

    The teacher is detached (no gradient to it). Computed in float32.

    Shape:
        - student_strong, teacher_strong: ``(batch, n_classes, n_frames)``
        - student_weak, teacher_weak: ``(batch, n_classes)``
        - mask: ``(batch,)`` booleans
        - output: scalar

    Example:
        >>> s_strong, t_strong = torch.full((2, 1, 2), 0.5), torch.zeros(2, 1, 2)
        >>> s_weak, t_weak = torch.ones(2, 1), torch.zeros(2, 1)
        >>> consistency_mse(s_strong, s_weak, t_strong, t_weak, torch.tensor([True, False]))
        tensor(1.2500)
        >>> consistency_mse(s_strong, s_weak, t_strong, t_weak, torch.tensor([False, False]))
        tensor(0.)
    """
    strong = (student_strong.float() - teacher_strong.detach().float()).pow(2).flatten(1)
    weak = (student_weak.float() - teacher_weak.detach().float()).pow(2)
    return masked_mean(strong.mean(dim=1), mask) + masked_mean(weak.mean(dim=1), mask)
