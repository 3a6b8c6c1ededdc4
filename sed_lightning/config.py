"""Structured config schema: Hydra merges conf/train.yaml onto it, so a misspelt key in a
config file, an experiment or an override is rejected with the key's name, and values of
the wrong type are rejected too. Nodes built by ``_target_`` (model, trainer, ...) are
checked by the constructors they instantiate (an unknown argument names itself)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    data_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class SetSourceConfig:
    kind: str = MISSING
    audio_dir: str = MISSING
    labels: str | None = None
    durations: str | None = None


@dataclass
class DataConfig:
    _target_: str = "sed_lightning.data.datamodule.SEDDataModule"
    class_names: list[str] = MISSING
    sample_rate: int = 16000
    clip_duration: float = 10.0
    batch_sizes: dict[str, int] = field(default_factory=lambda: {"strong": 12, "weak": 12})
    train_sets: list[str] = field(default_factory=lambda: ["train_strong", "train_weak"])
    val_set: str = "validation"
    test_set: str = "test"
    sets: dict[str, SetSourceConfig] | None = None
    synthesis: Any = None
    events_dir: str | None = None
    eval_batch_size: int = 32
    num_workers: int = 0
    pin_memory: bool = False
    seed: int = 0
    n_batches: int | None = None
    on_bad_file: str = "raise"  # raise | skip (see sed_lightning/data/validation.py)
    output_dir: str | None = None  # run dir: skipped.tsv / validation_errors.tsv


@dataclass
class LossConfig:
    _target_: str = "sed_lightning.losses.sed_loss.SEDLoss"
    weak_weight: float = 1.0
    strong_weight: float = 1.0
    weighting: str = "fixed"
    min_share: float = 0.1
    # Mean-teacher consistency (the MeanTeacher callback; 0: off) and its ramp-up in steps.
    consistency_weight: float = 0.0
    consistency_rampup: int = 0


@dataclass
class PostprocessConfig:
    # each: a number or a per-class mapping (with optional "default")
    median_window: Any = 0.45
    threshold: Any = 0.5
    min_duration: Any = 0.0


@dataclass
class TrainConfig:
    task_name: str = "train"
    seed: int = 42
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: Any = MISSING
    model: Any = MISSING
    loss: LossConfig = field(default_factory=LossConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    optimizer: Any = MISSING
    scheduler: Any = None
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    train: bool = True
    test: bool = True
    ckpt_path: str | None = None
    # Initialise the network's weights from a checkpoint (not a resume: fresh optimizer).
    init_from: str | None = None
    optimized_metric: str | None = None
    compile: bool = False
    # Optional parts (None: off). Each is a config group: conf/<name>/*.yaml.
    augment: Any = None  # sed_lightning/features/augment.py
    self_training: Any = None  # sed_lightning/selftraining/
    label_constraint: Any = None  # +experiment=label_constraint
    study: Any = None  # ablation study metadata (experiments/<study>, report)


def cpu_precision() -> str:
    """``bf16-mixed`` where the CPU runs bf16 natively (AVX512-BF16 or AMX: oneDNN's bf16
    kernels), else ``32-true`` (bf16 would be emulated, slower than fp32). The CPU
    trainer preset's default: ``precision: ${cpu_precision:}``."""
    import torch

    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16-mixed" if native else "32-true"


def register_resolvers() -> None:
    """OmegaConf resolvers the configs use (idempotent)."""
    if not OmegaConf.has_resolver("cpu_precision"):
        OmegaConf.register_new_resolver("cpu_precision", cpu_precision)


def register_configs() -> None:
    register_resolvers()
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
