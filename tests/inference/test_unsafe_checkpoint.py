"""A checkpoint that ``torch.load(weights_only=True)`` refuses (it holds pickled code), a
damaged one and a missing one stop ``predict`` and ``train`` with one line naming the file,
before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from sed_lightning.inference import Predictor
from sed_lightning.train import train
from sed_lightning.training.checkpoints import read_checkpoint
from sed_lightning.training.preflight import ConfigError
from tests.conftest import ROOT, compose_train, finalize

CKPT = ROOT / "tests" / "fixtures" / "torchaudio_era" / "tiny.ckpt"


class Hook:
    """Any object of a class: unpickling it means importing and running this module's code."""


def unsafe_checkpoint(path, payload):
    """The fixture's checkpoint with ``payload`` pickled into it."""
    checkpoint = torch.load(CKPT, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"] = {"hook": payload}
    torch.save(checkpoint, path)
    return path


def test_predict_refuses_a_checkpoint_with_pickled_code_in_one_line(tmp_path):
    ckpt = unsafe_checkpoint(tmp_path / "crafted.ckpt", print)
    audio = tmp_path / "audio"
    audio.mkdir()
    out = tmp_path / "out" / "events.tsv"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(
        [sys.executable, "-m", "sed_lightning.predict", f"ckpt={ckpt}", f"audio={audio}", f"out={out}"],
        cwd=tmp_path,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(ckpt) in lines[0] and "unsafe" in lines[0] and "print" in lines[0], lines[0]
    assert not out.exists() and not out.parent.exists()  # nothing was predicted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "crafted.ckpt"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"ckpt: no checkpoint file .*/x\.ckpt$"),
        (b"", r"ckpt: .*/x\.ckpt: not a readable checkpoint \(.*EOFError\)$"),
        (b"not a checkpoint", r"ckpt: .*/x\.ckpt: not a readable checkpoint"),
        (CKPT.read_bytes()[:300], r"ckpt: .*/x\.ckpt: not a readable checkpoint \(.*zip archive"),
    ],
    ids=["missing", "empty", "not-torch", "truncated"],
)
def test_a_missing_or_damaged_checkpoint_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "x.ckpt"
    if content is not None:
        path.write_bytes(content)
    for load in (lambda: read_checkpoint(path, "ckpt"), lambda: Predictor.from_checkpoint(path)):
        with pytest.raises(ConfigError, match=message) as err:
            load()
        assert "\n" not in str(err.value)


def test_an_object_of_a_class_is_refused_too(tmp_path):
    path = unsafe_checkpoint(tmp_path / "crafted.ckpt", Hook())
    with pytest.raises(ConfigError, match=r"crafted\.ckpt: checkpoint refused as unsafe") as err:
        Predictor.from_checkpoint(path)
    assert "Hook" in str(err.value) and "\n" not in str(err.value)


def test_train_init_from_an_unsafe_checkpoint_stops_before_anything_runs(tmp_path):
    ckpt = unsafe_checkpoint(tmp_path / "crafted.ckpt", print)
    data = tmp_path / "data"
    data.mkdir()
    cfg = finalize(compose_train([f"init_from={ckpt}"]), tmp_path / "run", data)
    with pytest.raises(ConfigError, match=r"^init_from: .*crafted\.ckpt: checkpoint refused"):
        train(cfg)
    assert not any(data.iterdir()) and not (tmp_path / "run" / "checkpoints").exists()
