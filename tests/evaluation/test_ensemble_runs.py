"""The ensemble of saved runs (``sed-tools ensemble``): the fake runs of the
tuning tests, where one member keeps a false positive that the other scores low."""

from __future__ import annotations

import json
from functools import partial

import pytest

from sed_lightning.evaluation.scores import read_scores
from sed_lightning.postprocessing.saved_runs import (
    load_split,
    run_postprocess,
)
from sed_lightning.postprocessing.tuning import (
    evaluate_split,
)
from sed_lightning.tools import main
from tests.postprocessing.test_tuning import clip_scores, fake_run


@pytest.fixture
def members(tmp_path):
    """``a``: knock's false positive at 0.6 (kept by the 0.5 threshold); ``b``: at 0.2."""
    a = fake_run(tmp_path / "a")
    b = fake_run(tmp_path / "b", scores=partial(clip_scores, fp_score=0.2))
    return a, b


def test_the_mean_scores_drop_a_false_positive_only_one_member_makes(tmp_path, members, capsys):
    out = tmp_path / "ens"
    main(["ensemble", *map(str, members), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "| ensemble |" in printed
    got = read_scores(out / "val_scores")["val_000"]["knock"].to_numpy()
    assert got[60:90] == pytest.approx([0.4] * 30)  # (0.6 + 0.2) / 2 under the 0.5 threshold
    assert got[20:40] == pytest.approx([0.95] * 20)
    val = json.loads((out / "metrics_val.json").read_text())
    # the first member's decoder (threshold 0.5, no window): member a finds knock and keeps
    # its false positive (F1 2/3); the ensemble finds it alone (F1 1)
    assert val["val/event_f1/knock"] == pytest.approx(1.0)
    alone = load_split(members[0], "val")
    own = evaluate_split(alone, run_postprocess(members[0]), prefix="val/")
    assert own["val/event_f1/knock"] == pytest.approx(2 / 3)
    # a run folder of its own: tuned on its validation scores, then its test scored
    for name in ("postprocess_tuned.yaml", "metrics_tuned.json", "metrics.json", "scores"):
        assert (out / name).exists(), name
    assert json.loads((out / "ensemble.json").read_text())["members"] == [
        str(m.resolve()) for m in members
    ]
    assert json.loads((out / "metrics_tuned.json").read_text())["test/event_f1/knock"] == 1.0


def test_no_tune_reads_no_test_file_and_bad_members_are_named(tmp_path, members):
    out = tmp_path / "ens"
    main(["ensemble", *map(str, members), "--out", str(out), "--no-tune"])
    assert (out / "metrics_val.json").is_file() and not (out / "scores").exists()
    other = fake_run(tmp_path / "short")
    (other / "val_scores" / "val_001.tsv").unlink()
    with pytest.raises(SystemExit, match=r"^sed-tools ensemble: .*short: not the clips of"):
        main(["ensemble", str(members[0]), str(other), "--out", str(tmp_path / "e2")])
    with pytest.raises(SystemExit, match="is not an ensemble folder"):
        main(["ensemble", *map(str, members), "--out", str(other)])  # a run: never overwritten
    assert (other / "val_scores" / "val_000.tsv").is_file()
    with pytest.raises(SystemExit, match="is one of the members"):
        main(["ensemble", *map(str, members), "--out", str(members[1])])
    with pytest.raises(SystemExit, match="val_scores: no such folder"):
        main(["ensemble", str(members[0]), str(tmp_path), "--out", str(tmp_path / "e3")])
