"""``logger=wandb`` offline: config, per-class F1 tables and event timelines land in the offline
run folder; every run also saves the validation scores of the weights it tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sed_lightning.data.audio import fix_length, load_audio
from sed_lightning.evaluation.scores import read_scores
from sed_lightning.inference import Predictor
from sed_lightning.training.wandb_media import log_results_table
from tests.training.runs import ensure_data, env, run_train
from tests.training.wandb_log import logged, wandb_records

UNREACHABLE = "http://127.0.0.1:9"  # any connection attempt fails at once


def offline_env(home: Path) -> dict[str, str]:
    """No API key, no netrc, no network (as in test_wandb_offline)."""
    out = env(
        HOME=str(home), WANDB_BASE_URL=UNREACHABLE, HTTP_PROXY=UNREACHABLE, HTTPS_PROXY=UNREACHABLE
    )
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "NETRC"):
        out.pop(key, None)
    return out


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory, data_dir) -> Path:
    tmp = tmp_path_factory.mktemp("wandb_media")
    ensure_data(data_dir, tmp)
    run = tmp / "run"
    overrides = ("logger=wandb", "trainer.max_epochs=2")
    run_train(run, data_dir, *overrides, env=offline_env(tmp / "home"), timeout=240)
    return run


def config_keys(log_file: Path) -> set[str]:
    keys = set()
    for record in wandb_records(log_file):
        if record.WhichOneof("record_type") == "config":
            keys |= {item.key or "/".join(item.nested_key) for item in record.config.update}
    return keys


def test_offline_run_holds_config_tables_and_timelines(wandb_run):
    (offline,) = (wandb_run / "wandb").glob("offline-run-*")
    (log_file,) = offline.glob("run-*.wandb")
    history = logged(log_file, "history")
    assert {"val/event_f1", "test/event_f1"} <= set(history)
    assert history["val/per_class_f1/_type"] == "table-file"
    assert history["test/per_class_f1/_type"] == "table-file"
    assert history["val/timelines/_type"] == "images/separated"
    assert list((offline / "files").rglob("*.png"))  # the timeline image itself
    (table_file, *_) = (offline / "files").rglob("per_class_f1*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["class", "event_f1", "segment_f1"]
    assert len(table["data"]) == 6  # one row per class
    assert {"postprocess", "model", "data"} <= config_keys(log_file)  # the resolved config
    timelines = sorted(p.name for p in (wandb_run / "timelines").glob("*.png"))
    assert timelines == ["epoch_000.png", "epoch_001.png"]


def test_run_saves_validation_scores_of_the_tested_checkpoint(wandb_run, data_dir):
    saved = read_scores(wandb_run / "val_scores")
    assert len(saved) == 4  # every validation clip
    for name in ("val_reference.tsv", "val_durations.tsv", "test_reference.tsv"):
        assert (wandb_run / name).is_file()
    durations = pd.read_csv(wandb_run / "test_durations.tsv", sep="\t")
    assert len(durations) == 5
    metrics = json.loads((wandb_run / "metrics.json").read_text())
    assert metrics["versions/sed_scores_eval"] and metrics["versions/torch"]
    (best,) = (wandb_run / "checkpoints").glob("best-*.ckpt")  # what trainer.test loads
    predictor = Predictor.from_checkpoint(best)
    run_precision = torch.load(best, weights_only=True)["sed_config"]["trainer"]["precision"]
    audio_dir = data_dir / "default" / "validation" / "audio"  # the run's validation set
    for clip, df in saved.items():
        audio = load_audio(audio_dir / f"{clip}.wav", sample_rate=predictor.sample_rate)
        audio = fix_length(audio, int(round(3.0 * predictor.sample_rate)))
        bf16 = run_precision == "bf16-mixed"  # as the run's trainer computed them
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            strong = predictor.module(torch.from_numpy(audio).float()[None]).strong[0]
        strong = strong.float().T.numpy()
        np.testing.assert_allclose(df[predictor.encoder.class_names].to_numpy(), strong, atol=1e-5)


def test_log_results_table_works_offline_without_an_account(monkeypatch, tmp_path):
    for key, value in offline_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    for key in ("WANDB_API_KEY", "WANDB_MODE", "NETRC", "WANDB_SERVICE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    import matplotlib.pyplot as plt

    image = tmp_path / "results.png"
    plt.imsave(image, np.zeros((4, 4)))
    df = pd.DataFrame({"window": ["1", "tuned"], "event_f1_mean": [0.3, 0.5]})
    run_dir = log_results_table(df, "sed-test", name="study", save_dir=tmp_path, image=image)
    assert run_dir.name.startswith("offline-run-")
    (table_file,) = run_dir.rglob("results*.table.json")
    assert json.loads(table_file.read_text())["data"] == [["1", 0.3], ["tuned", 0.5]]
    assert list(run_dir.rglob("results_plot*.png"))
    assert "WANDB_SERVICE" not in os.environ  # later subprocesses must not attach to it
