"""Real Trainer runs of the composed config on tiny generated soundscapes."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from sed_lightning.data.tsv import read_strong_tsv
from sed_lightning.evaluation.settings import DCASE2016_KEYS
from sed_lightning.train import train
from sed_lightning.training.build import build_module
from tests.conftest import ROOT, compose_train, finalize

HEADLINE = ["test/event_f1", "test/segment_f1", "test/psds1", "test/psds2", "test/clip_map"]


def test_fast_dev_run(tmp_path, data_dir):
    cfg = finalize(compose_train(["debug=fdr"]), tmp_path / "run", data_dir)
    metrics = train(cfg)
    assert "train/loss" in metrics and np.isfinite(metrics["train/loss"])
    assert all(k in metrics for k in HEADLINE)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("trained")
    cfg = finalize(compose_train(["trainer.max_epochs=2"]), out / "run", data_dir)
    return train(cfg), out / "run"


def test_run_writes_its_outputs(trained_run):
    metrics, run = trained_run
    saved = json.loads((run / "metrics.json").read_text())
    for key in HEADLINE:
        assert 0.0 <= saved[key] <= 1.0
        assert saved[key] == pytest.approx(metrics[key], abs=1e-6)
    assert any(k.startswith("test/event_f1/") for k in saved)  # per-class F1
    for key in DCASE2016_KEYS:  # the DCASE 2016 Task 2 figures, on by default
        assert saved[f"test/{key}"] == pytest.approx(metrics[f"test/{key}"], abs=1e-6)
    assert 0.0 <= saved["test/dcase2016/onset_f1"] <= 1.0
    assert saved["test/dcase2016/segment_er"] >= 0.0
    # every figure on validation too, from the tested (best) weights: the returned
    # val/event_f1 is that checkpoint's, scored the same way
    val = json.loads((run / "metrics_val.json").read_text())
    assert val["val/event_f1"] == pytest.approx(metrics["val/event_f1"], abs=1e-6)
    for key in ("val/psds1", "val/segment_f1", *(f"val/{k}" for k in DCASE2016_KEYS)):
        assert key in val
    events = read_strong_tsv(run / "predictions.tsv")
    assert list(events.columns[:4]) == ["filename", "onset", "offset", "event_label"]
    assert len(list((run / "scores").glob("*.tsv"))) == 5  # one per test clip
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-*.ckpt"))
    assert (run / "csv" / "metrics.csv").is_file()


def test_predict_on_a_stereo_44k_25s_file(trained_run, tmp_path):
    _, run = trained_run
    rng = np.random.default_rng(0)
    sr = 44100
    t = np.arange(25 * sr) / sr
    beep = 0.5 * np.sin(2 * np.pi * 2000 * t) * ((t % 1.0) < 0.2) * (t > 5) * (t < 12)
    stereo = np.stack([beep + 0.01 * rng.standard_normal(t.size), beep], axis=1)
    wav = tmp_path / "long.wav"
    sf.write(wav, stereo.astype(np.float32), sr)
    out = tmp_path / "pred.tsv"
    scores = tmp_path / "scores"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sed_lightning.predict",
            f"ckpt={run / 'checkpoints' / 'last.ckpt'}",
            f"audio={wav}",
            f"out={out}",
            f"scores={scores}",
            "postprocess.threshold=0.01",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = pd.read_csv(out, sep="\t")
    assert list(events.columns) == ["filename", "onset", "offset", "event_label"]
    assert (events["filename"] == "long.wav").all() and len(events) > 0
    assert events["offset"].max() <= 25.0 + 1e-6
    frame_scores = pd.read_csv(scores / "long.tsv", sep="\t")
    assert frame_scores["offset"].iloc[-1] == pytest.approx(25.0, abs=0.07)  # whole file scored
    cost = json.loads((tmp_path / "pred.cost.json").read_text())  # beside out=pred.tsv
    assert cost["files"] == 1 and cost["audio_hours"] == pytest.approx(25 / 3600)
    assert cost["macs_per_clip"] > 0 and cost["params"]["total"] > 0
    predict = cost["phases"]["predict"]
    assert predict["wall_s"] > 0 and predict["method"]
    assert cost["kwh_per_audio_hour"] == pytest.approx(predict["energy_kwh"] * 3600 / 25)
    assert "kWh per hour of audio" in proc.stdout + proc.stderr


def test_typo_in_an_override_is_rejected():
    with pytest.raises(ConfigCompositionException, match="weak_wieght"):
        compose_train(["loss.weak_wieght=2"])


def test_typo_in_an_experiment_file_is_rejected(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "typo.yaml").write_text(
        "# @package _global_\ndata:\n  batch_size: {strong: 3}\n"
    )
    with pytest.raises(ConfigCompositionException) as err:
        compose_train([f"hydra.searchpath=[file://{tmp_path}]", "+experiment=typo"])
    assert "batch_size" in str(err.value) + str(err.value.__cause__)


def test_appended_unknown_key_fails_at_build_naming_it(tmp_path, data_dir):
    cfg = finalize(compose_train(["+model.encoder.n_layers=3"]), tmp_path / "run", data_dir)
    with pytest.raises(Exception, match="n_layers"):
        build_module(cfg)


def test_wrong_type_is_rejected():
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError)):
        compose_train(["data.sample_rate=fast"])
