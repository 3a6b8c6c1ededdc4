"""``run_info.json``: what a run was made with (package versions, overrides, start time).

The ablation report (``sed-tools report``) reads it to state the versions and
the dates of the runs behind a table.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from sed_lightning.run_files import RUN_INFO

# distribution names, as pip knows them
PACKAGES = (
    "torch",
    "lightning",
    "hydra-core",
    "sed_eval",
    "sed_scores_eval",
    "sed-lightning",
)


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's and each package's installed version ("not installed" when missing).

    A name that no distribution carries but an installed distribution provides as a
    module is reported with that distribution's version and name: the lock installs the
    ``sed_scores_eval`` module from ``sed_scores_eval_np2`` (the same authors' numpy-2
    build), which :func:`importlib.metadata.version` does not find under the module's name.

    Example:
        >>> versions = package_versions(("torch", "no-such-package-xyz"))
        >>> versions["no-such-package-xyz"], "python" in versions
        ('not installed', True)
    """
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = _provider_version(name)
    return versions


def _provider_version(module: str) -> str:
    """``"<version> (<distribution>)"`` of the distribution providing ``module``, or
    "not installed"."""
    dists = metadata.packages_distributions().get(module.replace("-", "_"), [])
    return f"{metadata.version(dists[0])} ({dists[0]})" if dists else "not installed"


def hydra_overrides() -> tuple[list[str], dict[str, Any]]:
    """The current Hydra job's task overrides and config-group choices (empty outside Hydra)."""
    if not HydraConfig.initialized():
        return [], {}
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    choices = OmegaConf.to_container(hydra_cfg.runtime.choices, resolve=True)
    return overrides, dict(choices)


def run_info(cfg: DictConfig) -> dict[str, Any]:
    """The record written to ``run_info.json`` (see :func:`write_run_info`)."""
    overrides, choices = hydra_overrides()
    study = cfg.get("study")
    return {
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": package_versions(),
        "overrides": overrides,
        "choices": choices,
        "seed": cfg.get("seed"),
        "study": OmegaConf.to_container(study, resolve=True) if study is not None else None,
    }


@rank_zero_only
def write_run_info(cfg: DictConfig, output_dir: str | Path | None = None) -> Path:
    """Write ``run_info.json`` into ``output_dir`` (default: ``cfg.paths.output_dir``).

    Called once at the start of a run, by the global-zero process only.
    """
    out = Path(output_dir or cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RUN_INFO
    path.write_text(json.dumps(run_info(cfg), indent=2, default=str))
    return path


def add_to_run_info(output_dir: str | Path, key: str, value: Any) -> Path | None:
    """Add ``key: value`` to the ``run_info.json`` of ``output_dir`` (e.g. the run's cost,
    known at its end); ``None`` when the folder has none (a self-training round's)."""
    path = Path(output_dir) / RUN_INFO
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    info[key] = value
    path.write_text(json.dumps(info, indent=2, default=str))
    return path
