import math

import pytest
import torch
from torch.nn.functional import kl_div, log_softmax, softmax

from sed_lightning.losses.label_constraint import label_constraint_kl, label_mix

LABELS = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, -1.0, 3.0]])


def test_identical_distributions_give_zero():
    targets = torch.eye(3)
    assert label_constraint_kl(LABELS, LABELS, targets).item() == pytest.approx(0.0, abs=1e-7)
    # softmax ignores a constant shift: still the same distributions
    assert label_constraint_kl(LABELS + 5.0, LABELS, targets).item() == pytest.approx(0, abs=1e-6)


def test_two_class_value_matches_manual_and_kl_div():
    labels = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # softmax: [0.75, 0.25], [.5, .5]
    clip = torch.tensor([[0.0, math.log(3.0)]])  # softmax: [0.25, 0.75]
    kl = label_constraint_kl(clip, labels, torch.tensor([[1.0, 0.0]]))
    manual = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.75)
    reference = kl_div(log_softmax(clip, -1), softmax(labels[:1], -1), reduction="sum")
    assert kl.item() == pytest.approx(manual, rel=1e-5)
    assert kl.item() == pytest.approx(reference.item(), rel=1e-5)


def test_clips_without_positive_label_or_masked_out_are_left_out():
    clip = torch.tensor([[0.5, -0.5, 1.0], [3.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    only_first = label_constraint_kl(clip[:1], LABELS, targets[:1])
    masked = label_constraint_kl(clip, LABELS, targets, mask=torch.tensor([True, True, False]))
    assert masked.item() == pytest.approx(only_first.item(), rel=1e-6)
    both = label_constraint_kl(clip, LABELS, targets)
    third = label_constraint_kl(clip[2:], LABELS, targets[2:])
    assert both.item() == pytest.approx((only_first.item() + third.item()) / 2, rel=1e-6)


def test_no_labelled_clip_gives_exactly_zero_with_a_gradient():
    clip = torch.randn(2, 3, requires_grad=True)
    kl = label_constraint_kl(clip, LABELS, torch.zeros(2, 3))
    assert kl.item() == 0.0
    kl.backward()
    assert torch.equal(clip.grad, torch.zeros(2, 3))


def test_multi_label_clip_compares_with_the_mean_feature_before_softmax():
    targets = torch.tensor([[1.0, 0.0, 1.0]])
    mix, has = label_mix(targets, LABELS)
    assert torch.allclose(mix, torch.tensor([[0.5, -0.5, 1.0]])) and has.tolist() == [True]
    assert label_constraint_kl(mix, LABELS, targets).item() == pytest.approx(0.0, abs=1e-7)
    after_softmax = (softmax(LABELS[0], -1) + softmax(LABELS[2], -1)) / 2
    assert label_constraint_kl(after_softmax.log()[None], LABELS, targets).item() > 1e-3


def test_soft_labels_count_from_one_half():
    mix, has = label_mix(torch.tensor([[0.9, 0.2, 0.5], [0.4, 0.1, 0.0]]), LABELS)
    assert torch.allclose(mix[0], (LABELS[0] + LABELS[2]) / 2)
    assert has.tolist() == [True, False]
