"""Sound event bounding boxes (postprocess via the `sebbs` package): known boxes from
hand-made score curves, tuning on validation only, and ``sed-tools tune --method sebbs``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from sed_lightning.postprocessing.sebbs import SEBBsPostProcessor
from sed_lightning.tools import main
from tests.conftest import CLASSES
from tests.postprocessing.test_tuning import HOP, fake_run

pytest.importorskip("sebbs")


def _df(curves: dict[str, np.ndarray], hop: float = 0.1) -> pd.DataFrame:
    n = len(next(iter(curves.values())))
    t = np.arange(n + 1) * hop
    return pd.DataFrame({"onset": t[:-1], "offset": t[1:], **curves})


def test_a_shallow_dip_is_merged_a_deep_gap_is_not():
    y = np.full(100, 0.02)
    y[10:30] = 0.9
    y[30:33] = 0.7  # shallow dip: same event
    y[33:50] = 0.9
    y[70:80] = 0.8  # after a deep gap: another event
    scores = {"clip": _df({"dog": y})}
    merged = SEBBsPostProcessor(
        ["dog"], 0.2, merge_threshold_abs=0.3, merge_threshold_rel=np.inf, detection_threshold=0.5
    )
    table = merged(scores)
    assert table[["onset", "offset"]].round(6).values.tolist() == [[1.0, 5.0], [7.0, 8.0]]
    split = SEBBsPostProcessor(
        ["dog"], 0.2, merge_threshold_abs=0.1, merge_threshold_rel=np.inf, detection_threshold=0.5
    )
    pieces = split(scores)[["onset", "offset"]].round(6).values.tolist()
    # the dip now cuts the event (it is a segment of its own, still above 0.5)
    assert [1.0, 5.0] not in pieces and pieces[0] == [1.0, 3.0] and pieces[-2][1] == 5.0
    # a detection threshold above a box's confidence drops it
    strict = SEBBsPostProcessor(["dog"], 0.2, 0.3, np.inf, detection_threshold=0.85)
    assert strict(scores)[["onset", "offset"]].round(6).values.tolist() == [[1.0, 5.0]]


def test_boxes_never_leave_the_clip_and_per_class_settings_apply():
    y = np.full(50, 0.02)
    y[45:] = 0.9  # runs to the clip's end
    z = np.full(50, 0.6)
    scores = {"a": _df({"dog": y, "cat": z})}
    pp = SEBBsPostProcessor(
        ["dog", "cat"], 0.2, 0.3, np.inf, detection_threshold={"dog": 0.5, "cat": 0.7}
    )
    table = pp(scores)
    assert table.values.tolist() == [["a", 4.5, 5.0, "dog"]]  # cat's 0.6 under its 0.7
    with pytest.raises(ValueError, match="cat"):
        SEBBsPostProcessor(["dog", "cat"], detection_threshold={"dog": 0.5})


def test_tuning_recovers_events_from_noisy_validation_scores():
    rng = np.random.default_rng(0)
    scores, reference, durations = {}, {}, {}
    for k in range(6):
        y = np.clip(0.1 + 0.05 * rng.standard_normal(100), 0, 1)
        on = 10 + 10 * k
        y[on : on + 15] = np.clip(0.8 + 0.1 * rng.standard_normal(15), 0, 1)
        y[on + 6 : on + 8] = 0.45  # a dip that a plain 0.5 threshold would split
        scores[f"c{k}"] = _df({"dog": y})
        reference[f"c{k}"] = [(on * 0.1, (on + 15) * 0.1, "dog")]
        durations[f"c{k}"] = 10.0
    tuned, best = SEBBsPostProcessor.tune(scores, reference, durations)
    assert best["dog"] == pytest.approx(1.0)
    table = tuned(scores)
    assert len(table) == 6
    got = table.sort_values("filename")[["onset", "offset"]].to_numpy()
    want = np.array([ev[0][:2] for _, ev in sorted(reference.items())])
    assert np.abs(got - want).max() <= 0.2 + 1e-9


def test_cli_tunes_on_validation_and_scores_test(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    main(["tune", str(run), "--method", "sebbs"])
    tuned = yaml.safe_load((run / "postprocess_sebbs.yaml").read_text())
    assert tuned["method"] == "sebbs" and set(tuned["detection_threshold"]) == set(CLASSES)
    metrics = json.loads((run / "metrics_sebbs.json").read_text())
    # knock's long 0.6 false positive is one box of confidence 0.6: the tuned detection
    # threshold (between 0.6 and the true event's 0.95) drops it
    assert 0.6 < tuned["detection_threshold"]["knock"] < 0.95
    assert metrics["test/event_f1/knock"] == pytest.approx(1.0)
    # alarm's dip to 0.05 is deeper than any merge threshold of the grid (<= 0.3): no box
    # setting finds the 5 s event whole, unlike an 11-frame median filter
    assert metrics["val/event_f1/alarm"] == 0.0
    assert "val/event_f1" in metrics and "test/psds1" in metrics
    assert "test/event_f1" in capsys.readouterr().out
    assert HOP == 0.1


def test_cli_tune_only_never_reads_test(tmp_path):
    run = fake_run(tmp_path / "run")
    for path in (run / "scores").glob("*.tsv"):
        path.write_text("garbage\n")
    main(["tune", str(run), "--method", "sebbs", "--tune-only"])
    assert (run / "postprocess_sebbs.yaml").is_file()
    assert not (run / "metrics_sebbs.json").exists()


def test_box_scores_hold_each_boxs_confidence_over_its_extent():
    y = np.full(100, 0.02)
    y[20:40] = 0.8
    scores = {"clip": _df({"dog": y, "cat": np.full(100, 0.01)})}
    pp = SEBBsPostProcessor(["dog", "cat"], 0.2, 0.3, np.inf, detection_threshold=0.5)
    boxes = pp.box_scores(scores, {"clip": 10.0})["clip"]
    assert boxes["offset"].iloc[-1] == pytest.approx(10.0)  # to the clip's end
    inside = boxes[(boxes["onset"] >= 2.0 - 1e-9) & (boxes["offset"] <= 4.0 + 1e-9)]
    assert len(inside) and np.allclose(inside["dog"], 0.8, atol=0.01)  # the box's confidence
    outside = boxes[(boxes["offset"] <= 2.0 + 1e-9) | (boxes["onset"] >= 4.0 - 1e-9)]
    assert outside["dog"].max() < 0.1  # the background's own (low) box or -inf


def test_cli_reports_the_psds_of_the_boxes(tmp_path):
    run = fake_run(tmp_path / "run")
    main(["tune", str(run), "--method", "sebbs"])
    metrics = json.loads((run / "metrics_sebbs.json").read_text())
    for split in ("val", "test"):
        for name in ("psds1", "psds2"):
            assert 0.0 <= metrics[f"{split}/{name}_boxes"] <= 1.0
    # every test event is one box (alarm's two pieces inside its event still cover 70 %
    # of it) ranked above knock's 0.6 false-positive box: a perfect PSDS1; boxes of -inf
    # or misplaced boxes would give less
    assert metrics["test/psds1_boxes"] == pytest.approx(1.0)
