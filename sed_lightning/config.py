"""Structured config schema: Hydra merges conf/train.yaml onto it, so a misspelt key in a
config file, an experiment or an override is rejected with the key's name, and values of
the wrong type are rejected too.

Every group the project reads itself has a dataclass here (paths, data, loss,
postprocess, self_training, label_constraint, cost). The groups built by ``_target_`` (features,
model, augment, optimizer, scheduler, trainer, callbacks, logger) are checked by the
constructors they name: :mod:`sed_lightning.training.build` instantiates each of them
before any data is prepared or step trained (the partial optimizer and scheduler are tried
on a dummy parameter), and turns an unknown argument into a
:class:`~sed_lightning.training.preflight.ConfigError` naming the group and the key. Their
own dataclasses would repeat every constructor signature (the models', Lightning's Trainer)
and drift from them."""

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
    shared_dir: str = MISSING


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
    on_bad_file: str = "raise"  # raise | skip (see sed_lightning/data/bad_files.py)
    output_dir: str | None = None  # run dir: skipped.tsv / validation_errors.tsv


@dataclass
class TextEncoderConfig:
    d_model: int = 32
    num_layers: int = 1
    num_heads: int = 2
    ffn_dim: int = 64
    epochs: int = 100
    lr: float = 0.003
    seed: int = 0


@dataclass
class LabelConstraintConfig:
    """conf/label_constraint/default.yaml (sed_lightning/labelconstraint/)."""

    ckpt: str | None = None
    templates: list[str] = field(default_factory=lambda: ["the sound of {label}"])
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    text_model_path: str | None = None
    clip_pooling: str = "mean"
    lambda_: Any = "auto"  # the KL term's weight: a number or "auto"
    rampup: int = 0  # optimizer steps of the KL term's sigmoid ramp-up (0: none)


@dataclass
class SelfTrainingConfig:
    """conf/self_training/default.yaml (sed_lightning/selftraining/)."""

    rounds: int = 0
    unlabeled_set: str = "train_unlabeled"
    thresholds: Any = 0.5  # a number or {class: value, default: value}
    drop_empty: bool = True
    accumulate: bool = True
    init: str = "continue"  # continue | scratch
    max_epochs: int | None = None


@dataclass
class TermConfig:
    """A loss term: its weight once ramped up (0: off) and its sigmoid ramp-up in steps."""

    weight: float = 1.0
    rampup: int = 0


@dataclass
class ConsistencyTermConfig(TermConfig):
    """The mean teacher's term (sed_lightning/training/mean_teacher.py)."""

    weight: float = 0.0
    decay: float = 0.999  # EMA decay of the teacher
    clips: list[str] = field(default_factory=lambda: ["unlabeled", "weak"])


@dataclass
class LossTermsConfig:
    """The terms of the training loss (sed_lightning/losses/terms.py). The label
    constraint's term is set by the label_constraint group (lambda_, rampup)."""

    weak: TermConfig = field(default_factory=TermConfig)
    strong: TermConfig = field(default_factory=TermConfig)
    consistency: ConsistencyTermConfig = field(default_factory=ConsistencyTermConfig)


@dataclass
class LossConfig:
    weighting: str = "fixed"  # fixed | auto (weak/strong from each kind's share of the batch)
    min_share: float = 0.1
    terms: LossTermsConfig = field(default_factory=LossTermsConfig)


@dataclass
class PostprocessConfig:
    # each: a number or a per-class mapping (with optional "default")
    median_window: Any = 0.45
    threshold: Any = 0.5
    min_duration: Any = 0.0
    # after the test, tune the decoder on the validation scores and score the test with it:
    # null (nothing) | median | sebbs (as sed-tools tune --method; checked by check_config)
    tune: str | None = None


@dataclass
class CostConfig:
    """conf/cost/default.yaml (sed_lightning/training/cost.py)."""

    enabled: bool = True
    energy: bool = True  # CodeCarbon's offline tracker around each phase
    country_iso_code: str = "FRA"
    tracking_mode: str = "process"  # process | machine
    measure_power_secs: float = 15.0
    clip_seconds: float = 10.0  # MACs of one clip this long


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
    self_training: SelfTrainingConfig | None = None  # sed_lightning/selftraining/
    label_constraint: LabelConstraintConfig | None = None  # +experiment=label_constraint
    study: Any = None  # ablation study metadata (experiments/<study>, report)
    cost: CostConfig | None = None  # cost.json: params, MACs, time, energy (conf/cost/)


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
