"""Several checkpoints scored as one (``Predictor.from_checkpoint([...])``, ``predict
'ckpt=[...]'``): the fixture checkpoint and a copy with a shifted output layer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from sed_lightning.config import register_resolvers
from sed_lightning.inference.journal import SETTINGS_FILE
from sed_lightning.inference.predictor import Predictor
from sed_lightning.predict import predict
from tests.conftest import ROOT
from tests.inference.test_predict_cli import CKPT, make_folder


def variant(tmp_path, name="shifted.ckpt", bias=1.5, classes=None):
    """The fixture checkpoint with ``bias`` added to the output layer (other scores, same
    pipeline), or with its class list reordered."""
    ckpt = torch.load(CKPT, map_location="cpu", weights_only=True)
    ckpt["state_dict"]["model.head.bias"] = ckpt["state_dict"]["model.head.bias"] + bias
    if classes is not None:
        ckpt["sed_config"]["data"]["class_names"] = classes
        ckpt["class_names"] = classes
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


@pytest.fixture
def audio():
    rng = np.random.default_rng(3)
    t = np.arange(int(4.2 * 16000)) / 16000  # longer than the 3 s clip: overlapping windows
    beep = 0.4 * np.sin(2 * np.pi * 900 * t) * ((t > 1.0) & (t < 1.6))
    return (beep + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_the_ensemble_scores_are_the_mean_of_the_members(tmp_path, audio):
    other = variant(tmp_path)
    a = Predictor.from_checkpoint(CKPT).frame_scores(audio)
    b = Predictor.from_checkpoint(other).frame_scores(audio)
    assert np.abs(a - b).max() > 0.05  # the members disagree
    both = Predictor.from_checkpoint([CKPT, other])
    assert both.frame_scores(audio) == pytest.approx((a + b) / 2, abs=1e-6)
    assert both.postprocessor.threshold == Predictor.from_checkpoint(CKPT).postprocessor.threshold


def test_members_of_another_experiment_are_refused_by_name(tmp_path):
    classes = ["speech", "alarm", "knock", "water", "engine", "dog_bark"]
    other = variant(tmp_path, "reordered.ckpt", bias=0.0, classes=classes)
    with pytest.raises(ValueError, match="reordered.ckpt: another sample rate, clip"):
        Predictor.from_checkpoint([CKPT, other])


def test_predict_with_a_checkpoint_list_and_a_tuned_decoder_file(tmp_path):
    audio_dir = tmp_path / "audio"
    names = make_folder(audio_dir, 3)
    other = variant(tmp_path)
    decoder = tmp_path / "postprocess_tuned.yaml"
    # a tuning's file: per-class thresholds; 'alarm' never reported
    decoder.write_text(
        "# tuned\n"
        + yaml.safe_dump({"threshold": {"default": 0.3, "alarm": 1.01}, "min_duration": 0.0})
    )
    out = tmp_path / "events.tsv"
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "sed_lightning" / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="predict",
            overrides=[
                f"ckpt=[{CKPT},{other}]",
                f"audio={audio_dir}",
                f"out={out}",
                f"postprocess_file={decoder}",
                "postprocess.median_window=0.1",
                f"scores={tmp_path / 'scores'}",
            ],
        )
    assert predict(cfg) == 0
    events = pd.read_csv(out, sep="\t")
    assert len(events) > 0 and "alarm" not in set(events["event_label"])
    settings = json.loads((tmp_path / "events.tsv.progress" / SETTINGS_FILE).read_text())
    assert len(settings["ckpt"]) == 2 and settings["threshold"]["alarm"] == pytest.approx(1.01)
    assert settings["median_window"]["alarm"] == pytest.approx(0.1)  # the override wins
    # the frame scores written are the two checkpoints' mean
    written = pd.read_csv(tmp_path / "scores" / (names[-1].rsplit(".", 1)[0] + ".tsv"), sep="\t")
    expected, _ = Predictor.from_checkpoint([CKPT, other]).file_scores(audio_dir / names[-1])
    classes = list(written.columns[2:])
    assert written[classes].to_numpy() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        cfg.ckpt = [str(CKPT), str(tmp_path / "missing.ckpt")]
        predict(cfg)
