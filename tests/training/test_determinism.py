"""Same seed, same config, CPU: the same metrics.json and the same weights."""

from __future__ import annotations

from sed_lightning.train import train
from tests.conftest import compose_train, finalize
from tests.training.runs import assert_same_run, weights


def test_same_seed_gives_identical_runs(tmp_path, data_dir):
    cfg = compose_train()
    assert cfg.trainer.deterministic is True  # the CPU default
    for name in ("first", "second"):
        train(finalize(compose_train(), tmp_path / name, data_dir))
    assert_same_run(tmp_path / "first", tmp_path / "second")
    train(finalize(compose_train(["seed=7", "test=false"]), tmp_path / "other", data_dir))
    a, b = (
        weights(tmp_path / "first/checkpoints/last.ckpt"),
        weights(tmp_path / "other/checkpoints/last.ckpt"),
    )
    assert any(not a[k].equal(b[k]) for k in a)  # and the seed matters
