"""Checks and settings applied before a run starts: config values the schema cannot check,
the checkpoint to resume from, and offline experiment tracking."""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from sed_lightning.data.batch import KINDS
from sed_lightning.postprocessing import (
    DECODER_KEYS,
    TUNE_METHODS,
    PostProcessor,
    decoder_settings,
)

log = logging.getLogger(__name__)

POSTPROCESS_KEYS = (*DECODER_KEYS, "tune")


class ConfigError(ValueError):
    """A config value that cannot work; the message names its key."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def check_postprocess(
    settings: Mapping[str, Any], class_names: list[str], frame_hop: float, key: str = "postprocess"
) -> PostProcessor:
    """Build the post-processor of ``settings`` or raise :class:`ConfigError` naming the key
    (e.g. ``postprocess.threshold.dgo``: an unknown class name)."""
    settings = (
        OmegaConf.to_container(settings, resolve=True)
        if OmegaConf.is_config(settings)
        else dict(settings)
    )
    unknown = sorted(set(settings) - set(POSTPROCESS_KEYS))
    if unknown:
        raise ConfigError(f"{key}: unknown option(s) {unknown}; allowed: {list(POSTPROCESS_KEYS)}")
    check_tune(settings.get("tune"), key)
    settings = decoder_settings(settings)
    for name, value in settings.items():
        values = value.items() if isinstance(value, Mapping) else [(None, value)]
        for cls, v in values:
            where = f"{key}.{name}" + (f".{cls}" if cls is not None else "")
            if cls is not None and cls != "default" and cls not in class_names:
                raise ConfigError(
                    f"{where}: unknown class name {cls!r}; the classes are {class_names} "
                    "(or 'default' for the others)"
                )
            if not _is_number(v):
                raise ConfigError(f"{where} must be a number, got {v!r}")
            if name == "threshold" and not 0.0 <= v <= 1.0:
                raise ConfigError(f"{where} must be in [0, 1], got {v}")
            if v < 0:
                raise ConfigError(f"{where} must be >= 0, got {v}")
    try:
        return PostProcessor(class_names, frame_hop, **settings)
    except (TypeError, ValueError) as err:  # e.g. a mapping without 'default' missing a class
        raise ConfigError(f"{key}.{err}") from err


def check_tune(method: Any, key: str = "postprocess") -> None:
    """``postprocess.tune``: ``None`` or one of :data:`TUNE_METHODS`; ``sebbs`` needs the
    optional ``sebbs`` package, checked now rather than after the training."""
    if method is None:
        return
    if method not in TUNE_METHODS:
        allowed = ", ".join(["null", *TUNE_METHODS])
        raise ConfigError(f"{key}.tune: unknown method {method!r}; allowed: {allowed}")
    if method == "sebbs":
        from sed_lightning.postprocessing.sebbs import import_sebbs

        try:
            import_sebbs()
        except ImportError as err:
            raise ConfigError(f"{key}.tune: {err}") from None


def check_config(cfg: DictConfig, frame_hop: float) -> None:
    """Values the structured schema cannot check; raises :class:`ConfigError` before any
    data is prepared or any step is trained."""
    class_names = [str(c) for c in cfg.data.class_names]
    if len(set(class_names)) != len(class_names):
        raise ConfigError(f"data.class_names has duplicates: {class_names}")
    kinds = sorted(set(cfg.data.batch_sizes) - set(KINDS))
    if kinds:
        raise ConfigError(f"data.batch_sizes: unknown kind(s) {kinds}; the kinds are {list(KINDS)}")
    check_postprocess(cfg.postprocess, class_names, frame_hop)
    for name, callback in (cfg.get("callbacks") or {}).items():
        if callback and "postprocess" in callback:
            check_postprocess(
                callback.postprocess, class_names, frame_hop, f"callbacks.{name}.postprocess"
            )


def last_checkpoint(cfg: DictConfig) -> Path:
    """The run's ``last.ckpt``: written by the ModelCheckpoint named ``last`` (or one with
    ``save_last``); ``<output_dir>/checkpoints/last.ckpt`` by default."""
    for callback in (cfg.get("callbacks") or {}).values():
        if callback and str(callback.get("_target_", "")).endswith("ModelCheckpoint"):
            if callback.get("dirpath") and (
                callback.get("filename") == "last" or callback.get("save_last")
            ):
                return Path(callback.dirpath) / "last.ckpt"
    return Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """The checkpoint a run resumes from: ``None``, a file, or ``last``.

    ``last`` means ``last.ckpt`` in this run's checkpoint folder. Every run gets a new
    output folder, so resuming a run means running in its folder again:
    ``hydra.run.dir=<run dir> ckpt_path=last``.
    """
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        return None
    if ckpt == "last":
        path = last_checkpoint(cfg)
        if not path.is_file():
            raise ConfigError(
                f"ckpt_path=last: there is no {path}. `last` resumes the run in "
                f"{cfg.paths.output_dir}; to resume an earlier run, run in its folder: "
                "hydra.run.dir=<that run's dir> ckpt_path=last (or give ckpt_path=<file>)"
            )
        return str(path)
    if not Path(ckpt).is_file():
        raise ConfigError(f"ckpt_path: no checkpoint file {ckpt}")
    return str(ckpt)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def config_differences(cfg: DictConfig, saved: Mapping[str, Any]) -> list[str]:
    """``key: saved -> current`` for every config value that differs from a checkpoint's
    (run folders, Hydra settings and ``ckpt_path`` itself left out)."""
    current = cfg.copy()
    with open_dict(current):
        current.ckpt_path = saved.get("ckpt_path")
        current.pop("hydra", None)
    now = _flatten(OmegaConf.to_container(current, resolve=True))
    before = _flatten({k: v for k, v in saved.items() if k != "hydra"})
    skip = ("paths.", "hydra.")
    keys = sorted(k for k in set(now) | set(before) if not k.startswith(skip))
    return [
        f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in keys if now.get(k) != before.get(k)
    ]


def warn_config_changes(cfg: DictConfig, ckpt_path: str) -> None:
    """Log the config values that differ from those the checkpoint was trained with."""
    try:
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # only a diagnostic: loading for real happens in fit()
        log.debug("could not read the config of %s: %s", ckpt_path, err)
        return
    changes = config_differences(cfg, saved.get("sed_config") or {})
    if changes:
        log.warning(
            "resuming %s with config values that differ from its run's:\n  %s",
            ckpt_path,
            "\n  ".join(changes),
        )


def _wandb_credentials() -> bool:
    """Whether W&B could log in without asking: an API key in the environment or netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def configure_wandb(cfg: DictConfig) -> None:
    """Keep W&B offline unless the user configured it to go online with credentials.

    A W&B logger with ``offline: true`` (the default) runs with ``WANDB_MODE=offline``:
    the run is written to ``<run dir>/wandb/offline-run-*`` and nothing is sent (``wandb
    sync`` it later). With ``offline: false`` but no API key (``WANDB_API_KEY`` or a netrc
    entry), the run falls back to offline with a warning instead of waiting for a login.
    """
    loggers = {
        name: lg
        for name, lg in (cfg.get("logger") or {}).items()
        if lg and str(lg.get("_target_", "")).endswith("WandbLogger")
    }
    if not loggers:
        return
    for name, lg in loggers.items():
        if not lg.get("offline", False) and not _wandb_credentials():
            log.warning(
                "logger.%s.offline=false but no W&B API key (WANDB_API_KEY or netrc): "
                "logging offline instead",
                name,
            )
            with open_dict(lg):
                lg.offline = True
    if all(lg.get("offline", False) for lg in loggers.values()):
        os.environ["WANDB_MODE"] = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        log.info("W&B logs offline into %s/wandb (upload later: wandb sync)", cfg.paths.output_dir)
