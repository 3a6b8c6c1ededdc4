"""Helpers for tests that run ``python -m sed_lightning.train`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sed_lightning.training.build import build_datamodule, build_module
from tests.conftest import ROOT, TINY, compose_train, finalize


def ensure_data(data_dir: Path, tmp_path: Path) -> None:
    """Synthesize the tiny data once, so that concurrent runs only read it."""
    cfg = finalize(compose_train(), tmp_path / "synth", data_dir)
    build_datamodule(cfg, build_module(cfg)).prepare_data()


def train_cmd(run_dir: Path, data_dir: Path, *overrides: str) -> list[str]:
    """The tiny training run in ``run_dir`` (its Hydra run dir) as a command line."""
    return [
        sys.executable,
        "-m",
        "sed_lightning.train",
        *TINY,
        f"hydra.run.dir={run_dir}",
        f"paths.data_dir={data_dir}",
        *overrides,
    ]


def env(**extra: str) -> dict[str, str]:
    # one thread each: runs started side by side do not fight over the cores
    return {**os.environ, "HYDRA_FULL_ERROR": "1", "OMP_NUM_THREADS": "1", **extra}


def run_train(run_dir: Path, data_dir: Path, *overrides: str, timeout: float = 240, **kw):
    """Run to completion; fails the test with the end of the log when it fails."""
    proc = subprocess.run(
        train_cmd(run_dir, data_dir, *overrides),
        cwd=ROOT,
        env=kw.pop("env", None) or env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_run(a: Path, b: Path) -> None:
    """Same test metrics (to 1e-6) and bitwise-identical final weights."""
    assert metrics(a) == pytest.approx(metrics(b), abs=1e-6, nan_ok=True)
    wa, wb = weights(a / "checkpoints" / "last.ckpt"), weights(b / "checkpoints" / "last.ckpt")
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, "weights differ: " + ", ".join(
        f"{k} (max {(wa[k].double() - wb[k].double()).abs().max().item():.2g})"
        for k in different[:5]
    )
