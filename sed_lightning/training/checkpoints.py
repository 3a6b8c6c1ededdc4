"""Initialising a module's weights from a checkpoint (not a resume: no optimizer state)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from sed_lightning.training.module import SEDModule
from sed_lightning.training.preflight import ConfigError

log = logging.getLogger(__name__)


def load_weights(
    module: SEDModule, path: str | Path, setting: str, skip_prefixes: Sequence[str] = ()
) -> None:
    """Load a checkpoint's weights into ``module`` (strict; tensors only).

    Args:
        module: the module to initialise.
        path: a Lightning checkpoint written by sed_lightning.
        setting: the config key that named ``path`` (``init_from``, ``label_constraint.ckpt``),
            quoted in every error.
        skip_prefixes: checkpoint entries to leave out (e.g. layers another method adds).

    Raises
    ------
    ConfigError
        Missing or unreadable file, other class names, or weights that do not fit.
    """
    if not Path(path).is_file():
        raise ConfigError(f"{setting}: no checkpoint file {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, or objects beyond tensors and containers
        raise ConfigError(f"{setting}: cannot read {path}: {err}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{setting}: {path} is not a Lightning checkpoint")
    saved_classes = checkpoint.get("class_names")
    if saved_classes is not None and list(saved_classes) != module.class_names:
        raise ConfigError(
            f"{setting}: {path} was trained on classes {list(saved_classes)}, "
            f"this run has {module.class_names}"
        )
    prefixes = tuple(skip_prefixes)
    state = {
        k: v
        for k, v in checkpoint["state_dict"].items()
        if not (prefixes and k.startswith(prefixes))
    }
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"{setting}: {path} does not fit the model: {err}") from err
    log.info("%s: weights initialised from %s", setting, path)
