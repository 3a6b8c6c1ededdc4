"""``logger=wandb`` with no network and no API key: the run logs offline and never waits."""

from __future__ import annotations

import json
import os

from omegaconf import open_dict

from sed_lightning.training.preflight import configure_wandb
from tests.conftest import compose_train
from tests.training.runs import ensure_data, env, metrics, run_train
from tests.training.wandb_log import logged


def test_wandb_logger_runs_offline_without_network_or_key(tmp_path, data_dir):
    ensure_data(data_dir, tmp_path)
    unreachable = "http://127.0.0.1:9"  # any connection attempt fails at once
    offline_env = env(
        HOME=str(tmp_path / "home"),  # no ~/.netrc, no W&B settings
        WANDB_BASE_URL=unreachable,
        HTTP_PROXY=unreachable,
        HTTPS_PROXY=unreachable,
    )
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "NETRC"):
        offline_env.pop(key, None)
    run = tmp_path / "run"
    run_train(run, data_dir, "logger=wandb", env=offline_env, timeout=120)
    (log_file,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    history = logged(log_file, "history")
    assert {"train/loss_epoch", "val/event_f1", "test/event_f1"} <= set(history)
    assert history["test/event_f1"] == metrics(run)["test/event_f1"]
    # the run's cost (cost.json) is in the W&B summary
    cost = json.loads((run / "cost.json").read_text())
    summary = logged(log_file, "summary")
    assert summary["cost/macs_per_clip"] == cost["macs_per_clip"]
    assert summary["cost/params_total"] == cost["params"]["total"]
    assert summary["cost/fit_kwh"] == cost["phases"]["fit"]["energy_kwh"]
    assert summary["cost/test_s"] == cost["phases"]["test"]["wall_s"]
    assert summary["cost/energy_method"] == cost["method"]


def test_wandb_online_without_a_key_falls_back_to_offline(monkeypatch, tmp_path):
    for var in ("WANDB_MODE", "WANDB_SILENT"):  # set here so that teardown restores them
        monkeypatch.setenv(var, "")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cfg = compose_train(["logger=wandb", "logger.wandb.offline=false"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    configure_wandb(cfg)
    assert cfg.logger.wandb.offline is True
    assert os.environ["WANDB_MODE"] == "offline"
