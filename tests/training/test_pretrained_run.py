"""A real run from the pretrained trunk: the weights file is read once, when training
starts from it; the checkpoint carries them, so predict, resume and ``init_from`` work with
the file gone, and a bad file stops the run with one line."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import soundfile as sf
import torch
from hydra.core.global_hydra import GlobalHydra

from sed_lightning.inference.predictor import Predictor
from sed_lightning.models.mobilenet import MobileNetV3
from sed_lightning.train import train
from sed_lightning.training.checkpoints import read_checkpoint
from tests.conftest import ROOT, TINY, compose_train, finalize
from tests.training.runs import env

PRETRAINED_TINY = [
    *(o for o in TINY if not o.startswith("model.")),
    "model=efficientat",
    "features=efficientat",
    "data.sample_rate=32000",
    "model.encoder.d_model=16",
    "model.encoder.ffn_dim=32",
    "model.encoder.num_layers=1",
    "model.encoder.num_heads=2",
    "model.cnn.sha256=null",
    "model.cnn.freeze_blocks=6",
    "model.cnn.lr_scale=0.1",
]


def run(tmp_path, data_dir, name, *overrides):
    cfg = finalize(
        compose_train([*PRETRAINED_TINY, *overrides], tiny=False), tmp_path / name, data_dir
    )
    try:
        return train(cfg)
    finally:
        GlobalHydra.instance().clear()


def test_checkpoint_works_with_the_weights_file_gone(tmp_path, data_dir):
    torch.manual_seed(0)
    weights = tmp_path / "mn04.pt"
    state = MobileNetV3(width_mult=0.4).state_dict()
    torch.save(state, weights)
    run(tmp_path, data_dir, "first", f"model.cnn.weights={weights}")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    saved = read_checkpoint(last)["state_dict"]
    # the frozen first blocks are the file's tensors, BatchNorm statistics included
    for key in ("features.0.0.weight", "features.3.block.0.1.running_mean"):
        assert torch.equal(saved[f"model.cnn.{key}"], state[key])
    weights.rename(tmp_path / "moved_away.pt")

    clip = tmp_path / "clip.wav"  # another rate: predict resamples to the model's 32 kHz
    sf.write(clip, np.random.default_rng(0).standard_normal(3 * 44100).astype("float32"), 44100)
    predictor = Predictor.from_checkpoint(last)
    scores, _ = predictor.file_scores(clip)
    assert predictor.sample_rate == 32000
    assert scores.shape == (predictor.plan(3 * 32000).n_frames, 6)
    events_out = tmp_path / "events.tsv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sed_lightning.predict",
            f"ckpt={last}",
            f"audio={clip}",
            f"out={events_out}",
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert events_out.read_text().startswith("filename\tonset\toffset\tevent_label")

    run(tmp_path, data_dir, "init", f"model.cnn.weights={weights}", f"init_from={last}")
    run(
        tmp_path,
        data_dir,
        "first",
        f"model.cnn.weights={weights}",
        "ckpt_path=last",
        "trainer.max_epochs=2",
    )
    assert read_checkpoint(last)["epoch"] == 1


def test_a_bad_weights_file_stops_the_run_with_one_line(tmp_path, data_dir):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sed_lightning.train",
            *PRETRAINED_TINY,
            f"model.cnn.weights={bad}",
            f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.data_dir={data_dir}",
        ],
        cwd=ROOT,
        env=env(HYDRA_FULL_ERROR="0"),  # the one-line form, not the debug trace
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("weights error")]
    assert len(lines) == 1 and str(bad) in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
