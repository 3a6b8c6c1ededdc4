"""``python -m sed_lightning.evaluate`` prints the project's metrics as JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sed_lightning.evaluate import evaluate_files
from sed_lightning.evaluation import (
    DCASE2016_KEYS,
    PSDS1,
    PSDS2,
    dcase2016_metrics,
    psds,
    scores_to_dataframes,
    sed_eval_metrics,
    write_scores,
)

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["Cat", "Dog", "Speech"]
HOP = 0.5
DURATION = 10.0

REF = """filename\tonset\toffset\tevent_label
a.wav\t0.5\t3.0\tSpeech
a.wav\t4.0\t5.0\tDog
b.wav\t1.0\t2.5\tCat
b.wav\t6.0\t9.5\tSpeech
c.wav\t\t\t
"""
EST = """filename\tonset\toffset\tevent_label
a.wav\t0.6\t3.1\tSpeech
b.wav\t1.1\t2.4\tCat
b.wav\t6.5\t9.0\tSpeech
b.wav\t3.0\t4.0\tDog
c.wav\t1.0\t2.0\tCat
"""


def _run(*overrides: str, cwd: Path = REPO) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "sed_lightning.evaluate", *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def files(tmp_path):
    ref, est = tmp_path / "ref.tsv", tmp_path / "est.tsv"
    ref.write_text(REF)
    est.write_text(EST)
    rng = np.random.default_rng(0)
    n = int(DURATION / HOP)
    scores = {}
    for name in ["a.wav", "b.wav", "c.wav"]:
        s = 0.3 * rng.random((n, len(CLASSES)))
        for row in pd.read_csv(ref, sep="\t").dropna().itertuples():
            if row.filename == name:
                s[
                    int(row.onset / HOP) : int(np.ceil(row.offset / HOP)),
                    CLASSES.index(row.event_label),
                ] += 0.5
        scores[name] = s
    scores_dir = write_scores(scores_to_dataframes(scores, HOP, CLASSES), tmp_path / "scores")
    durations = tmp_path / "durations.tsv"
    durations.write_text("filename\tduration\n" + "".join(f"{f}\t{DURATION}\n" for f in scores))
    return ref, est, scores_dir, durations


def test_cli_f1(files):
    ref, est, _, _ = files
    out = _run(f"ref={ref}", f"est={est}")
    expected = sed_eval_metrics(pd.read_csv(ref, sep="\t"), pd.read_csv(est, sep="\t"), CLASSES)
    assert out["classes"] == CLASSES  # sorted union of the reference labels
    assert out["event_f1"] == pytest.approx(expected["event_f1"])
    assert out["segment_f1"] == pytest.approx(expected["segment_f1"])
    assert out["event_f1_per_class"] == pytest.approx(expected["event_f1_per_class"])
    assert out["segment_f1_per_class"] == pytest.approx(expected["segment_f1_per_class"])
    assert "psds1" not in out
    dcase2016 = dcase2016_metrics(pd.read_csv(ref, sep="\t"), pd.read_csv(est, sep="\t"), CLASSES)
    assert set(DCASE2016_KEYS) <= set(out)  # on by default
    for key in DCASE2016_KEYS:
        assert out[key] == pytest.approx(dcase2016[key])


def test_cli_with_scores_durations_and_classes(files, tmp_path):
    ref, est, scores_dir, durations = files
    before = sorted(p.name for p in tmp_path.iterdir())
    out = _run(
        f"ref={ref}",
        f"est={est}",
        f"scores={scores_dir}",
        f"durations={durations}",
        "classes=[Cat,Dog,Speech,Bird]",
        "dcase2016=false",
        cwd=tmp_path,
    )
    assert not any(k.startswith("dcase2016") for k in out)  # switched off
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no outputs/, .hydra/, logs
    assert out["classes"] == [*CLASSES, "Bird"]
    assert out["event_f1_per_class"]["Bird"] is None  # NaN (no ref, no est) printed as null
    gt = pd.read_csv(ref, sep="\t")
    from sed_lightning.evaluation import read_scores

    score_dfs = read_scores(scores_dir)
    for name, setting in (("psds1", PSDS1), ("psds2", PSDS2)):
        expected = psds(score_dfs, gt, dict.fromkeys(score_dfs, DURATION), setting)
        assert out[name] == pytest.approx(expected)
        assert 0.0 < out[name] <= 1.0


def test_durations_default_to_last_score_timestamp(files):
    ref, est, scores_dir, durations = files
    with_file = evaluate_files(ref, est, scores_dir, durations)
    from_scores = evaluate_files(ref, est, scores_dir)
    assert from_scores["psds1"] == pytest.approx(with_file["psds1"])
    assert from_scores["psds2"] == pytest.approx(with_file["psds2"])


def test_overlapping_same_class_reference_events_are_merged(tmp_path):
    """A DESED reference with overlapping same-class events scores instead of crashing."""
    ref = tmp_path / "ref.tsv"
    ref.write_text(
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t1.0\t3.0\tDog\n"
        "a.wav\t2.0\t4.0\tDog\n"  # overlaps the previous Dog event -> one event 1.0-4.0
        "a.wav\t5.0\t6.0\tCat\n"
    )
    est = tmp_path / "est.tsv"
    est.write_text(
        "filename\tonset\toffset\tevent_label\na.wav\t1.0\t4.0\tDog\na.wav\t5.0\t6.0\tCat\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "sed_lightning.evaluate", f"ref={ref}", f"est={est}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "merged in 1 file(s): a.wav" in proc.stderr
    assert json.loads(proc.stdout)["event_f1"] == 1.0
