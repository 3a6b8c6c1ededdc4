"""The training loss as named terms: weights, ramp-ups, old configs and checkpoints, and a real
tiny run with the mean teacher's and the label constraint's terms at once."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from sed_lightning.losses.sed_loss import SEDLoss, build_sed_loss, loss_settings
from sed_lightning.losses.terms import LossTerm
from sed_lightning.train import train
from sed_lightning.training.build import build_module
from sed_lightning.training.checkpoints import upgrade_state_dict
from tests.conftest import compose_train, finalize


def test_each_terms_weight_ramps_up_on_its_own():
    has_weak, has_strong = torch.tensor([True, True]), torch.tensor([True, False])
    loss = SEDLoss(weak_weight=2.0, strong_weight=0.5, weak_rampup=100, strong_rampup=0)
    w_weak, w_strong = loss.weights(has_weak, has_strong, step=50)
    assert w_weak.item() == pytest.approx(2.0 * math.exp(-1.25), rel=1e-6)
    assert w_strong.item() == 0.5
    assert [w.item() for w in loss.weights(has_weak, has_strong, step=100)] == [2.0, 0.5]
    assert [w.item() for w in loss.weights(has_weak, has_strong)] == [2.0, 0.5]  # evaluation

    class Constant(LossTerm):
        def forward(self, module, batch, features, output):
            return torch.tensor(3.0)

    class AtStep:
        global_step = 25

    term = Constant(weight=4.0, rampup=100)
    assert term.weight_at(AtStep(), torch.tensor(3.0), torch.tensor(0.0)).item() == (
        pytest.approx(4.0 * math.exp(-5 * 0.75**2), rel=1e-6)
    )


def test_settings_of_checkpoints_before_the_loss_terms_still_build():
    legacy = {
        "_target_": "sed_lightning.losses.sed_loss.SEDLoss",
        "weak_weight": 0.5,
        "strong_weight": 2.0,
        "weighting": "auto",
        "min_share": 0.2,
        "consistency_weight": 1.5,
        "consistency_rampup": 30,
    }
    settings = loss_settings(legacy)
    assert settings["terms"] == {
        "weak": {"weight": 0.5, "rampup": 0},
        "strong": {"weight": 2.0, "rampup": 0},
        "consistency": {"weight": 1.5, "rampup": 30},
    }
    loss = build_sed_loss(settings)
    assert (loss.weak_weight, loss.strong_weight, loss.weighting, loss.min_share) == (
        0.5,
        2.0,
        "auto",
        0.2,
    )


def test_label_constraint_weights_of_layout_2_move_under_their_term():
    old = {
        "model.head.weight": torch.ones(1),
        "clip_projection.linear.weight": torch.full((1,), 2.0),
        "label_features": torch.full((1,), 3.0),
        "kl_lambda": torch.tensor(0.5),
    }
    new = upgrade_state_dict(old, module=None)
    assert set(new) == {
        "model.head.weight",
        "terms.label_constraint.clip_projection.linear.weight",
        "terms.label_constraint.label_features",
        "terms.label_constraint.kl_lambda",
    }
    assert new["terms.label_constraint.kl_lambda"].item() == 0.5


def test_mean_teacher_and_label_constraint_together(tmp_path, data_dir):
    overrides = [
        "loss.terms.consistency.weight=1.0",
        "loss.terms.consistency.rampup=2",
        "data.batch_sizes.unlabeled=2",
        "+label_constraint=default",
        "label_constraint.text_encoder.epochs=20",
        "trainer.max_epochs=2",
        "test=false",
    ]
    cfg = finalize(compose_train(overrides), tmp_path / "run", data_dir)
    metrics = train(cfg)
    for name in ("weak", "strong", "consistency", "label_constraint"):
        assert metrics[f"train/loss/{name}"] > 0, name
        assert metrics[f"train/weight/{name}"] > 0, name
    assert "val/loss/label_constraint" in metrics and "val/loss/consistency" not in metrics
    logged = pd.read_csv(tmp_path / "run" / "csv" / "metrics.csv")
    epochs = logged.dropna(subset=["train/loss/consistency_epoch"])
    assert len(epochs) == 2 and (epochs["train/loss/label_constraint_epoch"] > 0).all()
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert "terms.label_constraint.kl_lambda" in last["state_dict"]
    assert any("MeanTeacher" in k for k in last["callbacks"])


def test_mean_teacher_experiments_switch_the_consistency_term_on(tmp_path):
    cfg = compose_train(["+experiment=mean_teacher"], tiny=False)
    assert cfg.loss.terms.consistency.weight == 2.0 and cfg.data.batch_sizes.unlabeled == 12
    module = build_module(finalize(cfg, tmp_path / "run", tmp_path / "data"))
    assert module.terms["consistency"].rampup == 300
    assert [type(c).__name__ for c in module.configure_callbacks()] == ["MeanTeacher"]
    study = compose_train(["+experiment=ablation/mean_teacher"], tiny=False)
    swept = study.hydra.sweeper.params["loss.terms.consistency.weight"]
    assert swept == "0.0,2.0" and study.study.reference == "loss.terms.consistency.weight=0.0"
    assert (
        "consistency" not in build_module(finalize(compose_train(), tmp_path / "r", tmp_path)).terms
    )
