"""FilterAugment (Nam et al. 2021): random gain curves along the mel axis of the features."""

import math

import pytest
import torch
from hydra.utils import instantiate

from sed_lightning.features.augment import Augmentation, FilterAugment, SpecAugment
from sed_lightning.train import train
from tests.conftest import compose_train, finalize

SEEDS = [0, 1, 2, 3]


def bands_of(curve: torch.Tensor) -> list[tuple[int, int]]:
    """``(start, end)`` of the runs of equal values of a step curve. Shape: ``(n_bins,)``."""
    change = (curve.diff() != 0).nonzero().flatten() + 1
    bounds = [0, *change.tolist(), curve.numel()]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@pytest.mark.parametrize("seed", SEEDS)
def test_step_gains_are_one_per_band_within_the_db_range(seed):
    aug = FilterAugment(p=1.0, db_range=(-4.0, 7.0), n_bands=(2, 5), min_bandwidth=6, mode="step")
    torch.manual_seed(seed)
    x = torch.zeros(8, 64, 20)
    gains = aug(x)  # (8, 64, 20), unit_db = 1: the gains in dB
    assert torch.equal(gains, gains[..., :1].expand_as(gains))  # one gain per bin
    for curve in gains[..., 0]:
        assert curve.min() >= -4.0 - 1e-5 and curve.max() <= 7.0 + 1e-5
        bands = bands_of(curve)
        assert 1 <= len(bands) <= 5  # two equal neighbouring draws would merge (never here)
        assert all(end - start >= 6 for start, end in bands)
    torch.manual_seed(seed)
    assert torch.equal(aug(x), gains)  # the same seed, the same curves


@pytest.mark.parametrize("seed", SEEDS)
def test_band_edges_honour_the_band_count_and_width(seed):
    torch.manual_seed(seed)
    aug = FilterAugment(n_bands=(3, 6), min_bandwidth=6)
    edges, n = aug.band_edges(200, 64)
    assert set(n.tolist()) == {3, 4, 5, 6}  # both ends of n_bands are drawn
    for row, k in zip(edges, n, strict=True):
        used = row[: k + 1]
        assert used[0] == 0 and used[-1] == 64 and (row[k:] == 64).all()
        assert (used.diff() >= 6).all()
    # more bands than min_bandwidth allows: the width shrinks, every band keeps >= 1 bin
    edges, n = FilterAugment(n_bands=(8, 8), min_bandwidth=6).band_edges(10, 16)
    assert (edges.diff(dim=1) >= 2).all() and (n == 8).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_curves_are_continuous_and_within_the_db_range(seed):
    aug = FilterAugment(p=1.0, db_range=(-6.0, 6.0), n_bands=(3, 5), min_bandwidth=6)
    torch.manual_seed(seed)
    curves = aug.curves(16, 64)
    assert curves.shape == (16, 64)
    assert curves.min() >= -6.0 and curves.max() <= 6.0
    # within a band the curve moves at most (high - low) / (width - 1) per bin; at a band
    # edge it repeats the edge's gain: no jump anywhere
    assert curves.diff(dim=1).abs().max() <= 12.0 / 5 + 1e-5
    step = FilterAugment(p=1.0, db_range=(-6.0, 6.0), n_bands=(3, 5), mode="step")
    torch.manual_seed(seed)
    assert step.curves(16, 64).diff(dim=1).abs().max() > 12.0 / 5  # steps do jump


def test_linear_known_answer():
    aug = FilterAugment(p=1.0, db_range=(0.0, 1.0), n_bands=(1, 1), mode="linear")
    torch.manual_seed(0)
    curve = aug.curves(1, 5)[0]
    torch.manual_seed(0)
    edges, _ = aug.band_edges(1, 5)
    nodes = torch.rand(1, 2)[0]  # the two edge gains, drawn right after the bands
    assert edges.tolist() == [[0, 5]]
    torch.testing.assert_close(curve, torch.linspace(float(nodes[0]), float(nodes[1]), 5))


def test_probability_zero_is_the_identity_and_shapes_are_kept():
    x = torch.randn(4, 64, 30)
    assert torch.equal(FilterAugment(p=0.0)(x), x)
    with_channel = torch.randn(4, 2, 64, 30)
    out = FilterAugment(p=1.0)(with_channel)
    assert out.shape == with_channel.shape
    assert torch.allclose(out[:, 0] - with_channel[:, 0], out[:, 1] - with_channel[:, 1])


def test_probability_is_per_clip_and_unit_db_scales_the_gain():
    torch.manual_seed(0)
    x = torch.zeros(200, 32, 5)
    changed = FilterAugment(p=0.5)(x).abs().amax(dim=(1, 2)) > 0
    assert 60 < int(changed.sum()) < 140
    torch.manual_seed(1)
    in_db = FilterAugment(p=1.0, unit_db=1.0)(x)
    torch.manual_seed(1)
    in_units = FilterAugment(p=1.0, unit_db=4.0)(x)
    torch.testing.assert_close(in_units, in_db / 4.0)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        FilterAugment(mode="bell")
    with pytest.raises(ValueError, match="n_bands"):
        FilterAugment(n_bands=(4, 2))
    with pytest.raises(ValueError, match="unit_db"):
        FilterAugment(unit_db=0.0)


def test_filteraugment_runs_before_the_masks():
    aug = Augmentation(
        filteraugment=FilterAugment(p=1.0, db_range=(3.0, 6.0)),
        specaugment=SpecAugment(p=1.0, time_masks=1, time_mask_param=10, freq_masks=0),
    )
    torch.manual_seed(0)
    out = aug.features(torch.zeros(3, 16, 40))
    assert (out == 0).any() and (out >= 3.0).any()  # masked columns stay exactly 0
    assert Augmentation(filteraugment=FilterAugment()).state_dict() == {}  # no state


def test_configs_switch_it_on_alone_or_with_the_default():
    alone = instantiate(compose_train(["augment=filteraugment"]).augment)
    parts = ("noise", "shift", "mixup", "specaugment", "filteraugment")
    assert [p for p in parts if getattr(alone, p)] == ["filteraugment"]
    assert alone.filteraugment.mode == "linear" and alone.filteraugment.unit_db == 4.6
    both = compose_train(["augment=default_filteraugment"]).augment
    default = compose_train(["augment=default"]).augment
    assert {k: v for k, v in both.items() if k != "filteraugment"} == dict(default)
    assert both.filteraugment == compose_train(["augment=filteraugment"]).augment.filteraugment
    assert "filteraugment" not in default  # the default augmentation is unchanged


def test_applied_in_training_only(tmp_path, data_dir, monkeypatch):
    calls = []
    forward = FilterAugment.forward

    def counted(self, features):
        calls.append(self.training)
        return forward(self, features)

    monkeypatch.setattr(FilterAugment, "forward", counted)
    overrides = ["debug=fdr", "augment=filteraugment", "augment.filteraugment.p=1.0"]
    cfg = compose_train([*overrides, "test=false"])
    metrics = train(finalize(cfg, tmp_path / "run", data_dir))
    assert math.isfinite(metrics["train/loss"]) and "val/loss" in metrics
    assert calls == [True]  # one training batch; the validation batches never see it
