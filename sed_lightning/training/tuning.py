"""The last step of ``train`` with ``postprocess.tune`` set (``postprocess=tuned_median`` or
``postprocess=sebbs``): tune the decoder on the run's VALIDATION scores, then score the test
once with it.

The work is :func:`sed_lightning.postprocessing.tuning.tune_and_test`, what
``sed-tools tune RUN_DIR [--method sebbs]`` does, on the files the
run has just written (``val_scores/`` from :func:`~sed_lightning.training.evaluation.save_val_scores`,
then ``scores/`` of the test): the same files come out (``postprocess_tuned.yaml`` +
``metrics_tuned.json``, or ``postprocess_sebbs.yaml`` + ``metrics_sebbs.json``). The run's
own ``metrics.json`` and its validation metrics (model selection, ``optimized_metric``) stay
those of the untuned ``median_window`` / ``threshold``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sed_lightning.common import HEADLINE_METRICS
from sed_lightning.run_files import METHOD_FILES, SPLIT_FILES

log = logging.getLogger(__name__)


def tuned_prefix(metrics_file: str, split: str) -> str:
    """The prefix of a tuned split's figures in a run's metrics, named after the file they
    are written to: ``metrics_tuned.json`` -> ``test_tuned/``, ``metrics_sebbs.json`` ->
    ``val_sebbs/`` for ``val``.

    >>> tuned_prefix("metrics_sebbs.json", "test")
    'test_sebbs/'
    """
    return f"{split}_{Path(metrics_file).stem.removeprefix('metrics_')}/"


def prefixed(metrics: dict[str, Any], metrics_file: str) -> dict[str, float]:
    """The numeric ``val/...`` and ``test/...`` figures of ``metrics`` under their tuned
    prefix (:func:`tuned_prefix`): never the keys of the run's own metrics (``val/event_f1``,
    what a sweep optimizes, stays the untuned model selection's)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        split, _, name = key.partition("/")
        if split in ("val", "test") and isinstance(value, int | float):
            out[tuned_prefix(metrics_file, split) + name] = float(value)
    return out


def tune_after_test(
    cfg: DictConfig, is_global_zero: bool, val_dir: Path | None
) -> dict[str, float]:
    """With ``postprocess.tune`` set, tune on ``val_dir``'s validation scores and score its
    test with the tuned decoder (global rank 0 only); returns the tuned figures under
    ``test_tuned/`` (``median``) or ``test_sebbs/`` and ``val_sebbs/`` (``sebbs``), ``{}``
    when nothing was tuned (no ``tune``, ``test=false``, no validation scores written)."""
    method = cfg.postprocess.get("tune")
    if not method or not is_global_zero:
        return {}
    cli = "sed-tools tune RUN_DIR" + (" --method sebbs" if method == "sebbs" else "")
    if not cfg.test:
        log.warning("postprocess.tune=%s: test=false, so nothing is tuned (later: %s)", method, cli)
        return {}
    if val_dir is None or not (Path(val_dir) / SPLIT_FILES["val"][0]).is_dir():
        log.warning(
            "postprocess.tune=%s: no validation scores were written (callbacks.evaluation "
            "without output_dir or with save_val_scores=false, or fast_dev_run): nothing tuned",
            method,
        )
        return {}
    from sed_lightning.postprocessing.tuning import tune_and_test

    run_dir = Path(val_dir)
    settings_file, metrics_file = METHOD_FILES[method]
    log.info("postprocess.tune=%s: tuning on the validation scores of %s", method, run_dir)
    try:
        metrics = tune_and_test(run_dir, method)
    except (OSError, ValueError) as err:  # e.g. no validation events to tune on
        log.warning("postprocess.tune=%s failed: %s (retry: %s)", method, err, cli)
        return {}
    tuned = prefixed(metrics, metrics_file)
    test_prefix = tuned_prefix(metrics_file, "test")
    headline = ", ".join(
        f"{name} {tuned[test_prefix + name]:.4f}"
        for name in HEADLINE_METRICS
        if test_prefix + name in tuned
    )
    log.info(
        "postprocess.tune=%s (tuned on validation only), test with the tuned decoder: %s -> %s, %s",
        method,
        headline,
        run_dir / settings_file,
        run_dir / metrics_file,
    )
    return tuned
