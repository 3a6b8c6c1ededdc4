"""k-fold cross-validation of the post-processing tuning inside the validation set.

The fake runs hold hand-made scores (frame hop 0.1 s, 10 s clips) whose best per-class
thresholds differ from the run's own 0.5: ``alarm`` is a true event scored 0.35 (found only
with a threshold of 0.3 or less), ``knock`` a true event scored 0.95 plus a false positive
scored 0.6 (dropped only from 0.7 on); ``water`` occurs in the first clip only (scored 0.9,
found by the run's own settings). The other classes never occur. Every median window of the
grid keeps these rectangles, so ties go to the run's own window (1 frame).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sed_lightning.data.tsv import write_durations_tsv, write_strong_tsv
from sed_lightning.evaluation.scores import scores_to_dataframes, write_scores
from sed_lightning.postprocessing.saved_runs import (
    load_split,
)
from sed_lightning.postprocessing.tuning_cv import cross_validate, fold_split
from sed_lightning.run_files import SPLIT_FILES
from sed_lightning.tools import main
from tests.conftest import CLASSES

HOP = 0.1
N_FRAMES = 100
LOW = 0.05
N_VAL = 6


def clip_scores(i: int) -> tuple[np.ndarray, list[tuple]]:
    """Scores of clip ``i`` and its reference events ``(onset, offset, label)``."""
    scores = np.full((N_FRAMES, len(CLASSES)), LOW)
    alarm, knock, water = (CLASSES.index(c) for c in ("alarm", "knock", "water"))
    scores[10 + i : 50 + i, alarm] = 0.35  # below the run's threshold
    scores[55:65, knock] = 0.95
    scores[70:90, knock] = 0.6  # false positive, 2 s long
    events = [((10 + i) * HOP, (50 + i) * HOP, "alarm"), (5.5, 6.5, "knock")]
    if i == 0:
        scores[0:8, water] = 0.9
        events.append((0.0, 0.8, "water"))
    return scores, events


def write_split(run: Path, split: str, n_clips: int) -> None:
    scores_dir, ref, dur = SPLIT_FILES[split]  # the files a run writes
    frames, rows = {}, []
    for i in range(n_clips):
        name = f"{split}_{i:03d}.wav"
        frames[name], events = clip_scores(i)
        rows += [(name, *event) for event in events]
    write_scores(scores_to_dataframes(frames, HOP, CLASSES), run / scores_dir)
    write_strong_tsv(
        pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"]), run / ref
    )
    write_durations_tsv({name: N_FRAMES * HOP for name in frames}, run / dur)


def fake_run(run: Path) -> Path:
    """A run folder as training leaves it: validation and test outputs, its settings."""
    write_split(run, "val", N_VAL)
    write_split(run, "test", 3)
    postprocess = {"median_window": 0.1, "threshold": 0.5, "min_duration": 0.0}
    (run / "postprocess.yaml").write_text(yaml.safe_dump(postprocess))
    return run


@pytest.fixture
def run(tmp_path) -> Path:
    return fake_run(tmp_path / "run")


def test_fold_split_puts_clip_i_in_fold_i_mod_k(run):
    files = load_split(run, "val").files
    assert files == [f"val_{i:03d}" for i in range(N_VAL)]  # sorted audio ids
    for k in (2, 3, 4, N_VAL):
        folds = fold_split(files, k)
        assert len(folds) == k
        assert sorted(f for fold in folds for f in fold) == files  # a partition
        assert all(files[i] in folds[i % k] for i in range(N_VAL))
        assert folds == fold_split(list(files), k)  # deterministic
    with pytest.raises(ValueError, match="at least 2 folds"):
        fold_split(files, 1)
    with pytest.raises(ValueError, match="need at least 7 clips"):
        fold_split(files, 7)


def test_subset_keeps_only_the_fold_clips(run):
    val = load_split(run, "val")
    part = val.subset(["val_001", "val_003"])
    assert part.files == ["val_001", "val_003"]
    assert set(part.reference["filename"]) == {"val_001", "val_003"}
    assert set(part.durations) == {"val_001", "val_003"}
    assert part.classes == val.classes and part.frame_hop == pytest.approx(HOP)


def test_tuning_beats_the_runs_own_decoder_on_held_out_folds(run):
    result = cross_validate(run, folds=2)
    folds = result["folds"]
    assert [f["n_clips"] for f in folds] == [3, 3]
    # macro F1 over the classes with events in the fold: water only in val_000 (fold 0)
    assert folds[0]["classes"] == ["alarm", "knock", "water"]
    assert folds[1]["classes"] == ["alarm", "knock"]
    # default: alarm missed (0), knock's false positive kept (2/3), water found (1)
    assert folds[0]["default"] == pytest.approx((0 + 2 / 3 + 1) / 3)
    assert folds[1]["default"] == pytest.approx((0 + 2 / 3) / 2)
    for fold in folds:  # tuned on the other fold: alarm <= 0.3, knock >= 0.7
        assert fold["median"] == pytest.approx(1.0)
        assert fold["median"] > fold["default"]
    assert result["median"] > result["default"]
    assert result["median-default"] == pytest.approx(1.0 - (5 / 9 + 1 / 3) / 2)
    assert result["methods"] == ["median"] and "sebbs" not in result
    assert result["n_folds_scored"] == 2


def test_cv_never_reads_the_test_files(run, tmp_path, capsys):
    import shutil

    shutil.rmtree(run / "scores")
    (run / "test_reference.tsv").unlink()
    (run / "test_durations.tsv").unlink()
    out = tmp_path / "cv.json"
    main(["tune-cv", str(run), "--folds", "3", "--out", str(out)])  # no error: val files only
    result = json.loads(out.read_text())
    assert result["errors"] == []
    (scored,) = result["runs"]
    assert [f["n_clips"] for f in scored["folds"]] == [2, 2, 2]
    assert scored["median"] == pytest.approx(1.0) and scored["median-default"] > 0
    assert "| default | median | median-default |" in capsys.readouterr().out


def test_a_run_without_val_scores_gets_one_line_error_and_the_others_are_scored(tmp_path, capsys):
    good = [fake_run(tmp_path / "a"), fake_run(tmp_path / "b")]
    bad = tmp_path / "old_run"
    bad.mkdir()
    out = tmp_path / "cv.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["tune-cv", str(good[0]), str(bad), str(good[1]), "--out", str(out)])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    (error,) = captured.err.strip().splitlines()
    assert error.startswith(f"sed-tools tune-cv: {bad}: ")
    assert str(bad / "val_scores") in error and "no such folder" in error
    assert str(good[0]) in captured.out and str(good[1]) in captured.out
    result = json.loads(out.read_text())
    assert [r["run"] for r in result["runs"]] == [str(g) for g in good]
    summary = result["summary"]
    assert summary["n_runs"] == 2
    assert summary["median_mean"] > summary["default_mean"]
    assert summary["median-default_std"] == pytest.approx(0.0)  # identical runs
    assert "**all (2 runs)**" in captured.out


def test_sebbs_tuned_on_the_other_fold_is_compared_with_the_median_tuning(run, tmp_path, capsys):
    pytest.importorskip("sebbs")
    result = cross_validate(run, folds=2, methods=["median", "sebbs"])
    for fold in result["folds"]:
        # the run's own 0.5 misses alarm's 0.35 boxes: only a detection threshold tuned on
        # the other fold finds them (and drops knock's 0.6 false positive)
        assert fold["sebbs"] == pytest.approx(1.0) and fold["median"] == pytest.approx(1.0)
        assert fold["sebbs-default"] == pytest.approx(1.0 - fold["default"])
        assert fold["sebbs-median"] == pytest.approx(0.0)
    out = tmp_path / "cv.json"
    main(["tune-cv", str(run), str(run), "--methods", "median", "sebbs", "--out", str(out)])
    header = (
        "| run | clips | default | median | sebbs | median-default | sebbs-default | sebbs-median |"
    )
    printed = capsys.readouterr().out
    assert header in printed and "cSEBBs" in printed
    summary = json.loads(out.read_text())["summary"]
    assert summary["sebbs_mean"] == pytest.approx(1.0) and summary["n_runs"] == 2


def test_an_unknown_method_is_refused(run):
    with pytest.raises(ValueError, match="allowed \\['median', 'sebbs'\\]"):
        cross_validate(run, methods=["viterbi"])
    with pytest.raises(SystemExit):
        main(["tune-cv", str(run), "--methods", "viterbi"])


def test_no_run_scored_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no run could be scored"):
        main(["tune-cv", str(tmp_path)])
