"""scheduler=cosine: the warm-up + cosine curve, its length taken from the trainer, the curve
kept in the checkpoint (a resumed run continues it)."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from sed_lightning.train import train
from sed_lightning.training.checkpoints import read_checkpoint
from sed_lightning.training.preflight import ConfigError
from sed_lightning.training.schedules import WarmupCosineFactor, WarmupCosineLR, make_scheduler
from tests.conftest import TINY, compose_train, finalize


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_factor_known_points():
    f = WarmupCosineFactor(warmup_steps=4, total_steps=12, min_factor=0.1, start_factor=0.0)
    assert [f(s) for s in (0, 2, 4)] == pytest.approx([0.0, 0.5, 1.0])
    assert f(8) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the cosine
    assert f(12) == pytest.approx(0.1) and f(50) == pytest.approx(0.1)  # held at the floor
    assert all(f(s) >= f(s + 1) for s in range(4, 15))  # decreasing after the warm-up


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"warmup_steps": 10, "total_steps": 10}, "must exceed"),
        ({"warmup_steps": 1, "total_steps": 10, "min_factor": 1.5}, "min_factor"),
    ],
)
def test_factor_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WarmupCosineFactor(**kwargs)


def test_total_steps_is_filled_in_only_when_missing():
    opt = _optimizer()
    filled = make_scheduler(
        partial(WarmupCosineLR, warmup_steps=2, total_steps=None), opt, lambda: 40
    )
    assert filled.lr_lambdas[0].total_steps == 40
    given = make_scheduler(
        partial(WarmupCosineLR, warmup_steps=2, total_steps=7), _optimizer(), lambda: 40
    )
    assert given.lr_lambdas[0].total_steps == 7
    with pytest.raises(ValueError, match="needs total_steps"):
        WarmupCosineLR(_optimizer(), warmup_steps=2)

    # a schedule without total_steps is built as before
    def never() -> int:  # a schedule without total_steps must not ask the trainer
        raise AssertionError("total steps asked for")

    linear = make_scheduler(
        partial(torch.optim.lr_scheduler.LinearLR, total_iters=3), _optimizer(), never
    )
    assert isinstance(linear, torch.optim.lr_scheduler.LinearLR)


def test_a_warm_up_longer_than_the_run_is_a_config_error_naming_the_keys():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(
        ConfigError,
        match=r"scheduler: total_steps \(68\) must exceed warmup_steps \(100\): lower "
        r"warmup_steps or train longer; the run has 68 optimizer steps",
    ):
        make_scheduler(partial(WarmupCosineLR, warmup_steps=100), opt, lambda: 68)
    assert make_scheduler(partial(WarmupCosineLR, warmup_steps=100), opt, lambda: 101)
    with pytest.raises(ConfigError, match=r"scheduler: min_factor") as err:
        make_scheduler(partial(WarmupCosineLR, min_factor=2.0), opt, lambda: 500)
    assert "warmup_steps" not in str(err.value)  # each error names only its own setting


def test_a_real_run_shorter_than_its_warm_up_stops_with_a_config_error(tmp_path, data_dir):
    # train.main turns a ConfigError into one line, no traceback (test_config_errors)
    cfg = finalize(
        compose_train(
            [
                *(o for o in TINY if not o.startswith("scheduler.")),
                "scheduler=cosine",
                "scheduler.warmup_steps=10000",
            ],
            tiny=False,
        ),
        tmp_path / "run",
        data_dir,
    )
    with pytest.raises(ConfigError, match=r"scheduler: .*lower warmup_steps"):
        train(cfg)


def test_state_dict_round_trip_continues_the_curve():
    opt = _optimizer()
    sched = WarmupCosineLR(opt, warmup_steps=2, total_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = _optimizer()
    sched2 = WarmupCosineLR(opt2, warmup_steps=50, total_steps=500)  # other settings...
    sched2.load_state_dict(state)  # ...replaced by the saved ones
    opt2.step()
    sched2.step()
    opt.step()
    sched.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_a_real_run_decays_to_zero_at_its_last_step(tmp_path, data_dir):
    cfg = finalize(
        compose_train(
            [
                *(o for o in TINY if not o.startswith("scheduler.")),  # warmup's keys
                "scheduler=cosine",
                "scheduler.warmup_steps=1",
                "trainer.max_epochs=2",
                "test=false",
            ],
            tiny=False,
        ),
        tmp_path / "run",
        data_dir,
    )
    train(cfg)
    (last,) = (tmp_path / "run" / "checkpoints").glob("last*.ckpt")
    ckpt = read_checkpoint(last)
    steps = ckpt["global_step"]
    assert steps >= 4  # 2 epochs of at least 2 batches: the curve has a middle
    (sched_state,) = ckpt["lr_schedulers"]
    assert sched_state["lr_lambdas"][0]["total_steps"] == steps  # from the trainer
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
