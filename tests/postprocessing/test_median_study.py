"""The median-filter study from saved runs (``sed-tools median-study``): the fake runs of
the tuning tests, whose best window per class is known."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sed_lightning.postprocessing.median_study import study
from sed_lightning.postprocessing.tuning import MedianGrid
from tests.conftest import ROOT
from tests.postprocessing.test_tuning import fake_run


def test_median_study_from_saved_runs_without_torch(tmp_path):
    fake_run(tmp_path / "runs" / "seed0", 0)  # found under runs/ (folders holding scores/)
    fake_run(tmp_path / "runs" / "seed1", 1, gap_shift=2)
    out = tmp_path / "study"
    code = (
        "import runpy, sys; "
        f"sys.argv = ['x', 'median-study', {str(tmp_path / 'runs')!r}, '--out', {str(out)!r}]; "
        "runpy.run_module('sed_lightning.tools', run_name='__main__'); "
        "print('torch imported:', 'torch' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch imported: False" in proc.stdout and "elapsed:" in proc.stdout
    raw = pd.read_csv(out / "runs.csv", dtype={"window": str})
    assert len(raw) == 2 * 7  # windows 1 3 5 7 11 21 + tuned, per run
    assert sorted(raw["seed"].unique()) == [0, 1]  # from each run's .hydra/config.yaml
    results = pd.read_csv(out / "results.csv", dtype={"window": str}).set_index("window")
    assert list(results.index) == ["1", "3", "5", "7", "11", "21", "tuned"]
    assert results["reference"].tolist() == [True] + [False] * 6  # the runs' 0.1 s = 1 frame
    assert results.loc["1", "event_f1_mean"] == pytest.approx(1 / 3)  # alarm 0, knock 2/3
    assert results.loc["11", "event_f1_mean"] == pytest.approx(5 / 6)  # alarm 1, knock 2/3
    assert results.loc["tuned", "event_f1_mean"] == pytest.approx(1.0)
    assert np.isnan(results.loc["1", "event_f1_p"])  # no test of the reference with itself
    assert (results["n_runs"] == 2).all()
    md = (out / "results.md").read_text()
    assert "**1** (ref)" in md and "| tuned | 2 |" in md and "ttest_rel" in md
    assert (out / "results.png").stat().st_size > 0


def test_median_study_with_one_run_says_no_test(tmp_path):
    out = tmp_path / "study"
    table = study([fake_run(tmp_path / "only")], out, MedianGrid(windows=(1, 11)))
    assert table["window"].tolist() == ["1", "11", "tuned"]
    assert "(p n/a)" in (out / "results.md").read_text()
