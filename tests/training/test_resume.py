"""Crash and resume: a killed run resumed from its checkpoint ends exactly like a run that
was never interrupted (model, optimizer, scheduler, sampler position, random state)."""

from __future__ import annotations

import signal
import subprocess
import time

import lightning as L
import pandas as pd
import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from lightning.pytorch.trainer.connectors.logger_connector.logger_connector import (
    _LoggerConnector,
)

from sed_lightning.data.datamodule import SEDDataModule
from sed_lightning.data.sampler import MixedKindBatchSampler, ResumableDataLoader
from sed_lightning.train import train
from sed_lightning.training.preflight import ConfigError, config_differences
from tests.conftest import ROOT, compose_train, finalize
from tests.training.runs import assert_same_run, ensure_data, env, run_train, train_cmd

GROUPS = {"strong": list(range(10)), "weak": list(range(10, 40))}
SIZES = {"strong": 2, "weak": 3}


# --- the sampler's position ---------------------------------------------------------------


def test_sampler_resumes_mid_epoch_and_rolls_over_a_finished_epoch():
    full = MixedKindBatchSampler(GROUPS, SIZES, seed=1)
    full.set_epoch(2)
    epoch2 = list(full)
    resumed = MixedKindBatchSampler(GROUPS, SIZES, seed=1)
    resumed.load_state_dict({"epoch": 2, "batches_done": 4})
    assert list(resumed) == epoch2[4:]
    assert list(resumed) == epoch2  # the skip applies to one iteration only
    resumed.load_state_dict({"epoch": 2, "batches_done": len(resumed)})  # end of epoch 2
    full.set_epoch(3)
    assert resumed.epoch == 3 and list(resumed) == list(full)


def test_lightning_sets_the_epoch_of_the_batch_sampler():
    sampler = MixedKindBatchSampler(GROUPS, SIZES)
    loader = ResumableDataLoader(range(40), batch_sampler=sampler)
    _set_sampler_epoch(loader, 5)  # what the fit loop calls at each epoch start
    assert sampler.epoch == 5


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_state_counts_consumed_batches_despite_worker_prefetch(num_workers):
    def loader():
        return ResumableDataLoader(
            range(40), batch_sampler=MixedKindBatchSampler(GROUPS, SIZES), num_workers=num_workers
        )

    first = loader()
    it = iter(first)
    seen = [next(it).tolist() for _ in range(3)]  # workers have prefetched more than 3
    state = first.state_dict()
    assert state == {"epoch": 0, "batches_done": 3}
    rest = [b.tolist() for b in it]
    second = loader()
    second.load_state_dict(state)
    assert [b.tolist() for b in second] == rest
    assert second.state_dict()["batches_done"] == len(seen) + len(rest)


# --- whole runs -----------------------------------------------------------------------------


def test_killed_run_resumes_from_last_checkpoint_like_an_uninterrupted_run(tmp_path, data_dir):
    """SIGKILL after the first checkpoint, then ``hydra.run.dir=<run> ckpt_path=last``."""
    ensure_data(data_dir, tmp_path)
    common = ["trainer.max_epochs=3"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = subprocess.Popen(
        train_cmd(straight, data_dir, *common), cwd=ROOT, env=env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    victim = subprocess.Popen(
        train_cmd(killed, data_dir, *common), cwd=ROOT, env=env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    while victim.poll() is None and not last.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    # Lightning logs an epoch's training row (train/loss_epoch) just after that epoch's
    # checkpoint is written (a kill in between: test_a_crash_between_checkpoint_and_epoch_row_
    # keeps_the_row). Kill once the row is on disk, to test the file-level merge here.
    while (
        victim.poll() is None and not _has_train_epoch_row(killed) and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    _, err = victim.communicate()
    assert victim.returncode == -signal.SIGKILL, err[-3000:]
    assert not (killed / "metrics.json").exists()
    stopped_at = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert stopped_at < 2  # killed before its last epoch: there is something to resume

    run_train(killed, data_dir, *common, "ckpt_path=last")
    _, err = reference.communicate(timeout=240)
    assert reference.returncode == 0, err[-3000:]
    assert_same_run(killed, straight)
    # the training curves continue: rows before the checkpoint kept, none twice
    curves = pd.read_csv(killed / "csv" / "metrics.csv")
    assert curves.equals(pd.read_csv(straight / "csv" / "metrics.csv"))


def _has_train_epoch_row(run) -> bool:
    try:
        curves = pd.read_csv(run / "csv" / "metrics.csv")
    except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError):  # mid-write
        return False
    return "train/loss_epoch" in curves and bool(curves["train/loss_epoch"].notna().any())


class Crash(Exception):
    pass


class CrashAt(L.Callback):
    """Raises after ``step`` optimizer steps, like a machine going away mid-epoch."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            raise Crash(f"crash at step {trainer.global_step}")


@pytest.fixture
def resumable_train_loader(monkeypatch):
    """The training loader as a :class:`ResumableDataLoader` (whatever the datamodule
    returns), so that Lightning saves and restores its position."""
    original = SEDDataModule.train_dataloader

    def train_dataloader(self):
        loader = original(self)
        if isinstance(loader, ResumableDataLoader):
            return loader
        return ResumableDataLoader(
            loader.dataset,
            batch_sampler=loader.batch_sampler,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
            persistent_workers=loader.persistent_workers,
        )

    monkeypatch.setattr(SEDDataModule, "train_dataloader", train_dataloader)


def test_mid_epoch_checkpoint_resumes_at_the_next_batch(tmp_path, data_dir, resumable_train_loader):
    # last.ckpt after every optimizer step (3 per epoch)
    every_step = [
        "trainer.max_epochs=2",
        "callbacks.last_checkpoint.every_n_train_steps=1",
    ]

    def run(name: str, *extra: str) -> dict[str, float]:
        return train(finalize(compose_train([*every_step, *extra]), tmp_path / name, data_dir))

    run("straight")
    crash = "+callbacks.crash={_target_: tests.training.test_resume.CrashAt, step: 5}"
    with pytest.raises(Crash):
        run("crashed", crash)
    ckpt = torch.load(tmp_path / "crashed/checkpoints/last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4  # epoch 1, after its first batch: mid-epoch
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches_done": 1}
    ]
    run("crashed", "ckpt_path=last")
    assert_same_run(tmp_path / "crashed", tmp_path / "straight")


@pytest.mark.parametrize("on_train_epoch_end", [True, False], ids=["epoch-end", "val-end"])
def test_a_crash_between_checkpoint_and_epoch_row_keeps_the_row(
    tmp_path, data_dir, monkeypatch, on_train_epoch_end
):
    """Lightning writes the epoch's checkpoint (at the end of the epoch or of validation)
    before it logs the epoch's training row: crash exactly there, then resume."""
    where = f"callbacks.last_checkpoint.save_on_train_epoch_end={on_train_epoch_end}"

    def run(name: str, *extra: str) -> dict[str, float]:
        cfg = compose_train(["trainer.max_epochs=3", f"+{where}", *extra])
        return train(finalize(cfg, tmp_path / name, data_dir))

    run("straight")
    log_row = _LoggerConnector.update_train_epoch_metrics

    def crash_before_epoch_1_row(self):
        if self.trainer.current_epoch == 1:
            raise Crash("between the checkpoint and the epoch's training row")
        log_row(self)

    monkeypatch.setattr(_LoggerConnector, "update_train_epoch_metrics", crash_before_epoch_1_row)
    with pytest.raises(Crash):
        run("crashed")
    crashed = tmp_path / "crashed"
    assert torch.load(crashed / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1
    assert pd.read_csv(crashed / "csv/metrics.csv")["train/loss_epoch"].notna().sum() == 1
    monkeypatch.setattr(_LoggerConnector, "update_train_epoch_metrics", log_row)
    run("crashed", "ckpt_path=last")
    assert_same_run(crashed, tmp_path / "straight")
    curves = pd.read_csv(crashed / "csv/metrics.csv")
    assert curves["train/loss_epoch"].notna().sum() == 3
    pd.testing.assert_frame_equal(curves, pd.read_csv(tmp_path / "straight/csv/metrics.csv"))


def test_ckpt_path_last_without_a_checkpoint_names_the_fix(tmp_path, data_dir):
    cfg = finalize(compose_train(["ckpt_path=last"]), tmp_path / "run", data_dir)
    with pytest.raises(ConfigError, match=r"hydra.run.dir=.*ckpt_path=last"):
        train(cfg)
    cfg = finalize(compose_train(["ckpt_path=/nowhere/x.ckpt"]), tmp_path / "run", data_dir)
    with pytest.raises(ConfigError, match="/nowhere/x.ckpt"):
        train(cfg)


def test_config_changes_against_the_checkpoint_are_listed(tmp_path, data_dir):
    cfg = finalize(compose_train(), tmp_path / "run", data_dir)
    from omegaconf import OmegaConf

    saved = OmegaConf.to_container(cfg, resolve=True)
    saved["model"]["encoder"]["d_model"] = 32
    assert config_differences(cfg, saved) == ["model.encoder.d_model: 32 -> 16"]
