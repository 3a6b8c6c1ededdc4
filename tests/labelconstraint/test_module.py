"""Label-constrained fine-tuning, the label_constraint loss term: lambda, checkpoint loading
and a tiny real run."""

import copy
import math

import lightning as L
import pandas as pd
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf, open_dict

import sed_lightning.train as train_module
from sed_lightning.data.batch import SEDBatch
from sed_lightning.labelconstraint.module import (
    ClipProjection,
    LabelConstraintFiles,
    LabelConstraintTerm,
    add_label_constraint,
    build_label_constraint_module,
    load_weights,
)
from sed_lightning.training.build import build_module
from sed_lightning.training.preflight import ConfigError
from tests.conftest import compose_train, finalize

LABELS = torch.tensor(  # (n_classes=6, dim=3) hand-made label features
    [
        [2.0, 0.0, -1.0],
        [0.0, 1.0, 0.0],
        [-1.0, -1.0, 3.0],
        [1.0, 1.0, 1.0],
        [0.0, 2.0, 0.0],
        [3, 0, 0],
    ]
)


@pytest.fixture
def cfg(tmp_path, data_dir):
    cfg = finalize(compose_train(["+label_constraint=default"]), tmp_path / "run", data_dir)
    yield cfg
    GlobalHydra.instance().clear()


def sed_module(cfg, seed=0):
    """The plain SEDModule of ``cfg`` (build_module itself wraps it when label_constraint is set)."""
    torch.manual_seed(seed)
    plain = copy.deepcopy(cfg)
    with open_dict(plain):
        plain.label_constraint = None
    return build_module(plain)


def constrained(cfg, lambda_="auto"):
    base = sed_module(cfg)
    term = LabelConstraintTerm(LABELS, base.model.head.in_features, lambda_=lambda_)
    return add_label_constraint(base, term)


def constrained_loss(module, batch, output):
    """The total loss and ``{loss_sed, loss_kl, kl_lambda}`` of one batch."""
    terms = module.loss_terms(batch, None, output, training=module.training)
    sed = sum(w * v for name, (v, w) in terms.items() if name != "label_constraint")
    kl, lam = terms["label_constraint"]
    return sed + lam * kl, {"loss_sed": sed, "loss_kl": kl, "kl_lambda": lam}


def kl_lambda(module):
    return module.terms["label_constraint"].kl_lambda


def batch_and_output(module, weak_labels):
    torch.manual_seed(1)
    audio = 0.1 * torch.randn(len(weak_labels), 48000)
    with torch.no_grad():
        output = module(audio)
    return SEDBatch(
        audio=audio,
        weak_labels=weak_labels,
        strong_labels=torch.zeros_like(output.strong),
        has_weak=weak_labels.sum(1) > 0,
        has_strong=torch.zeros(len(weak_labels), dtype=torch.bool),
    ), output


def test_attention_pooling_with_equal_scores_is_the_mean():
    proj = ClipProjection(4, 3, pooling="attention")
    torch.nn.init.zeros_(proj.attention.weight)
    emb = torch.randn(2, 5, 4)
    assert torch.allclose(proj.pool(emb), emb.mean(dim=1), atol=1e-6)
    assert proj(emb).shape == (2, 3)


def test_auto_lambda_makes_both_terms_equal_on_the_first_batch_then_stays(cfg):
    module = constrained(cfg).train()
    assert "terms.label_constraint.kl_lambda" in module.state_dict()
    assert math.isnan(kl_lambda(module).item())
    labels = torch.tensor([[1.0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 1.0, 0]])
    loss, terms = constrained_loss(module, *batch_and_output(module, labels))
    assert (terms["kl_lambda"] * terms["loss_kl"]).item() == pytest.approx(
        terms["loss_sed"].item(), rel=1e-5
    )
    assert loss.item() == pytest.approx(2 * terms["loss_sed"].item(), rel=1e-5)
    first = kl_lambda(module).clone()
    other = torch.tensor([[0, 0, 1.0, 0, 0, 0], [0, 0, 0, 0, 0, 1.0]])
    _, terms = constrained_loss(module, *batch_and_output(module, other))
    assert torch.equal(kl_lambda(module), first) and torch.equal(terms["kl_lambda"], first)
    restored = constrained(cfg)
    restored.load_state_dict(module.state_dict())
    LabelConstraintFiles(restored.terms["label_constraint"]).on_train_start(None, restored)
    constrained_loss(restored.train(), *batch_and_output(restored, labels))
    assert torch.equal(kl_lambda(restored), first)  # checkpointed, not set again


def test_auto_lambda_waits_for_a_batch_with_labelled_clips(cfg):
    module = constrained(cfg).train()
    loss, terms = constrained_loss(module, *batch_and_output(module, torch.zeros(2, 6)))
    assert terms["loss_kl"].item() == 0.0 and terms["kl_lambda"].item() == 0.0
    assert math.isnan(kl_lambda(module).item())
    assert loss.item() == terms["loss_sed"].item()
    constrained_loss(module.eval(), *batch_and_output(module, torch.eye(6)[:2]))
    assert math.isnan(kl_lambda(module).item())  # validation never sets it
    constrained_loss(module.train(), *batch_and_output(module, torch.eye(6)[:2]))
    assert kl_lambda(module).item() > 0


def test_a_fixed_lambda_weights_the_kl_term(cfg):
    module = constrained(cfg, lambda_=0.5).train()
    loss, terms = constrained_loss(module, *batch_and_output(module, torch.eye(6)[:3]))
    expected = terms["loss_sed"] + 0.5 * terms["loss_kl"]
    assert terms["loss_kl"].item() > 0 and loss.item() == pytest.approx(expected.item())
    with pytest.raises(ConfigError, match="lambda_"):
        constrained(cfg, lambda_="fast")


def save_ckpt(module, path):
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def test_weights_come_from_the_checkpoint_and_the_projection_is_new(cfg, tmp_path):
    trained = sed_module(cfg, seed=1)
    ckpt = save_ckpt(trained, tmp_path / "converged.ckpt")
    OmegaConf.update(cfg, "label_constraint.ckpt", str(ckpt))
    OmegaConf.update(cfg, "label_constraint.text_encoder.epochs", 30)
    module = build_label_constraint_module(cfg, sed_module(cfg, seed=2))
    for key, value in trained.state_dict().items():
        assert torch.equal(module.state_dict()[key], value), key
    term = module.terms["label_constraint"]
    assert term.label_features.shape == (6, 32)
    assert term.clip_projection.linear.in_features == module.model.head.in_features
    again = sed_module(cfg, seed=3)  # a fine-tuned checkpoint can be fine-tuned again
    load_weights(again, save_ckpt(module, tmp_path / "fine.ckpt"))
    assert torch.equal(again.model.head.weight, trained.model.head.weight)


def test_missing_or_unfitting_checkpoints_fail_naming_them(cfg, tmp_path):
    OmegaConf.update(cfg, "label_constraint.ckpt", str(tmp_path / "gone.ckpt"))
    with pytest.raises(ConfigError, match="gone.ckpt"):
        build_label_constraint_module(cfg, sed_module(cfg))
    other = sed_module(cfg)
    other.class_names = other.class_names[::-1]
    with pytest.raises(ConfigError, match="classes"):
        load_weights(sed_module(cfg), save_ckpt(other, tmp_path / "other.ckpt"))
    wide = finalize(compose_train(["model.encoder.d_model=8"]), tmp_path / "w", tmp_path)
    with pytest.raises(ConfigError, match="does not fit"):
        load_weights(build_module(wide), save_ckpt(sed_module(cfg), tmp_path / "c.ckpt"))


def test_experiment_builds_on_the_office_benchmark():
    cfg = compose_train(["+experiment=label_constraint"], tiny=False)
    assert cfg.task_name == "label_constraint" and "door_slam" in cfg.data.class_names
    assert cfg.optimizer.lr < 0.002 and cfg.trainer.max_epochs == 5
    assert cfg.label_constraint.lambda_ == "auto" and cfg.label_constraint.ckpt is None
    GlobalHydra.instance().clear()


def test_tiny_fine_tuning_lowers_the_kl_term(tmp_path, data_dir):
    base = finalize(compose_train(), tmp_path / "base", data_dir)
    ckpt = save_ckpt(build_module(base), tmp_path / "converged.ckpt")
    overrides = ["+label_constraint=default", f"label_constraint.ckpt={ckpt}", "test=false"]
    overrides += ["trainer.max_epochs=3", "label_constraint.text_encoder.epochs=40"]
    cfg = finalize(compose_train(overrides), tmp_path / "run", data_dir)
    metrics = train_module.train(cfg)
    assert metrics["train/weight/label_constraint"] > 0
    assert "val/loss/label_constraint" in metrics
    run = tmp_path / "run"
    logged = pd.read_csv(run / "csv" / "metrics.csv").groupby("epoch").max()
    kl = logged["train/loss/label_constraint_epoch"].tolist()
    assert len(kl) == 3 and kl[-1] < kl[0]
    assert logged["train/weight/label_constraint"].nunique() == 1
    saved = torch.load(run / "label_features.pt")
    assert saved["features"].shape == (6, 32)
    assert (run / "label_texts.json").is_file()
    # the run's checkpoint rebuilds from its own config, without the starting checkpoint
    ckpt.unlink()
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["sed_config"]["label_constraint"]["ckpt"] is None
    saved_cfg = OmegaConf.create(last["sed_config"])
    rebuilt = build_module(saved_cfg)  # with its label_constraint term
    rebuilt.load_state_dict(last["state_dict"])
    assert torch.equal(rebuilt.terms["label_constraint"].label_features, saved["features"])
