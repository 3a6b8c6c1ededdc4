"""The mean teacher: the consistency loss term and its EMA callback (update, wiring into the
training step, checkpointing), and a real tiny training run."""

import pytest
import torch
from torch import nn

from sed_lightning.data.batch import SEDBatch
from sed_lightning.losses.consistency import consistency_mse
from sed_lightning.losses.terms import LossTerm
from sed_lightning.training.build import build_datamodule, build_module, build_trainer
from sed_lightning.training.mean_teacher import (
    ConsistencyTerm,
    MeanTeacher,
    ema_decay,
    ema_update,
)
from tests.conftest import compose_train, finalize


def _linear(weight, bias):
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
        layer.bias.fill_(bias)
    return layer


def test_ema_update_of_a_linear_layer():
    teacher, student = _linear([1.0, 2.0], 0.0), _linear([3.0, -2.0], 4.0)
    ema_update(teacher, student, decay=0.9)
    assert teacher.weight[0].tolist() == pytest.approx([0.9 * 1 + 0.1 * 3, 0.9 * 2 - 0.1 * 2])
    assert teacher.bias.item() == pytest.approx(0.4)
    assert student.weight.tolist() == [[3.0, -2.0]]  # the student is untouched


def test_ema_update_copies_buffers():
    teacher, student = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    student.running_mean.fill_(5.0)
    student.num_batches_tracked.fill_(7)
    ema_update(teacher, student, decay=0.999)
    assert teacher.running_mean.tolist() == [5.0, 5.0]
    assert teacher.num_batches_tracked.item() == 7


@pytest.mark.parametrize("step, expected", [(1, 0.5), (4, 0.8), (999, 0.999), (10**6, 0.999)])
def test_ema_decay_warm_up(step, expected):
    assert ema_decay(0.999, step) == pytest.approx(expected)


def test_unknown_clip_kind_is_rejected():
    with pytest.raises(ValueError, match="labelled"):
        ConsistencyTerm(weight=1.0, clips=["labelled"])


@pytest.fixture(scope="module")
def module(tmp_path_factory, data_dir):
    torch.manual_seed(0)
    cfg = finalize(compose_train(), tmp_path_factory.mktemp("mt") / "run", data_dir)
    return build_module(cfg).eval()  # eval: no dropout, deterministic outputs


def _batch(module, has_weak, has_strong):
    g = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(len(has_weak), 3 * 16000, generator=g)
    with torch.no_grad():
        frames = module(audio).strong.shape[-1]
    n_classes = module.model.n_classes
    return SEDBatch(
        audio=audio,
        weak_labels=(torch.rand(len(has_weak), n_classes, generator=g) > 0.5).float(),
        strong_labels=(torch.rand(len(has_weak), n_classes, frames, generator=g) > 0.5).float(),
        has_weak=torch.tensor(has_weak),
        has_strong=torch.tensor(has_strong),
        filenames=[f"c{i}.wav" for i in range(len(has_weak))],
    )


def _started(module, weight=1.0, **kwargs):
    term = ConsistencyTerm(weight=weight, **kwargs)
    (callback,) = term.callbacks()
    callback.on_fit_start(None, module)
    return term, callback


def _perturb(model, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_weight_zero_makes_no_term_and_no_teacher(module):
    assert "consistency" not in module.terms and module.configure_callbacks() == []


def test_training_step_adds_weight_times_each_term(module):
    class Stub(LossTerm):
        def forward(self, module, batch, features, output):
            return torch.tensor(0.5)

    batch = _batch(module, [True, False], [True, False])
    plain = module.training_step(batch, 0)
    module.terms["stub"] = Stub(weight=2.0)
    try:
        assert module.training_step(batch, 0).item() == pytest.approx(plain.item() + 1.0)
    finally:
        del module.terms["stub"]


def test_teacher_is_a_frozen_copy_outside_the_state_dict(module):
    keys = list(module.state_dict())
    term, callback = _started(module)
    module.terms["consistency"] = term
    try:
        assert list(module.state_dict()) == keys  # the term adds no weights
        assert module.configure_callbacks() == [callback]
        assert not any(p.requires_grad for p in callback.teacher.parameters())
        assert not callback.teacher.training
        student, teacher = module.model.head.weight, callback.teacher.head.weight
        assert torch.equal(student, teacher) and student.data_ptr() != teacher.data_ptr()
    finally:
        del module.terms["consistency"]


def test_consistency_is_the_mse_on_clips_without_frame_labels(module):
    term, callback = _started(module, weight=2.0, rampup=100)
    _perturb(callback.teacher)
    batch = _batch(module, [True, True, False], [True, False, False])
    features = module.frontend(batch.audio)
    student = module.model(features)
    mse = term(module, batch, features, student)
    with torch.no_grad():
        teacher = callback.teacher(features)
    mask = torch.tensor([False, True, True])
    expected = consistency_mse(student.strong, student.weak, teacher.strong, teacher.weak, mask)
    assert mse.item() == pytest.approx(expected.item(), rel=1e-6) and mse.item() > 0

    class AtStep:
        global_step = 50

    weight = term.weight_at(AtStep(), mse, torch.tensor(1.0))
    assert weight.item() == pytest.approx(2.0 * 0.2865048, rel=1e-5)  # 2 exp(-1.25)
    strong_only = _batch(module, [True, True], [True, True])
    features = module.frontend(strong_only.audio)
    assert term(module, strong_only, features, module.model(features)).item() == 0.0


def test_state_dict_restores_the_teacher_before_and_after_fit_start(module):
    _, saved = _started(module)
    _perturb(saved.teacher)
    saved._updated_at = 12
    state = saved.state_dict()
    early, (_, late) = MeanTeacher(), _started(module)
    early.load_state_dict(state)  # a resume restores callbacks before fit start
    early.on_fit_start(None, module)
    late.load_state_dict(state)
    for restored in (early, late):
        assert restored._updated_at == 12
        for name, value in saved.teacher.state_dict().items():
            assert torch.equal(restored.teacher.state_dict()[name], value), name
    assert not torch.equal(early.teacher.head.weight, module.model.head.weight)


def test_tiny_training_run_with_a_mean_teacher(tmp_path, data_dir):
    overrides = ["loss.terms.consistency.weight=1.0", "loss.terms.consistency.rampup=2"]
    cfg = finalize(
        compose_train([*overrides, "data.batch_sizes.unlabeled=2"]), tmp_path / "run", data_dir
    )
    module = build_module(cfg)
    initial = {k: v.clone() for k, v in module.model.state_dict().items()}
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=build_datamodule(cfg, module))
    callback = next(c for c in trainer.callbacks if isinstance(c, MeanTeacher))
    assert callback is module.terms["consistency"].mean_teacher
    assert trainer.callback_metrics["train/loss/consistency"] > 0
    assert 0 < trainer.callback_metrics["train/weight/consistency"] <= 1.0
    teacher = callback.teacher.state_dict()
    assert callback._updated_at == trainer.global_step > 0
    assert not torch.equal(teacher["head.weight"], initial["head.weight"])
    assert not torch.equal(teacher["head.weight"], module.model.head.weight)
    assert not any("teacher" in k for k in module.state_dict())

    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "MeanTeacher" in k]
    restored = MeanTeacher()
    restored.load_state_dict(state)
    restored.on_fit_start(None, build_module(cfg))
    for name, value in teacher.items():
        assert torch.equal(restored.teacher.state_dict()[name], value), name
