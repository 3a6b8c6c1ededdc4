"""The CPU speed switches keep the numbers: bf16 autocast, torch.compile, channels-last,
dropout placement."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from sed_lightning.losses.sed_loss import summed_bce
from sed_lightning.models.cnn import CNN
from tests.conftest import compose_train


def tiny_parts(*overrides: str):
    cfg = compose_train(list(overrides))
    frontend = instantiate(cfg.features)
    torch.manual_seed(0)
    net = instantiate(cfg.model)(n_classes=6, n_mels=frontend.n_features)
    return frontend, net


def fixed_batch():
    g = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(4, 48000, generator=g)
    return audio, g


def test_bf16_cpu_training_step_loss_is_within_1e_2_of_fp32():
    frontend, net = tiny_parts()
    net.train()
    audio, g = fixed_batch()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    losses = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        net.load_state_dict(state)
        torch.manual_seed(2)  # the same dropout masks
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(frontend(audio))
        target = (
            torch.rand(out.strong.shape, generator=torch.Generator().manual_seed(3)) > 0.7
        ).float()
        loss = summed_bce(out.strong, target)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
        net.zero_grad()
        losses[name] = loss.item()
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=1e-2)


def test_compiled_model_outputs_equal_eager_within_1e_4():
    frontend, net = tiny_parts()
    net.eval()
    audio, _ = fixed_batch()
    with torch.no_grad():
        features = frontend(audio)
        eager = net(features).strong
        compiled = torch.compile(net)
        out = compiled(features).strong
    torch.testing.assert_close(out, eager, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "switch",
    [
        "model.cnn.channels_last=true",
        "model.cnn.dropout_after_pool=true",
        "model.cnn.dropout_kind=channel",
    ],
)
def test_speed_switches_give_the_same_eval_outputs_and_state_dict_keys(switch):
    frontend, base = tiny_parts()
    _, switched = tiny_parts(switch)
    assert switched.state_dict().keys() == base.state_dict().keys()
    switched.load_state_dict(base.state_dict())  # a checkpoint moves between the settings
    base.eval(), switched.eval()
    audio, _ = fixed_batch()
    with torch.no_grad():
        features = frontend(audio)
        torch.testing.assert_close(switched(features).strong, base(features).strong)


def test_dropout_after_pool_drops_on_the_pooled_map():
    cnn = CNN(n_mels=8, channels=[4], pooling=[[2, 2]], dropout=0.5, dropout_after_pool=True)
    names = [type(m).__name__ for m in cnn.blocks[0].block]
    assert names.index("AvgPool2d") < names.index("Dropout")
