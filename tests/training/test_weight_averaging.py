"""EMA of the weights (``callbacks=ema``): the average itself, and a real tiny training run
whose validation, test and checkpoints use the averaged weights."""

import copy

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, TensorDataset

from sed_lightning.inference import Predictor
from sed_lightning.train import best_checkpoint
from sed_lightning.training.build import build_datamodule, build_module, build_trainer
from sed_lightning.training.weight_averaging import EMAWeights, ema_warmup_multi_avg_fn
from tests.conftest import compose_train, finalize


def _averaged(net: nn.Module, callback: EMAWeights) -> AveragedModel:
    return AveragedModel(net, use_buffers=True, **callback._kwargs)


@pytest.mark.parametrize("warmup", [False, True])
def test_average_equals_the_hand_computed_ema(warmup):
    decay, updates = 0.6, [2.0, -1.0, 4.0, 0.5]
    net = nn.Linear(1, 1, bias=False)
    avg = _averaged(net, EMAWeights(decay=decay, warmup=warmup))
    expected = None
    for n, w in enumerate(updates):
        with torch.no_grad():
            net.weight.fill_(w)
        avg.update_parameters(net)
        if expected is None:
            expected = w  # the first update copies the weights
        else:
            d = min(decay, 1 - 1 / (n + 1)) if warmup else decay
            expected = d * expected + (1 - d) * w
        assert avg.module.weight.item() == pytest.approx(expected, rel=1e-6)
    # without warm-up: 0.6^3 * 2 + 0.6^2 * 0.4 * -1 + 0.6 * 0.4 * 4 + 0.4 * 0.5
    if not warmup:
        assert expected == pytest.approx(0.6**3 * 2 - 0.144 + 0.96 + 0.2)


def test_warmup_is_the_plain_mean_early_and_the_ema_later():
    fn = ema_warmup_multi_avg_fn(decay=0.75)  # warm-up until n = 3
    avg = [torch.tensor([0.0]), torch.tensor([0], dtype=torch.long)]
    for n, w in enumerate([4.0, 8.0, 12.0], start=1):  # after the copy of 0
        fn(avg[:1], [torch.tensor([w])], torch.tensor(n))
    assert avg[0].item() == pytest.approx(6.0)  # mean of 0, 4, 8, 12
    fn(avg[:1], [torch.tensor([26.0])], torch.tensor(4))  # min(0.75, 0.8) = 0.75
    assert avg[0].item() == pytest.approx(0.75 * 6 + 0.25 * 26)
    fn(avg[1:], [torch.tensor([8])], torch.tensor(1))  # integer buffers are averaged too
    assert avg[1].item() == 4
    with pytest.raises(ValueError, match="decay"):
        EMAWeights(decay=1.5)


@pytest.mark.parametrize("start, every, expected", [(0, 1, [0, 1, 2, 3, 4]), (1, 2, [1, 3])])
def test_update_schedule(start, every, expected):
    callback = EMAWeights(start_step=start, every_n_steps=every)
    assert [i for i in range(5) if callback.should_update(step_idx=i)] == expected
    assert not callback.should_update(epoch_idx=0)


class _Toy(L.LightningModule):
    """``y = w x``, SGD on ``sum(w x)``: the gradient is known, so is every step."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.layer.weight.fill_(1.0)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Recorder(L.Callback):
    def __init__(self):
        self.weights = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights.append(pl_module.layer.weight.item())


def test_callback_in_a_trainer_follows_the_optimizer_steps(tmp_path):
    # batches x = 1, 2, 3, 4: weight 1 -> 0.9 -> 0.7 -> 0.4 -> 0.0
    data = DataLoader(TensorDataset(torch.arange(1.0, 5.0)[:, None]), batch_size=1)
    ema, recorder = EMAWeights(decay=0.5, warmup=False), _Recorder()
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[recorder, ema],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    module = _Toy()
    trainer.fit(module, data)
    assert recorder.weights == pytest.approx([0.9, 0.7, 0.4, 0.0], abs=1e-6)
    expected = 0.9
    for w in recorder.weights[1:]:
        expected = 0.5 * expected + 0.5 * w
    assert ema.averaged.layer.weight.item() == pytest.approx(expected)  # 0.35
    # training ended: the module holds the averaged weights
    assert module.layer.weight.item() == pytest.approx(expected)


class _Probe(L.Callback):
    """The weights the module holds during validation and test (after EMAWeights' swap)."""

    def __init__(self):
        self.seen = {}

    def _record(self, stage, pl_module):
        self.seen[stage] = {k: v.clone() for k, v in pl_module.model.state_dict().items()}

    def on_validation_batch_start(self, trainer, pl_module, *args):
        if not trainer.sanity_checking:
            self._record("validation", pl_module)

    def on_test_batch_start(self, trainer, pl_module, *args):
        self._record("test", pl_module)


def _model_weights(state: dict) -> dict:
    return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_training_run_validates_tests_and_saves_the_averaged_weights(tmp_path, data_dir):
    cfg = finalize(
        compose_train(["callbacks=ema", "callbacks.ema.decay=0.9", "trainer.max_epochs=2"]),
        tmp_path / "run",
        data_dir,
    )
    module = build_module(cfg)
    datamodule = build_datamodule(cfg, module)
    trainer = build_trainer(cfg)
    (ema,) = [c for c in trainer.callbacks if isinstance(c, EMAWeights)]
    assert ema.decay == 0.9 and ema.warmup
    probe = _Probe()
    trainer.callbacks.append(probe)
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step > 2

    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    averaged, raw = _model_weights(ckpt["state_dict"]), _model_weights(ckpt["current_model_state"])
    assert not _equal(averaged, raw)  # the average is not the last weights
    assert _equal(averaged, _model_weights(ema.averaged.state_dict()))
    assert _equal(probe.seen["validation"], averaged)  # the last validation: averaged weights
    assert _equal(_model_weights(module.state_dict()), averaged)  # kept after training

    # predict: the checkpoint's averaged weights, and scores made with them
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert _equal(_model_weights(predictor.module.state_dict()), averaged)
    clip = np.random.default_rng(0).standard_normal(3 * 16000).astype("float32") * 0.1
    with_raw = copy.deepcopy(predictor.module)
    with_raw.model.load_state_dict(raw)
    scores = predictor.frame_scores(clip)
    predictor.module = with_raw.eval()
    assert not np.allclose(scores, predictor.frame_scores(clip), atol=1e-7)

    # the test of the best checkpoint after fit (as sed_lightning.train does) uses its
    # averaged weights, not the raw ones Lightning's WeightAveraging would load
    best = best_checkpoint(trainer)
    assert best
    trainer.test(module, datamodule=datamodule, ckpt_path=best, weights_only=False)
    best_ckpt = torch.load(best, weights_only=True)
    assert _equal(probe.seen["test"], _model_weights(best_ckpt["state_dict"]))
    assert not _equal(probe.seen["test"], _model_weights(best_ckpt["current_model_state"]))


def test_resume_restores_raw_and_averaged_weights(tmp_path, data_dir):
    overrides = ["callbacks=ema", "callbacks.ema.decay=0.9", "test=false"]
    cfg = finalize(compose_train(overrides), tmp_path / "run", data_dir)
    module = build_module(cfg)
    build_trainer(cfg).fit(module, datamodule=build_datamodule(cfg, module))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)

    resumed = build_module(cfg)
    trainer = build_trainer(cfg)  # max_epochs=1: restores, then nothing left to train
    trainer.fit(resumed, datamodule=build_datamodule(cfg, resumed), ckpt_path=str(last))
    (ema,) = [c for c in trainer.callbacks if isinstance(c, EMAWeights)]
    assert ema._latest_update_step == saved["global_step"]
    assert int(ema._average_model.n_averaged) == int(saved["averaging_state"]["n_averaged"])
    assert _equal(_model_weights(ema.averaged.state_dict()), _model_weights(saved["state_dict"]))
