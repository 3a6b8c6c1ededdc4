import math

import pytest
import torch

from sed_lightning.losses.sed_loss import SEDLoss, summed_bce


def _batch(has_weak, has_strong, n_classes=3, n_frames=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = len(has_weak)
    return dict(
        weak_pred=torch.rand(b, n_classes, generator=g).requires_grad_(),
        strong_pred=torch.rand(b, n_classes, n_frames, generator=g).requires_grad_(),
        weak_target=(torch.rand(b, n_classes, generator=g) > 0.5).float(),
        strong_target=(torch.rand(b, n_classes, n_frames, generator=g) > 0.5).float(),
        has_weak=torch.tensor(has_weak),
        has_strong=torch.tensor(has_strong),
    )


def test_summed_bce_sums_over_classes():
    pred = torch.full((2, 4), 0.5)
    assert summed_bce(pred, torch.ones(2, 4)).item() == pytest.approx(4 * math.log(2), rel=1e-5)


def test_weak_only_items_give_strong_loss_zero():
    out = SEDLoss()(**_batch([True, True, True], [False, False, False]))
    assert out.strong.item() == 0.0
    assert out.weak.item() > 0
    out.total.backward()  # still a valid graph


def test_strong_loss_ignores_weak_items():
    batch = _batch([True, True, True, True], [True, True, False, False])
    full = SEDLoss()(**batch)
    only_strong = {k: v[:2] for k, v in batch.items()}
    assert full.strong.item() == pytest.approx(SEDLoss()(**only_strong).strong.item())


def test_unlabeled_items_are_excluded_from_weak_loss():
    batch = _batch([True, True, False], [False, False, False])
    labelled = {k: v[:2] for k, v in batch.items()}
    assert SEDLoss()(**batch).weak.item() == pytest.approx(SEDLoss()(**labelled).weak.item())


def test_fixed_weights_combine_terms():
    batch = _batch([True] * 4, [True, True, False, False])
    out = SEDLoss(weak_weight=0.3, strong_weight=2.0)(**batch)
    assert out.total.item() == pytest.approx(0.3 * out.weak.item() + 2.0 * out.strong.item())


@pytest.mark.parametrize(
    "n_strong, n_weak, expected",
    [(5, 5, (1.0, 1.0)), (1, 19, (1.0, 0.0)), (19, 1, (0.0, 1.0)), (2, 18, (1.0, 1.0))],
)
def test_auto_weighting_zeroes_a_kind_below_min_share(n_strong, n_weak, expected):
    has_strong = [True] * n_strong + [False] * n_weak
    batch = _batch([True] * (n_strong + n_weak), has_strong)
    out = SEDLoss(weighting="auto", min_share=0.1)(**batch)
    assert (float(out.weak_weight), float(out.strong_weight)) == expected
    assert out.total.item() == pytest.approx(
        expected[0] * out.weak.item() + expected[1] * out.strong.item()
    )


def test_no_labelled_items_gives_zero_loss_with_a_graph():
    batch = _batch([False, False], [False, False])
    out = SEDLoss(weighting="auto")(**batch)
    assert out.total.item() == 0.0 and out.weak.item() == 0.0
    out.total.backward()
    assert batch["weak_pred"].grad is not None


def test_loss_under_mixed_precision_matches_float32():
    """Half-precision probabilities under autocast (as with trainer.precision=16-mixed)."""
    torch.manual_seed(0)
    weak, strong = torch.rand(4, 3), torch.rand(4, 3, 10)
    weak_t, strong_t = (weak > 0.5).float(), (strong > 0.5).float()
    masks = torch.tensor([True, True, True, False]), torch.tensor([True, False, True, False])
    expected = SEDLoss()(weak, strong, weak_t, strong_t, *masks).total
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = SEDLoss()(weak.bfloat16(), strong.bfloat16(), weak_t, strong_t, *masks).total
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=0.05, rtol=0.02)
