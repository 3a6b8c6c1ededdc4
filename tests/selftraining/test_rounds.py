"""Self-training rounds end to end: a real 2-round run in a subprocess, killed during round 2
and started again (it resumes at round 2)."""

import json
import subprocess
import time

import pandas as pd

from tests.conftest import ROOT
from tests.training.runs import ensure_data, env, run_train, train_cmd

ROUNDS = ["self_training.rounds=2", "self_training.thresholds={default: 0.0, alarm: 0.3}"]


def summary(run_dir):
    return json.loads((run_dir / "rounds.json").read_text())


def test_two_rounds_killed_in_round_two_resume_there(tmp_path, data_dir):
    ensure_data(data_dir, tmp_path)
    run_dir = tmp_path / "st"
    proc = subprocess.Popen(
        train_cmd(run_dir, data_dir, *ROUNDS),
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = run_dir / "rounds" / "round_2" / "pseudo_labels.tsv"
    deadline = time.time() + 240
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    assert marker.exists(), "round 2 never started"
    before = summary(run_dir)
    assert [r["round"] for r in before["rounds"]] == [0, 1]  # killed inside round 2
    assert not (run_dir / "rounds" / "round_2" / "metrics.json").exists()

    restart = run_train(run_dir, data_dir, *ROUNDS)
    log = restart.stdout + restart.stderr
    assert "round 0 finished earlier" in log and "round 1 finished earlier" in log
    after = summary(run_dir)
    assert after["n_rounds"] == 2
    assert [r["round"] for r in after["rounds"]] == [0, 1, 2]
    assert after["rounds"][:2] == before["rounds"]  # finished rounds untouched
    r0, r1, r2 = after["rounds"]
    for r in after["rounds"]:
        assert (run_dir / "rounds" / f"round_{r['round']}" / "metrics.json").exists()
        assert set(r["test"]) >= {"test/event_f1", "test/psds1"}
    # round K is labelled by, and starts from, round K-1's best checkpoint
    assert r1["labelled_by"] == r0["best_checkpoint"] == r1["init_from"]
    assert r2["labelled_by"] == r1["best_checkpoint"]
    assert (
        r2["delta_prev"]["test/event_f1"]
        == r2["test"]["test/event_f1"] - r1["test"]["test/event_f1"]
    )
    # threshold 0 for every class but alarm: every unlabeled clip gets every other class
    pseudo = pd.read_csv(marker, sep="\t", dtype=str, keep_default_na=False)
    assert list(pseudo.columns) == ["filename", "event_labels"]
    assert all({"speech", "dog_bark"} <= set(x.split(",")) for x in pseudo["event_labels"])
    lineage = json.loads((marker.parent / "lineage.json").read_text())
    assert lineage["thresholds"]["alarm"] == 0.3 and lineage["thresholds"]["speech"] == 0.0
    assert lineage["labelled_by"] == r1["best_checkpoint"]
    # the weak set grew by the pseudo-labelled clips
    assert r1["n_pseudo_clips"] == r2["n_pseudo_clips"] == lineage["n_unlabeled"] > 0
    assert r1["n_weak_clips"] == r0["n_weak_clips"] + r1["n_pseudo_clips"]
    assert r2["n_weak_clips"] >= r1["n_weak_clips"]
