"""Compose the real Hydra config and shrink it so a whole run takes seconds on CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from sed_lightning.config import register_configs

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test`), share the cores between the workers: torch's
    default of one thread a core in every worker would oversubscribe them."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


CONF = str(ROOT / "sed_lightning" / "conf")
CLASSES = ["alarm", "speech", "knock", "water", "engine", "dog_bark"]

# Everything small: 3 s clips, a handful of clips per set, a tiny network.
TINY = [
    "data.clip_duration=3.0",
    "data.batch_sizes.strong=2",
    "data.batch_sizes.weak=2",
    "data.eval_batch_size=4",
    "data.synthesis.bank_per_class=7",
    "data.synthesis.sets.train_strong.n_clips=6",
    "data.synthesis.sets.train_weak.n_clips=6",
    "data.synthesis.sets.train_unlabeled.n_clips=4",
    "data.synthesis.sets.validation.n_clips=4",
    "data.synthesis.sets.test.n_clips=5",
    "model.cnn.channels=[4,8,8,8,8]",
    "model.encoder.d_model=16",
    "model.encoder.ffn_dim=32",
    "model.encoder.num_layers=1",
    "model.encoder.num_heads=2",
    "trainer.max_epochs=1",
    "+trainer.enable_model_summary=false",
    "+trainer.enable_progress_bar=false",
    "scheduler.total_iters=2",
]


def compose_train(overrides: list[str] = (), tiny: bool = True) -> DictConfig:
    """The real train config with test overrides, as a Hydra app would see it."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            config_name="train",
            return_hydra_config=True,
            overrides=[*(TINY if tiny else []), *overrides],
        )
    return cfg


def finalize(cfg: DictConfig, output_dir: Path, data_dir: Path) -> DictConfig:
    """Point the run at tmp folders and register it as the current Hydra run."""
    with open_dict(cfg):
        cfg.paths.root_dir = str(ROOT)
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """Generated data shared by every test of the session (synthesized once)."""
    return tmp_path_factory.mktemp("data_cache")


@pytest.fixture
def cfg_train(tmp_path, data_dir) -> DictConfig:
    cfg = finalize(compose_train(), tmp_path / "run", data_dir)
    yield cfg
    GlobalHydra.instance().clear()
