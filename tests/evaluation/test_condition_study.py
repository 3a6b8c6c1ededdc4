"""Figures per condition of saved runs (``sed-tools conditions``): the fake runs of
the tuning-cv tests, whose decoded F1 is known clip by clip."""

from __future__ import annotations

import json

import pytest
import yaml

from sed_lightning.tools import main
from tests.postprocessing.test_tuning_cv import N_VAL, fake_run


@pytest.fixture
def conditions(tmp_path):
    """val_000..002 'near', val_003..005 'far'."""
    path = tmp_path / "conditions.tsv"
    rows = [f"val_{i:03d}.wav\t{'near' if i < 3 else 'far'}" for i in range(N_VAL)]
    path.write_text("filename\tmicrophone\n" + "\n".join(rows) + "\n")
    return path


def test_each_condition_scored_with_the_runs_own_and_its_tuned_decoder(
    tmp_path, conditions, capsys
):
    runs = [fake_run(tmp_path / "a"), fake_run(tmp_path / "b")]
    out = tmp_path / "by.json"
    main(["conditions", *map(str, runs), "--conditions", str(conditions), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "| microphone | near | 3 |" in printed and "2 runs" in printed
    result = json.loads(out.read_text())
    near, far = (result["per_run"][0]["microphone"][v] for v in ("near", "far"))
    # own decoder (threshold 0.5): alarm missed (0), knock's false positive kept (2/3); the
    # water event of val_000 found (1) in the near clips only
    assert near["event_f1"] == pytest.approx((0 + 2 / 3 + 1) / 3)
    assert far["event_f1"] == pytest.approx((0 + 2 / 3) / 2)
    summary = {(r["condition"], r["value"]): r for r in result["summary"]}
    assert summary[("microphone", "near")]["event_f1_std"] == pytest.approx(0.0)
    tuned = {"median_window": 0.1, "min_duration": 0.0}
    tuned["threshold"] = {"default": 0.5, "alarm": 0.3, "knock": 0.7}
    for run in runs:
        (run / "postprocess_tuned.yaml").write_text(yaml.safe_dump(tuned))
    main(["conditions", str(runs[0]), "--conditions", str(conditions), "--decoder", "tuned"])
    assert "| microphone | far | 3 | 1.000 |" in capsys.readouterr().out  # all found


def test_a_run_that_cannot_be_scored_is_named_and_the_others_are(tmp_path, conditions, capsys):
    good = fake_run(tmp_path / "good")
    with pytest.raises(SystemExit) as exit_info:
        main(["conditions", str(good), str(tmp_path / "missing"), "--conditions", str(conditions)])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    (error,) = captured.err.strip().splitlines()[-1:]
    assert error.startswith(f"sed-tools conditions: {tmp_path / 'missing'}")
    assert "| microphone | near |" in captured.out
    with pytest.raises(SystemExit, match="no tuned decoder|no run could be scored"):
        main(["conditions", str(good), "--conditions", str(conditions), "--decoder", "tuned"])
