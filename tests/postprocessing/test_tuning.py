"""Post-processing tuned on validation scores only (``sed-tools tune``).

The fake runs hold hand-made scores (frame hop 0.1 s, 10 s clips) where the best settings are
known: ``alarm`` is one long event whose scores dip for 4 frames (only a median window of at
least 9 frames, i.e. 11 or 21 in the grid, merges it back into one event); ``knock`` has a
true event at 0.95 and a long false positive at 0.6 that no window removes (only a threshold
of 0.7 or more drops it). The other classes never occur.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sed_lightning.data.tsv import write_durations_tsv, write_strong_tsv
from sed_lightning.evaluation.metrics import sed_eval_metrics
from sed_lightning.evaluation.scores import scores_to_dataframes, write_scores
from sed_lightning.postprocessing import PostProcessor
from sed_lightning.postprocessing.saved_runs import (
    SavedSplit,
    load_split,
    run_postprocess,
)
from sed_lightning.postprocessing.tuning import (
    MedianGrid,
    class_event_f1,
    evaluate_split,
    evaluate_tuned,
    events_by_class,
    filtered_psds,
    threshold_events,
    tune_run,
)
from sed_lightning.run_files import SPLIT_FILES
from sed_lightning.tools import main
from sed_lightning.training.preflight import check_postprocess
from tests.conftest import CLASSES, compose_train

HOP = 0.1
N_FRAMES = 100
LOW = 0.05


def clip_scores(gap_start: int = 30, fp_score: float = 0.6) -> tuple[np.ndarray, list[tuple]]:
    """Scores of one clip and its reference events ``(onset, offset, label)``."""
    scores = np.full((N_FRAMES, len(CLASSES)), LOW)
    alarm, knock = CLASSES.index("alarm"), CLASSES.index("knock")
    scores[10:60, alarm] = 0.9
    scores[gap_start : gap_start + 4, alarm] = LOW  # a 4-frame dip inside the event
    scores[20:40, knock] = 0.95
    scores[60:90, knock] = fp_score  # false positive, 3 s long
    return scores, [(1.0, 6.0, "alarm"), (2.0, 4.0, "knock")]


def blip_scores(gap_start: int = 30, fp_score: float = 0.6) -> tuple[np.ndarray, list[tuple]]:
    """``engine``: two true 1-s events 0.3 s apart and a 0.3-s false blip, all at 0.95. No
    threshold drops the blip; a median window long enough to (7+ frames) also fills the gap
    and merges the true events; only a minimum duration over 0.3 s drops it alone."""
    scores = np.full((N_FRAMES, len(CLASSES)), LOW)
    engine = CLASSES.index("engine")
    scores[10:20, engine] = scores[23:33, engine] = 0.95
    scores[60:63, engine] = 0.95
    return scores, [(1.0, 2.0, "engine"), (2.3, 3.3, "engine")]


def write_split(
    run: Path, split: str, n_clips: int, gap_shift: int = 0, scores=clip_scores
) -> None:
    scores_dir, ref, dur = SPLIT_FILES[split]  # the files a run writes
    frames, rows = {}, []
    for i in range(n_clips):
        name = f"{split}_{i:03d}.wav"
        frames[name], events = scores(gap_start=25 + 5 * i + gap_shift)
        rows += [(name, *event) for event in events]
    write_scores(scores_to_dataframes(frames, HOP, CLASSES), run / scores_dir)
    write_strong_tsv(
        pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"]), run / ref
    )
    write_durations_tsv({name: N_FRAMES * HOP for name in frames}, run / dur)


def fake_run(run: Path, seed: int = 0, gap_shift: int = 0, scores=clip_scores) -> Path:
    """A run folder as training leaves it (scores, references, durations, settings)."""
    write_split(run, "val", 2, gap_shift, scores)
    write_split(run, "test", 3, gap_shift, scores)
    postprocess = {"median_window": 0.1, "threshold": 0.5, "min_duration": 0.0}
    (run / "postprocess.yaml").write_text(yaml.safe_dump(postprocess))
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"seed": seed, "postprocess": postprocess})
    )
    (run / "metrics.json").write_text(json.dumps({"test/clip_map": 0.75}))
    return run


@pytest.fixture
def run(tmp_path) -> Path:
    return fake_run(tmp_path / "run")


def test_tuning_finds_the_known_window_and_threshold_per_class(run):
    table = tune_run(run).table.set_index("class")
    assert table.loc["alarm", "window_frames"] == 11  # smallest grid window closing the dip
    assert table.loc["alarm", "val_f1"] == pytest.approx(1.0)
    assert table.loc["knock", "threshold"] == pytest.approx(0.7)  # drops the 0.6 false positive
    assert table.loc["knock", "window_frames"] == 1  # no window helps: the run's own (0.1 s)
    assert table.loc["knock", "val_f1"] == pytest.approx(1.0)
    assert not table.loc["water", "tuned"]  # no validation events: the run's own settings
    tuned = yaml.safe_load((run / "postprocess_tuned.yaml").read_text())
    assert tuned["median_window"]["alarm"] == pytest.approx(1.1)
    assert tuned["threshold"] == {**{c: 0.5 for c in CLASSES}, "knock": pytest.approx(0.7)}
    check_postprocess(tuned, CLASSES, HOP)  # a valid `postprocess` node for these classes


def test_a_minimum_duration_is_tuned_where_no_window_or_threshold_helps(tmp_path):
    run = fake_run(tmp_path / "run", scores=blip_scores)
    table = tune_run(run).table.set_index("class")
    assert table.loc["engine", "min_duration"] == pytest.approx(0.5)  # first grid value > 0.3
    assert table.loc["engine", "window_frames"] == 1  # the run's own: no window is needed
    assert table.loc["engine", "val_f1"] == pytest.approx(1.0)
    tuned = yaml.safe_load((run / "postprocess_tuned.yaml").read_text())
    assert tuned["min_duration"] == {**{c: 0.0 for c in CLASSES}, "engine": pytest.approx(0.5)}
    check_postprocess(tuned, CLASSES, HOP)
    test = load_split(run, "test")
    assert evaluate_split(test, tuned, psds=False)["test/event_f1"] == pytest.approx(1.0)

    # the run's own minimum duration kept: the best window + threshold leave the blip in
    kept = tune_run(run, MedianGrid(min_durations=None))
    assert kept.postprocess["min_duration"] == 0.0
    assert kept.table.set_index("class").loc["engine", "val_f1"] == pytest.approx(0.8)  # 2 TP, 1 FP
    assert evaluate_split(test, kept.postprocess, psds=False)["test/event_f1"] < 0.9


def test_tuned_config_loads_as_a_hydra_postprocess_option(run):
    tune_run(run)
    cfg = compose_train([f"hydra.searchpath=[file://{run}/conf]", "postprocess=tuned"])
    assert cfg.postprocess.threshold.knock == pytest.approx(0.7)
    assert cfg.postprocess.median_window.alarm == pytest.approx(1.1)


def test_tuning_never_reads_the_test_split(run):
    for path in (run / "scores").glob("*.tsv"):
        path.write_text("garbage\tthat is not a score table\n1\n")
    (run / "test_reference.tsv").unlink()
    table = tune_run(run).table.set_index("class")  # validation files only
    assert table.loc["alarm", "window_frames"] == 11
    assert table.loc["knock", "threshold"] == pytest.approx(0.7)
    with pytest.raises((FileNotFoundError, ValueError, KeyError)):
        evaluate_tuned(run, tune_run(run))  # the test step is the one that needs them


def test_a_runs_tune_key_is_not_a_decoder_setting(run):
    """A run trained with postprocess=sebbs records `tune` in .hydra/config.yaml."""
    (run / "postprocess.yaml").unlink()
    node = {"median_window": 0.1, "threshold": 0.5, "min_duration": 0.0, "tune": "sebbs"}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"postprocess": node}))
    assert run_postprocess(run) == {"median_window": 0.1, "threshold": 0.5, "min_duration": 0.0}
    before, after = evaluate_tuned(run, tune_run(run), samples=0, mfi=False)
    assert after["test/event_f1/knock"] == pytest.approx(1.0)


def test_cli_writes_tuned_test_metrics_with_psds_intervals(run, capsys):
    main(["tune", str(run), "--bootstrap-samples", "6"])
    out = capsys.readouterr().out
    assert "before" in out and "after" in out
    tuned = json.loads((run / "metrics_tuned.json").read_text())
    assert tuned["test/event_f1/alarm"] == pytest.approx(1.0)
    assert tuned["test/event_f1/knock"] == pytest.approx(1.0)
    assert tuned["test/clip_map"] == 0.75  # copied: clip scores ignore post-processing
    for name in ("psds1", "psds2"):
        low, high = tuned[f"test/{name}_ci_low"], tuned[f"test/{name}_ci_high"]
        assert 0.0 <= low <= tuned[f"test/{name}_ci_mean"] <= high <= 1.0
        assert 0.0 <= tuned[f"test/mfi_{name}"] <= 1.0
    assert tuned["versions/sed_eval"]
    # before: the run's own settings (1-frame window, 0.5) split alarm and keep the knock FP
    test = load_split(run, "test")
    before = PostProcessor(CLASSES, HOP, median_window=0.1, threshold=0.5)(test.frames())
    f1 = sed_eval_metrics(test.reference, before, CLASSES, test.files)["event_f1_per_class"]
    assert f1["alarm"] == 0.0 and f1["knock"] == pytest.approx(2 / 3)


def test_grid_search_events_and_f1_match_the_postprocessor_and_sed_eval():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    frames = {f"f{i}": rng.random((60, 3)) ** 2 for i in range(6)}
    durations = {k: 5.7 for k in frames}
    pp = PostProcessor(classes, 0.1, median_window=0.0, threshold=0.4, min_duration=0.25)
    expected = pp(frames, durations)
    mine = threshold_events(frames, classes, 0.1, 0.4, durations, {c: 0.25 for c in classes})
    assert events_by_class(expected) == mine
    reference = PostProcessor(classes, 0.1, median_window=0.5, threshold=0.5)(frames)
    full = sed_eval_metrics(reference, expected, classes, sorted(frames))["event_f1_per_class"]
    ref = events_by_class(reference)
    assert {c: class_event_f1(ref, mine, c) for c in classes} == pytest.approx(full, nan_ok=True)


def _spiky_split() -> SavedSplit:
    """Two classes; clip c0 holds an `a` event (2-5 s), c1 a `b` event (6-8 s), both scored
    0.8; c2 and c3 have no event but single-frame false-positive spikes of 0.95."""
    n, classes = 100, ["a", "b"]
    t = np.arange(n + 1) * HOP
    frames = {k: np.full((n, 2), 0.02) for k in ("c0", "c1", "c2", "c3")}
    frames["c0"][20:50, 0] = 0.8
    frames["c1"][60:80, 1] = 0.8
    for k in ("c2", "c3"):
        frames[k][[10, 30, 50, 70], :] = 0.95
    dfs = {
        k: pd.DataFrame({"onset": t[:-1], "offset": t[1:], **dict(zip(classes, v.T, strict=True))})
        for k, v in frames.items()
    }
    reference = pd.DataFrame(
        [("c0", 2.0, 5.0, "a"), ("c1", 6.0, 8.0, "b")],
        columns=["filename", "onset", "offset", "event_label"],
    )
    return SavedSplit(dfs, reference, {k: 10.0 for k in frames})


def test_filtered_psds_is_the_psds_of_the_median_filtered_scores():
    split = _spiky_split()
    raw = evaluate_split(split, {"median_window": HOP, "threshold": 0.5, "min_duration": 0.0})
    # a one-frame window filters nothing: the raw PSDS
    same = filtered_psds(split, {"median_window": HOP, "threshold": 0.5, "min_duration": 0.0})
    assert same["test/psds1_filtered"] == pytest.approx(raw["test/psds1"])
    assert same["test/psds2_filtered"] == pytest.approx(raw["test/psds2"])
    # a 5-frame window removes every spike and keeps the events: no false positive left
    five = filtered_psds(split, {"median_window": 5 * HOP, "threshold": 0.5, "min_duration": 0.0})
    assert raw["test/psds1"] < 0.1  # the spikes outrank the events: no TPR at a low eFPR
    assert five["test/psds1_filtered"] > 0.9


def test_cli_writes_the_filtered_psds_before_and_after_tuning(run):
    main(["tune", str(run), "--bootstrap-samples", "0", "--no-mfi-psds"])
    tuned = json.loads((run / "metrics_tuned.json").read_text())
    assert {"test/psds1_filtered", "test/psds2_filtered"} <= set(tuned)
