"""Constants and helpers used across the package, in one place.

* :data:`HEADLINE_METRICS`: the metrics a run is summed up by (log summary, self-training
  deltas, the report's columns).
* :func:`plain`: config trees, numpy scalars and NaN as plain Python (for YAML and JSON).
* :func:`exit_error`: how an entry point stops on an error its user can fix (one line).

Others have their home beside the code that defines them: clip kinds ``KINDS`` in
:mod:`sed_lightning.data.batch` (their masks: :func:`sed_lightning.data.batch.clip_kind_masks`),
event-table columns ``STRONG_COLUMNS`` in :mod:`sed_lightning.data.tsv`, audio file suffixes
``AUDIO_SUFFIXES`` in :mod:`sed_lightning.data.audio`, the event bank's ``SPLITS`` in
:mod:`sed_lightning.data.sources`, the best checkpoint
:func:`sed_lightning.training.checkpoints.best_checkpoint`, a term's ramp-up
:func:`sed_lightning.losses.terms.sigmoid_rampup`; the names of a run folder's files
(``metrics.json``, ``val_scores/``, ...) in :mod:`sed_lightning.run_files`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# The headline metrics of a run (each as ``<stage>/<name>``).
HEADLINE_METRICS = ("event_f1", "segment_f1", "psds1", "psds2", "clip_map")


def plain(value: Any, nan: Any = math.nan) -> Any:
    """``value`` as plain Python: OmegaConf containers and mappings -> dicts with string
    keys, sequences (not strings) -> lists, numpy scalars -> Python numbers, NaN -> ``nan``
    (``None`` gives strict JSON).

    >>> plain({1: (np.float32(0.5), float("nan"))}, nan=None)
    {'1': [0.5, None]}
    """
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): plain(v, nan) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(v, nan) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return nan
    return value


def exit_error(prefix: str, err: BaseException, one_line: bool = True) -> SystemExit:
    r"""The ``SystemExit`` an entry point raises for an error its user can fix (a bad
    setting, a missing or unsafe file): ``prefix: err`` on stderr, on one line unless
    ``one_line`` is false, exit status 1, no traceback. With ``HYDRA_FULL_ERROR=1`` (Hydra's
    own switch for complete traces) ``err`` itself is raised instead, with its traceback.

    >>> exit_error("predict", ValueError("ckpt: x.ckpt:\n  refused")).code
    'predict: ckpt: x.ckpt: refused'
    """
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise err
    text = " ".join(str(err).split()) if one_line else str(err)
    return SystemExit(f"{prefix}: {text}")
