"""What a sweep optimizes: the validation metrics of the tested (best) checkpoint, not of the
last epoch; and checkpoints load tensors-only, a crafted one is refused naming the file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from sed_lightning.train import train
from sed_lightning.training.checkpoints import VAL_METRICS_KEY, read_checkpoint, val_metrics
from sed_lightning.training.preflight import ConfigError
from tests.conftest import compose_train, finalize

OLD_CKPT = Path(__file__).resolve().parents[1] / "fixtures" / "torchaudio_era" / "tiny.ckpt"


def test_train_returns_the_best_checkpoints_validation_metrics(tmp_path, data_dir):
    # "best" = the HIGHEST validation loss: an early epoch, never the last one of a run
    # whose validation loss falls (checked below, so the test cannot pass vacuously)
    overrides = [
        "trainer.max_epochs=3",
        "callbacks.model_checkpoint.monitor=val/loss",
        "callbacks.model_checkpoint.mode=max",
        "optimized_metric=val/loss",
        "test=false",
    ]
    cfg = finalize(compose_train(overrides), tmp_path / "run", data_dir)
    metrics = train(cfg)
    logged = pd.read_csv(tmp_path / "run" / "csv" / "metrics.csv")
    per_epoch = logged.dropna(subset=["val/loss"]).groupby("epoch")["val/loss"].last()
    assert len(per_epoch) == 3
    best_epoch = int(per_epoch.idxmax())
    assert best_epoch != 2, "precondition: the best epoch is not the last one"
    assert metrics[cfg.optimized_metric] == pytest.approx(per_epoch[best_epoch], rel=1e-6)
    assert metrics["val/loss"] != pytest.approx(per_epoch[2], rel=1e-6)
    # the metrics travel in the checkpoint that is tested
    (best,) = (tmp_path / "run" / "checkpoints").glob("best-*.ckpt")
    assert best.name == f"best-epoch{best_epoch:03d}.ckpt"
    saved = val_metrics(best)
    assert saved["val/loss"] == pytest.approx(per_epoch[best_epoch], rel=1e-6)
    assert saved["val/event_f1"] == pytest.approx(metrics["val/event_f1"])
    assert "train/loss" in metrics  # training metrics stay those of the last epoch


def test_an_old_checkpoint_has_no_validation_metrics():
    assert VAL_METRICS_KEY not in read_checkpoint(OLD_CKPT)
    assert val_metrics(OLD_CKPT) == {}


class _Payload:
    """Unpickling this runs ``os.system`` (what a malicious checkpoint would carry)."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_resuming_from_a_crafted_checkpoint_is_refused_naming_the_file(
    tmp_path, data_dir, monkeypatch
):
    checkpoint = torch.load(OLD_CKPT, map_location="cpu", weights_only=True)
    checkpoint["callbacks"] = {"hook": _Payload()}
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match=r"ckpt_path: .*crafted\.ckpt: checkpoint refused as unsafe"
    ):
        read_checkpoint(crafted, "ckpt_path")
    cfg = finalize(compose_train([f"ckpt_path={crafted}"]), tmp_path / "run", data_dir)
    with pytest.raises(ConfigError, match=r"crafted\.ckpt.*could run code"):
        train(cfg)
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained
    # the same checkpoint without the payload resumes (tensors-only loading works)
    shutil.copy(OLD_CKPT, tmp_path / "old.ckpt")
    assert read_checkpoint(tmp_path / "old.ckpt")["epoch"] == 1
