"""Config mistakes the schema cannot see fail before any data is prepared or step trained,
with one message that names the key."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import torch

from sed_lightning.train import train
from sed_lightning.training.preflight import ConfigError
from tests.conftest import ROOT, TINY, compose_train, finalize


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("postprocess.threshold={default: 0.5, dgo: 0.3}", r"postprocess\.threshold\.dgo: unknown class name 'dgo'"),
        ("postprocess.median_window={dog_bark: wide}", r"postprocess\.median_window\.dog_bark must be a number"),
        ("postprocess.min_duration={dog_bark: 0.2}", r"postprocess\.min_duration: no value for class"),
        ("postprocess.threshold=1.5", r"postprocess\.threshold must be in \[0, 1\]"),
        ("callbacks.evaluation.postprocess={threshold: {spech: 0.3, default: 0.5}}", r"callbacks\.evaluation\.postprocess\.threshold\.spech"),
        ("+data.batch_sizes.strnog=2", r"data\.batch_sizes: unknown kind\(s\) \['strnog'\]"),
        ("init_from=/nonexistent/best.ckpt", r"init_from: no checkpoint file /nonexistent/best\.ckpt"),
    ],
)  # fmt: skip
def test_bad_value_is_rejected_before_training(override, message, tmp_path):
    data = tmp_path / "data"  # empty: nothing may be synthesized into it
    data.mkdir()
    cfg = finalize(compose_train([override]), tmp_path / "run", data)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not any(data.iterdir()) and not (tmp_path / "run" / "checkpoints").exists()


def test_command_line_error_names_the_key(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sed_lightning.train",
            *TINY,
            f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.data_dir={tmp_path / 'data'}",
            "postprocess.threshold={default: 0.5, dgo: 0.3}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "postprocess.threshold.dgo: unknown class name 'dgo'" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_bad_user_data_stops_before_training_with_every_problem(tmp_path):
    """DESED-format user data with two bad rows: one message lists both, no traceback."""
    import numpy as np
    import soundfile as sf

    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(audio / name, np.zeros(16000, dtype=np.float32), 16000)
    strong = tmp_path / "strong.tsv"
    strong.write_text(
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t0.1\t0.5\talarm\n"
        "a.wav\t0.7\t0.2\talarm\n"  # line 3: onset after offset
        "b.wav\t0.1\t0.5\tcat\n"  # line 4: unknown label
    )
    weak = tmp_path / "weak.tsv"
    weak.write_text("filename\tevent_labels\na.wav\talarm\nb.wav\tknock\n")
    sets = []
    for name, kind, labels in [
        ("train_strong", "strong", strong),
        ("train_weak", "weak", weak),
        ("validation", "strong", strong),
        ("test", "strong", strong),
    ]:
        sets += [
            f"data.sets.{name}.kind={kind}",
            f"data.sets.{name}.audio_dir={audio}",
            f"data.sets.{name}.labels={labels}",
        ]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sed_lightning.train",
            "data=desed",
            "data.clip_duration=1.0",
            "data.class_names=[alarm,knock]",
            f"hydra.run.dir={tmp_path / 'run'}",
            *sets,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "data error" in proc.stderr and "Traceback" not in proc.stderr
    assert f"{strong} line 3" in proc.stderr and f"{strong} line 4" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"no \.pt file .*missing\.pt"),
        ("pickle", r"features\.pt: not a tensor file torch loads with weights_only"),
        ("dict", r"features\.pt: a dict without 'features'"),
        ("bytes", r"features\.pt: not a tensor file"),
    ],
)
def test_a_bad_label_feature_file_is_one_config_error(content, message, tmp_path):
    """``label_constraint.text_model_path``: missing, unsafe (a pickled object), the wrong
    dict or not a torch file at all: one ConfigError naming the key and the file."""
    path = tmp_path / ("missing.pt" if content is None else "features.pt")
    if content == "pickle":
        torch.save({"features": argparse.Namespace(rows=5)}, path)  # needs full unpickling
    elif content == "dict":
        torch.save({"feats": torch.zeros(6, 2)}, path)
    elif content == "bytes":
        path.write_bytes(b"not a zip file")
    data = tmp_path / "data"
    data.mkdir()
    overrides = [
        "+experiment=label_constraint",
        "backbone=scratch",  # no pretrained weights to read
        f"label_constraint.text_model_path={path}",
    ]
    cfg = finalize(compose_train(overrides, tiny=False), tmp_path / "run", data)
    with pytest.raises(ConfigError, match="label_constraint.text_model_path: .*" + message):
        train(cfg)
    assert not any(data.iterdir()) and not (tmp_path / "run" / "checkpoints").exists()
