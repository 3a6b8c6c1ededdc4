"""``trainer=ddp``: two CPU processes (gloo) through the real entry point."""

from __future__ import annotations

import json
from collections import Counter

from tests.training.runs import ensure_data, metrics, run_train

HEADLINE = ["test/event_f1", "test/segment_f1", "test/psds1", "test/psds2", "test/clip_map"]


def test_ddp_scores_every_evaluation_clip_exactly_once(tmp_path, data_dir):
    ensure_data(data_dir, tmp_path)
    run = tmp_path / "ddp"
    proc = run_train(run, data_dir, "trainer=ddp", "trainer.devices=2")
    shards = json.loads((run / "eval_shards.json").read_text())
    expected = {"val": 4, "test": 5}  # clips in the tiny validation / test sets
    assert set(shards) == set(expected)
    for stage, by_rank in shards.items():
        assert len(by_rank) == 2 and all(by_rank), f"{stage}: every process scores some clips"
        twice = set(by_rank[0]) & set(by_rank[1])
        assert not twice, (
            f"{stage}: {len(twice)} clips scored by both processes (unsharded loader?)"
        )
        counts = Counter(f for files in by_rank for f in files)
        assert len(counts) == expected[stage] and set(counts.values()) == {1}
    assert "scored by more than one process" not in proc.stdout + proc.stderr
    saved = metrics(run)
    assert all(0.0 <= saved[k] <= 1.0 for k in HEADLINE)
    # one process wrote the outputs; the second process logged into its own file
    assert (run / "train_ddp_process_1.log").is_file()
