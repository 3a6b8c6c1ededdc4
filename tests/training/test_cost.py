"""What a run costs (sed_lightning.training.cost): MACs, parameters, the energy meter, and
cost.json of real tiny runs."""

from __future__ import annotations

import json
import socket

import codecarbon
import pytest
import torch
from torch import nn

from sed_lightning.train import train
from sed_lightning.training.cost import (
    COST_FILE,
    EnergyMeter,
    RunCost,
    clip_macs,
    count_macs,
    parameter_counts,
    read_cost,
    settings_of,
)
from tests.conftest import compose_train, finalize

SETTINGS = settings_of({"enabled": True, "measure_power_secs": 1.0})


def test_macs_of_a_linear_and_a_conv_equal_the_hand_count():
    # Linear 10 -> 4 on 3 rows: 3 * 10 * 4 multiply-accumulates (the bias is an addition)
    assert count_macs(nn.Linear(10, 4), torch.zeros(3, 10)) == 120
    # Conv2d 2 -> 8 channels, 3x3, padding 1, on 5x5: 8 * 5 * 5 outputs, 2 * 3 * 3 MACs each
    conv = nn.Conv2d(2, 8, 3, padding=1)
    assert count_macs(conv, torch.zeros(1, 2, 5, 5)) == 8 * 5 * 5 * 2 * 3 * 3  # 3600
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(200, 4))
    assert count_macs(net, torch.zeros(1, 2, 5, 5)) == 3600 + 200 * 4


def test_mac_count_leaves_mode_and_random_state_alone():
    net = nn.Sequential(nn.Linear(160, 8), nn.Dropout(0.5)).train()
    state = torch.random.get_rng_state()
    assert clip_macs(net, sample_rate=16, seconds=10.0) == 160 * 8
    assert net.training
    assert torch.equal(torch.random.get_rng_state(), state)


def test_parameter_counts_tell_trainable_from_frozen():
    net = nn.Sequential(nn.Linear(10, 4), nn.Linear(4, 2))
    net[0].requires_grad_(False)
    assert parameter_counts(net) == {"total": 44 + 10, "trainable": 10}


def test_switched_off_by_none_or_enabled_false(tmp_path):
    for off in (None, {"enabled": False}):
        cost = RunCost(off)
        with cost.phase("fit"):
            pass
        assert not cost.enabled and cost.write(tmp_path) is None
    assert not (tmp_path / COST_FILE).exists()
    assert compose_train(["cost=none"]).cost is None
    assert compose_train(["cost.enabled=false"]).cost.enabled is False


class RaisingTracker:
    """Stands in for CodeCarbon's tracker: fails on ``start`` or ``stop``."""

    fail_on = "start"

    def __init__(self, **kwargs):
        pass

    def start(self):
        if self.fail_on == "start":
            raise RuntimeError("no power reading")

    def stop(self):
        raise RuntimeError("no power reading")


@pytest.mark.parametrize("step", ["start", "stop"])
def test_a_failing_tracker_is_a_warning_and_missing_figures(monkeypatch, caplog, step):
    monkeypatch.setattr(RaisingTracker, "fail_on", step)
    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", RaisingTracker)
    with EnergyMeter(SETTINGS) as meter:
        pass
    assert meter.result["energy_kwh"] is None and meter.result["method"] is None
    assert f"failed to {step}: RuntimeError: no power reading" in meter.result["missing"]
    assert "energy not measured" in caplog.text


def test_the_tracker_makes_no_network_call(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("network refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with EnergyMeter(SETTINGS) as meter:
        sum(i * i for i in range(200_000))
    assert calls == []
    assert meter.result["missing"] is None
    assert meter.result["energy_kwh"] > 0
    assert meter.result["method"]  # e.g. "TDP estimate" on a VM without RAPL
    assert meter.result["tracking_mode"] == "process"


def test_older_runs_without_cost_json_read_as_nothing(tmp_path):
    assert read_cost(tmp_path) == {}
    (tmp_path / COST_FILE).write_text("{not json")
    assert read_cost(tmp_path) == {}


# ---------------------------------------------------------------- real tiny runs


def test_a_tiny_run_writes_its_cost(tmp_path, data_dir):
    run = tmp_path / "run"
    cfg = finalize(compose_train(["postprocess=tuned_median"]), run, data_dir)
    train(cfg)
    cost = json.loads((run / COST_FILE).read_text())
    assert cost["params"]["total"] >= cost["params"]["trainable"] > 1000
    assert cost["macs_per_clip"] > 1e6 and cost["clip_seconds"] == 10.0
    assert list(cost["phases"]) == ["fit", "test", "val_scores", "tune"]
    for phase in cost["phases"].values():
        assert phase["wall_s"] > 0
        assert phase["energy_kwh"] > 0 and phase["missing"] is None
        assert phase["method"] and phase["method_detail"]
    assert cost["method"] == cost["phases"]["fit"]["method"]
    assert cost["energy_tracker"]["country_iso_code"] == "FRA"
    flat = read_cost(run)  # what the report and the benchmarks read
    assert flat["cost/macs_per_clip"] == cost["macs_per_clip"]
    assert flat["cost/fit_kwh"] == cost["phases"]["fit"]["energy_kwh"]
    assert flat["cost/test_s"] == cost["phases"]["test"]["wall_s"]


def test_a_failing_tracker_leaves_a_real_run_green(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", RaisingTracker)
    run = tmp_path / "run"
    metrics = train(finalize(compose_train(["debug=fdr"]), run, data_dir))
    assert "test/event_f1" in metrics
    cost = json.loads((run / COST_FILE).read_text())
    assert cost["macs_per_clip"] > 0  # the network's figures do not need the tracker
    for phase in cost["phases"].values():
        assert phase["wall_s"] > 0 and phase["energy_kwh"] is None
        assert "CodeCarbon failed to start" in phase["missing"]
    assert cost["method"] is None
    assert "cost/fit_kwh" not in read_cost(run) and "cost/fit_s" in read_cost(run)
