"""``postprocess=tuned_median`` / ``postprocess=sebbs``: a run tunes its decoder on its
validation scores after the test, then scores the test once with it, as
``sed-tools tune`` does (same functions, same files)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

import sed_lightning.postprocessing.tuning as tp
from sed_lightning.common import plain
from sed_lightning.inference import Predictor
from sed_lightning.train import train
from sed_lightning.training.preflight import ConfigError
from sed_lightning.training.tuning import prefixed, tune_after_test
from tests.conftest import compose_train, finalize


def spy_on_split_reads(monkeypatch, run: Path, tuned_file: str) -> list[tuple[str, bool]]:
    """Record every split the tuning reads, with whether the tuned settings were written
    by then (the test split may only be read once they were)."""
    reads: list[tuple[str, bool]] = []
    load_split = tp.load_split

    def spy(run_dir, split):
        reads.append((split, (run / tuned_file).is_file()))
        return load_split(run_dir, split)

    monkeypatch.setattr(tp, "load_split", spy)
    return reads


def assert_returned_equal_file(metrics: dict, saved: dict, prefix: str) -> None:
    """Every ``split/...`` number of the metrics file is returned as ``<split>_<prefix>/...``."""
    figures = {k: v for k, v in saved.items() if k.split("/")[0] in ("val", "test")}
    assert any(k.startswith("test/") for k in figures)
    for key, value in figures.items():
        split, _, name = key.partition("/")
        got = metrics[f"{split}_{prefix}/{name}"]
        assert (math.isnan(got) and value is None) or got == pytest.approx(value, abs=1e-12)


def assert_untuned_metrics_kept(metrics: dict, run: Path) -> None:
    """metrics.json, the test metrics and the validation metric a sweep optimizes are the
    run's own (untuned decoder); the decoder settings the run saved have no ``tune``."""
    saved = json.loads((run / "metrics.json").read_text())
    assert metrics["test/event_f1"] == pytest.approx(saved["test/event_f1"])
    assert "val/event_f1" in metrics and not any(k.startswith("tuned") for k in saved)
    assert "tune" not in yaml.safe_load((run / "postprocess.yaml").read_text())


def test_tuned_median_run_tunes_on_validation_then_scores_test(
    tmp_path, data_dir, monkeypatch, caplog
):
    run = tmp_path / "run"
    cfg = finalize(compose_train(["postprocess=tuned_median"]), run, data_dir)
    reads = spy_on_split_reads(monkeypatch, run, "postprocess_tuned.yaml")
    with caplog.at_level(logging.INFO, logger="sed_lightning.training.tuning"):
        metrics = train(cfg)
    # validation read first; the test split only once the tuned settings were written
    assert reads[0] == ("val", False)
    assert [written for split, written in reads if split == "test"] == [True]
    saved = json.loads((run / "metrics_tuned.json").read_text())
    assert_returned_equal_file(metrics, saved, "tuned")
    assert_untuned_metrics_kept(metrics, run)
    # the tuned settings are those of the CLI's tuning function on the same run dir
    monkeypatch.undo()
    expected = tp.tune(tp.load_split(run, "val"), tp.run_postprocess(run)).postprocess
    tuned = yaml.safe_load((run / "postprocess_tuned.yaml").read_text())
    assert tuned == yaml.safe_load(yaml.safe_dump(plain(expected)))
    assert any(
        "test with the tuned decoder: event_f1" in r.message and "metrics_tuned.json" in r.message
        for r in caplog.records
    )
    # the run's checkpoint (its config has postprocess.tune) still decodes
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    assert Predictor.from_checkpoint(best).postprocessor.threshold["alarm"] == 0.5


def test_sebbs_run_tunes_boxes_on_validation_then_scores_test(tmp_path, data_dir, monkeypatch):
    pytest.importorskip("sebbs")
    run = tmp_path / "run"
    cfg = finalize(compose_train(["postprocess=sebbs"]), run, data_dir)
    reads = spy_on_split_reads(monkeypatch, run, "postprocess_sebbs.yaml")
    metrics = train(cfg)
    assert reads[0] == ("val", False)
    assert [written for split, written in reads if split == "test"] == [True]
    assert yaml.safe_load((run / "postprocess_sebbs.yaml").read_text())["method"] == "sebbs"
    saved = json.loads((run / "metrics_sebbs.json").read_text())
    assert_returned_equal_file(metrics, saved, "sebbs")
    assert "val_sebbs/event_f1" in metrics and "test_sebbs/event_f1" in metrics
    assert_untuned_metrics_kept(metrics, run)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("postprocess.tune=sebs", "postprocess.tune: unknown method 'sebs'; allowed: null, median, sebbs"),
        ("postprocess.tune=tuned_median", "postprocess.tune: unknown method 'tuned_median'"),
    ],
)  # fmt: skip
def test_a_bad_tune_value_is_a_one_line_config_error(override, message, tmp_path):
    data = tmp_path / "data"  # empty: nothing may be synthesized into it
    data.mkdir()
    cfg = finalize(compose_train([override]), tmp_path / "run", data)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not any(data.iterdir()) and not (tmp_path / "run" / "checkpoints").exists()


def test_sebbs_without_the_package_stops_before_training(tmp_path, monkeypatch):
    import sed_lightning.postprocessing.sebbs as sebbs_module

    def missing():
        raise ImportError("postprocess=sebbs needs the optional `sebbs` package (AGPL-3.0)")

    monkeypatch.setattr(sebbs_module, "import_sebbs", missing)
    data = tmp_path / "data"
    data.mkdir()
    cfg = finalize(compose_train(["postprocess=sebbs"]), tmp_path / "run", data)
    with pytest.raises(ConfigError, match=r"^postprocess\.tune: .*needs the optional `sebbs`"):
        train(cfg)
    assert not any(data.iterdir())


@pytest.mark.parametrize(
    ("test", "val_dir", "says"),
    [(False, None, "test=false"), (True, None, "no validation scores")],
)
def test_nothing_to_tune_on_is_a_warning(tmp_path, caplog, test, val_dir, says):
    cfg = OmegaConf.create({"test": test, "postprocess": {"tune": "median"}})
    with caplog.at_level(logging.WARNING, logger="sed_lightning.training.tuning"):
        assert tune_after_test(cfg, True, val_dir) == {}
    assert says in caplog.text and "nothing" in caplog.text
    caplog.clear()
    cfg.postprocess.tune = None  # the default: silent
    assert tune_after_test(cfg, True, tmp_path) == {} and not caplog.text


def test_tuned_figures_never_replace_the_runs_own():
    tuned = prefixed(
        {"val/event_f1": 0.9, "test/event_f1/alarm": 0.5, "versions/sebbs": "1.0.2"},
        "metrics_sebbs.json",
    )
    assert tuned == {"val_sebbs/event_f1": 0.9, "test_sebbs/event_f1/alarm": 0.5}


def test_every_self_training_round_is_tuned_in_its_own_dir(tmp_path, data_dir):
    from sed_lightning.selftraining.rounds import run_rounds
    from sed_lightning.train import run

    overrides = [
        "postprocess=tuned_median",
        "self_training.rounds=1",
        "self_training.thresholds={default: 0.0, alarm: 0.3}",
    ]
    cfg = finalize(compose_train(overrides), tmp_path / "run", data_dir)
    metrics = run_rounds(cfg, run)
    for k in (0, 1):
        assert (tmp_path / "run" / "rounds" / f"round_{k}" / "metrics_tuned.json").is_file()
    last = json.loads((tmp_path / "run" / "rounds" / "round_1" / "metrics_tuned.json").read_text())
    assert metrics["test_tuned/event_f1"] == pytest.approx(last["test/event_f1"])
