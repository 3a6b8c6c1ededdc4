import math

import pytest
import torch

from sed_lightning.losses.consistency import consistency_mse, covered_clips, sigmoid_rampup


@pytest.mark.parametrize(
    "step, expected",
    [(0, math.exp(-5.0)), (50, math.exp(-1.25)), (100, 1.0), (400, 1.0), (-3, math.exp(-5.0))],
)
def test_sigmoid_rampup_values(step, expected):
    assert sigmoid_rampup(step, 100) == pytest.approx(expected, rel=1e-12)


def test_no_rampup_is_full_weight_from_the_start():
    assert sigmoid_rampup(0, 0) == 1.0


HAS_WEAK = torch.tensor([True, True, False, False])
HAS_STRONG = torch.tensor([True, False, False, False])


@pytest.mark.parametrize(
    "kinds, expected",
    [
        (["unlabeled", "weak"], [False, True, True, True]),
        (["weak"], [False, True, False, False]),
        (["strong"], [True, False, False, False]),
        ([], [False, False, False, False]),
    ],
)
def test_covered_clips(kinds, expected):
    assert covered_clips(HAS_WEAK, HAS_STRONG, kinds).tolist() == expected


def test_mse_matches_a_hand_computation():
    # 3 clips, 1 class, 2 frames; clip 0 is not covered (its huge difference must not count).
    s_strong = torch.tensor([[[1.0, 1.0]], [[0.5, 0.1]], [[0.2, 0.9]]], requires_grad=True)
    t_strong = torch.tensor([[[0.0, 0.0]], [[0.1, 0.1]], [[0.2, 0.3]]])
    s_weak = torch.tensor([[1.0], [0.6], [0.5]], requires_grad=True)
    t_weak = torch.tensor([[0.0], [0.2], [0.2]])
    mask = torch.tensor([False, True, True])
    # strong: clip 1 (0.16 + 0) / 2 = 0.08, clip 2 (0 + 0.36) / 2 = 0.18 -> mean 0.13
    # weak: clip 1 0.16, clip 2 0.09 -> mean 0.125
    mse = consistency_mse(s_strong, s_weak, t_strong, t_weak, mask)
    assert mse.item() == pytest.approx(0.13 + 0.125, abs=1e-6)
    mse.backward()
    assert s_strong.grad[0].abs().sum() == 0 and s_strong.grad[1:].abs().sum() > 0


def test_mse_is_exactly_zero_for_a_strong_only_batch():
    has_weak = has_strong = torch.tensor([True, True])
    mask = covered_clips(has_weak, has_strong, ["unlabeled", "weak"])
    student = torch.rand(2, 3, 4, requires_grad=True)
    mse = consistency_mse(student, student.mean(2), torch.zeros(2, 3, 4), torch.zeros(2, 3), mask)
    assert mse.item() == 0.0
    mse.backward()  # still a valid graph
    assert student.grad is not None


def test_no_gradient_flows_to_the_teacher():
    teacher = torch.zeros(1, 1, 2, requires_grad=True)
    student = torch.ones(1, 1, 2, requires_grad=True)
    mask = torch.tensor([True])
    consistency_mse(student, student[..., 0], teacher, teacher[..., 0], mask).backward()
    assert teacher.grad is None
    assert student.grad is not None
