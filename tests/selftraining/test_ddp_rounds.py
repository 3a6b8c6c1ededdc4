"""Self-training under DDP: only global rank 0 labels and writes the round files; the other
processes wait for it and read them. Hand-made rank simulations, then a real 2-process run."""

from __future__ import annotations

import json
import threading
import time

import pytest

from sed_lightning.selftraining import rounds
from tests.training.runs import ensure_data, run_train

LINEAGE = {
    "round": 1,
    "labelled_by": "/runs/round_0/checkpoints/best-epoch000.ckpt",
    "n_pseudo_clips": 2,
    "clips": ["u1.wav", "u2.wav"],
    "pseudo_labels": "/runs/round_1/pseudo_labels.tsv",
    "audio_dir": "/data/unlabeled",
}
PREVIOUS = {"best_checkpoint": LINEAGE["labelled_by"], "pseudo_clips": []}


def _as_rank(monkeypatch, rank):
    barriers = []
    monkeypatch.setattr(rounds, "global_rank", lambda: rank)
    monkeypatch.setattr(rounds, "barrier", lambda: barriers.append(rank))
    monkeypatch.setattr(rounds, "write_pseudo_labels", _must_not_label)
    return barriers


def _must_not_label(*args, **kwargs):
    raise AssertionError("this process must not label")


def test_another_rank_reads_rank_zeros_lineage_and_writes_nothing(tmp_path, monkeypatch):
    barriers = _as_rank(monkeypatch, 1)
    out = tmp_path / "round_1"
    out.mkdir()
    rounds.write_json(out / "lineage.json", LINEAGE)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert rounds.pseudo_label(cfg=None, k=1, out=out, previous=PREVIOUS) == LINEAGE
    assert barriers == [1]  # waited for rank 0 first
    rounds.save_summary(tmp_path, {"rounds": [{"round": 0}]})
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no rounds.json, no labels


def test_another_rank_waits_until_rank_zero_wrote_the_lineage(tmp_path, monkeypatch):
    _as_rank(monkeypatch, 1)
    monkeypatch.setattr(rounds, "WAIT_S", 0.3)
    with pytest.raises(TimeoutError, match="lineage.json"):
        rounds.pseudo_label(cfg=None, k=1, out=tmp_path, previous=PREVIOUS)
    stale = {**LINEAGE, "labelled_by": "/an/earlier/attempt.ckpt"}
    rounds.write_json(tmp_path / "lineage.json", stale)
    with pytest.raises(TimeoutError, match="lineage.json"):  # not the one of this round
        rounds.pseudo_label(cfg=None, k=1, out=tmp_path, previous=PREVIOUS)
    monkeypatch.setattr(rounds, "WAIT_S", 30.0)
    writer = threading.Timer(0.5, rounds.write_json, (tmp_path / "lineage.json", LINEAGE))
    writer.start()
    started = time.monotonic()
    assert rounds.pseudo_label(cfg=None, k=1, out=tmp_path, previous=PREVIOUS) == LINEAGE
    assert time.monotonic() - started >= 0.4
    writer.join()


def test_rank_zero_writes_the_summary_and_reuses_an_interrupted_rounds_labels(
    tmp_path, monkeypatch
):
    barriers = _as_rank(monkeypatch, 0)
    rounds.save_summary(tmp_path, {"rounds": [{"round": 0}]})
    assert json.loads((tmp_path / "rounds.json").read_text()) == {"rounds": [{"round": 0}]}
    rounds.write_json(tmp_path / "lineage.json", LINEAGE)  # an earlier attempt of round 1
    assert rounds.pseudo_label(cfg=None, k=1, out=tmp_path, previous=PREVIOUS) == LINEAGE
    assert barriers == [0]  # the others are released after rank 0 is done
    other = {**PREVIOUS, "best_checkpoint": "/elsewhere/best.ckpt"}
    with pytest.raises(AssertionError, match="must not label"):  # another model: relabel
        rounds.pseudo_label(cfg=None, k=1, out=tmp_path, previous=other)


def test_self_training_with_two_ddp_processes(tmp_path, data_dir):
    ensure_data(data_dir, tmp_path)
    run_dir = tmp_path / "st_ddp"
    run_train(
        run_dir,
        data_dir,
        "trainer=ddp",
        "trainer.devices=2",
        "self_training.rounds=1",
        "self_training.thresholds=0.0",
        timeout=480,
    )
    summary = json.loads((run_dir / "rounds.json").read_text())
    r0, r1 = summary["rounds"]
    lineage = json.loads((run_dir / "rounds" / "round_1" / "lineage.json").read_text())
    assert lineage["labelled_by"] == r0["best_checkpoint"] == r1["labelled_by"]
    assert lineage["n_pseudo_clips"] == lineage["n_unlabeled"] == 4  # threshold 0: every clip
    assert r1["n_weak_clips"] == r0["n_weak_clips"] + 4
    main_log = (run_dir / "train.log").read_text()
    other_log = (run_dir / "train_ddp_process_1.log").read_text()
    assert "4 of 4 unlabeled clips pseudo-labelled by" in main_log
    assert "pseudo-labelled by" not in other_log  # rank 1 never labelled ...
    assert "round 1: rank 1 reads the 4 pseudo-labelled clips rank 0 wrote" in other_log
    assert not list(run_dir.rglob("*.tmp"))
