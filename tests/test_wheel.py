"""The package as a researcher installs it: the built wheel in a fresh environment, used
from a folder holding only the user's own files (their model module and config folder),
outside any clone.

The environment gets exactly the locked dependencies (``uv sync --frozen`` into a new
folder, linked from uv's cache, so it costs seconds), then the wheel with ``--no-deps``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY

MY_MODELS = '''
import torch
from torch import nn


class LinearEncoder(nn.Module):
    """The user's own encoder: one linear layer a frame."""

    def __init__(self, in_features: int, width: int = 16) -> None:
        super().__init__()
        self.out_features = width
        self.proj = nn.Linear(in_features, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.proj(x))
'''

MY_MODEL_CONFIG = """
defaults:
  - pooling: attention

_target_: sed_lightning.models.sed.SEDModel
_partial_: true
cnn:
  _target_: sed_lightning.models.cnn.CNN
  _partial_: true
  channels: [4, 8, 8]
  pooling: [[2, 4], [2, 4], [1, 4]]
encoder:
  _target_: my_models.LinearEncoder
  _partial_: true
  width: 12
"""

MY_EXPERIMENT = """# @package _global_
defaults:
  - override /model: linear

trainer:
  max_epochs: 1
"""


def _uv() -> str:
    uv = Path(sys.executable).with_name("uv")  # `make install` puts uv in the venv
    found = str(uv) if uv.exists() else shutil.which("uv")
    assert found, "uv not found: run `make install`"
    return found


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel, install it into a new environment; the user's project folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    base_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }
    uv = _uv()
    # sdist, then the wheel from it (in uv's temp folder: no build/ left in the clone)
    _run([uv, "build", "--out-dir", str(tmp / "dist")], ROOT, base_env)
    (wheel,) = (tmp / "dist").glob("sed_lightning-*.whl")
    venv = tmp / "env"
    sync = [uv, "sync", "--frozen", "--no-dev", "--no-install-project", "--python", sys.executable]
    _run(sync, ROOT, {**base_env, "UV_PROJECT_ENVIRONMENT": str(venv)})
    install = [uv, "pip", "install", "--python", str(venv / "bin/python"), "--no-deps"]
    _run([*install, str(wheel)], ROOT, base_env)
    project = tmp / "my_project"
    (project / "configs/model").mkdir(parents=True)
    (project / "configs/experiment").mkdir()
    (project / "my_models.py").write_text(MY_MODELS)
    (project / "configs/model/linear.yaml").write_text(MY_MODEL_CONFIG)
    (project / "configs/experiment/my_exp.yaml").write_text(MY_EXPERIMENT)
    env = {**base_env, "PYTHONPATH": str(project), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    return {"wheel": wheel, "bin": venv / "bin", "project": project, "env": env}


def test_the_wheel_holds_the_configs(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "sed_lightning/conf/train.yaml" in names
    assert "sed_lightning/conf/experiment/dcase2016_office.yaml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(installed["wheel"]).read(entry_points).decode()
    for command in ("sed-train", "sed-predict", "sed-evaluate", "sed-tools"):
        assert command in scripts


def test_the_environment_imports_the_installed_copy(installed):
    code = "import sed_lightning; print(sed_lightning.__file__)"
    where = _installed_command(installed, "python", "-c", code).strip()
    assert "site-packages" in where and not where.startswith(str(ROOT)), where


def _installed_command(installed: dict, command: str, *args: str) -> str:
    """What an installed command prints, run from the user's project folder."""
    cmd = [str(installed["bin"] / command), *args]
    return _run(cmd, installed["project"], installed["env"]).stdout


def test_help_lists_the_groups_a_user_can_set(installed):
    out = _installed_command(installed, "sed-train", "--help")
    assert "sed-train" in out
    for group in ("model:", "backbone:", "experiment:", "trainer:", "postprocess:"):
        assert group in out
    assert "hydra.searchpath" in out  # how to add one's own config folder
    for command in ("sed-predict", "sed-evaluate"):
        assert command in _installed_command(installed, command, "--help")
    out = _installed_command(installed, "sed-tools", "--help")
    for sub in ("tune", "tune-cv", "median-study", "conditions", "ensemble", "report", "rerender"):
        assert sub in out


def test_train_predict_evaluate_from_a_user_project(installed):
    """The user's experiment and model config compose with the built-in groups; their
    own encoder class comes from their own module; the checkpoint predicts; the
    predictions evaluate."""
    project, env, bin_ = installed["project"], installed["env"], installed["bin"]
    _run(
        [
            str(bin_ / "sed-train"),
            "+experiment=my_exp",
            f"hydra.searchpath=[file://{project / 'configs'}]",
            *(o for o in TINY if not o.startswith("model.")),
            "hydra.run.dir=run",
        ],
        project,
        env,
    )
    run = project / "run"
    info = json.loads((run / "run_info.json").read_text())
    assert "+experiment=my_exp" in info["overrides"]
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.exists() and (run / "metrics.json").exists()
    assert (project / "data_cache").is_dir()  # generated data lands in the user's folder
    state = _run(
        [
            str(bin_ / "python"),
            "-c",
            "import torch; s = torch.load('run/checkpoints/last.ckpt', weights_only=True)"
            "['state_dict']; print(sorted(k for k in s if 'encoder.proj' in k))",
        ],
        project,
        env,
    ).stdout
    assert "encoder.proj.weight" in state  # the user's LinearEncoder was trained

    audio = project / "data_cache" / "default" / "test" / "audio"
    _run(
        [
            str(bin_ / "sed-predict"),
            f"ckpt={ckpt}",
            f"audio={audio}",
            "out=pred/predictions.tsv",
        ],
        project,
        env,
    )
    rows = (project / "pred" / "predictions.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["filename", "onset", "offset", "event_label"]
    files = {row.split("\t")[0] for row in rows[1:]}
    assert files <= {p.name for p in audio.glob("*.wav")}
    out = _run(
        [
            str(bin_ / "sed-evaluate"),
            f"ref={run / 'test_reference.tsv'}",
            "est=pred/predictions.tsv",
        ],
        project,
        env,
    ).stdout
    figures = json.loads(out[out.index("{") :])
    assert 0.0 <= figures["event_f1"] <= 1.0
