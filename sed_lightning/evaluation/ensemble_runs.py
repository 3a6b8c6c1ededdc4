"""The ensemble of trained runs, from their saved scores: no model is loaded.

Usage (:mod:`sed_lightning.tools`)::

    sed-tools ensemble RUN_DIR RUN_DIR [...] --out DIR [--weights 1 1 ...] [--no-tune]

Each ``RUN_DIR`` is a finished training run (the folder with ``val_scores/``, ``scores/``,
``val_reference.tsv``, ...; in a multirun, the job's folder). The members' frame scores
are averaged clip by clip (:func:`sed_lightning.evaluation.ensemble.average_scores`), and
``DIR`` is written as a run of its own (:func:`build`), so every saved-run tool reads it
(``sed-tools tune``, ``tune-cv`` and ``conditions``)::

    DIR/val_scores/ val_reference.tsv val_durations.tsv    the averaged validation scores
    DIR/scores/ test_reference.tsv test_durations.tsv      the averaged test scores
    DIR/postprocess.yaml     the first member's decoder
    DIR/metrics_val.json     validation figures of the averaged scores (that decoder)
    DIR/postprocess_tuned.yaml, conf/postprocess/tuned.yaml
                             the decoder tuned on the averaged VALIDATION scores
    DIR/metrics.json, metrics_tuned.json
                             test figures, the first member's and the tuned decoder;
                             read only once the tuning is written
    DIR/ensemble.json        the members and weights

``--no-tune`` (``tune=False``) stops after ``metrics_val.json`` (no test file is read). To
detect with the ensemble on new audio: ``python -m sed_lightning.predict
'ckpt=[A.ckpt,B.ckpt,C.ckpt]' postprocess_file=DIR/postprocess_tuned.yaml audio=...
out=...``.

The members must share the validation and test clips, references, classes and frame grid
(the same experiment with other seeds or switches); otherwise the error names the member
that differs.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sed_lightning.common import plain
from sed_lightning.evaluation.ensemble import EnsembleError, average_scores
from sed_lightning.evaluation.scores import write_scores
from sed_lightning.postprocessing.saved_runs import (
    SavedSplit,
    load_split,
    run_postprocess,
)
from sed_lightning.postprocessing.tuning import (
    evaluate_split,
    evaluate_tuned,
    tune_run,
    versions,
)
from sed_lightning.run_files import (
    ENSEMBLE_FILE,
    METHOD_FILES,
    METRICS_FILE,
    POSTPROCESS_FILE,
    SPLIT_FILES,
    VAL_METRICS_FILE,
)

HEADLINE = ("event_f1", "psds1", "dcase2016/onset_f1", "segment_f1")


def _reference_rows(split: SavedSplit) -> pd.DataFrame:
    cols = ["filename", "onset", "offset", "event_label"]
    return split.reference[cols].sort_values(cols).reset_index(drop=True)


def ensemble_split(run_dirs: Sequence[Path], split: str, weights=None) -> SavedSplit:
    """The members' ``split`` (``val`` | ``test``), scores averaged; the reference and
    durations must agree between members."""
    members = [load_split(d, split) for d in run_dirs]
    names = [str(d) for d in run_dirs]
    first = members[0]
    for name, member in zip(names[1:], members[1:], strict=True):
        if not _reference_rows(member).equals(_reference_rows(first)):
            raise EnsembleError(
                f"{name}: its {SPLIT_FILES[split][1]} differs from {names[0]}'s "
                "(members must be scored on the same clips)"
            )
        for clip, duration in first.durations.items():
            if abs(member.durations.get(clip, -1.0) - duration) > 1e-3:
                raise EnsembleError(f"{name}: clip {clip}: another duration than {names[0]}'s")
    scores = average_scores([m.score_dfs for m in members], weights, names)
    return SavedSplit(scores, first.reference, first.durations)


def write_split(out: Path, split: str, saved: SavedSplit, source: Path) -> None:
    """``out``'s score folder of ``split``; the reference and durations copied from the
    first member ``source``."""
    scores_dir, ref_name, dur_name = SPLIT_FILES[split]
    if (out / scores_dir).exists():
        shutil.rmtree(out / scores_dir)
    write_scores(saved.score_dfs, out / scores_dir)
    for name in (ref_name, dur_name):
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)


def prepare_out(out: Path) -> None:
    """Create ``out``; an existing folder is reused only if it holds an earlier ensemble
    (never overwrite a training run or other work)."""
    if out.exists() and any(out.iterdir()) and not (out / ENSEMBLE_FILE).is_file():
        raise EnsembleError(f"{out}: exists and is not an ensemble folder (no {ENSEMBLE_FILE})")
    out.mkdir(parents=True, exist_ok=True)


def build(
    run_dirs: Sequence[Path], out: Path, weights=None, tune: bool = True
) -> dict[str, dict[str, float]]:
    """Write the ensemble folder ``out`` of ``run_dirs`` (see the module docstring).
    Returns ``{"val": ..., "test": ..., "test_tuned": ...}`` figures (test ones only with
    ``tune``)."""
    run_dirs = [Path(d) for d in run_dirs]
    for d in run_dirs:
        if d.resolve() == out.resolve():
            raise EnsembleError(f"{out}: is one of the members")
    prepare_out(out)
    manifest = {
        "members": [str(d.resolve()) for d in run_dirs],
        "weights": list(weights) if weights is not None else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **versions(),
    }
    (out / ENSEMBLE_FILE).write_text(json.dumps(manifest, indent=2))
    own = run_postprocess(run_dirs[0])
    (out / POSTPROCESS_FILE).write_text(
        (run_dirs[0] / POSTPROCESS_FILE).read_text()
        if (run_dirs[0] / POSTPROCESS_FILE).is_file()
        else json.dumps(plain(own))  # YAML reads JSON
    )
    val = ensemble_split(run_dirs, "val", weights)
    write_split(out, "val", val, run_dirs[0])
    figures = {"val": evaluate_split(val, own, prefix="val/")}
    (out / VAL_METRICS_FILE).write_text(
        json.dumps(plain(figures["val"], nan=None), indent=2, sort_keys=True)
    )
    if not tune:
        return figures
    tuning = tune_run(out)  # validation only
    test = ensemble_split(run_dirs, "test", weights)
    write_split(out, "test", test, run_dirs[0])
    before, after = evaluate_tuned(out, tuning)
    (out / METRICS_FILE).write_text(json.dumps(plain(before, nan=None), indent=2, sort_keys=True))
    figures["test"], figures["test_tuned"] = before, after
    return figures


def member_figures(run_dir: Path) -> dict[str, float]:
    """A member's own ``metrics_val.json`` / ``metrics_tuned.json`` (what exists)."""
    out: dict[str, float] = {}
    for name in (VAL_METRICS_FILE, METHOD_FILES["median"][1]):
        path = run_dir / name
        if path.is_file():
            tag = "tuned " if name != VAL_METRICS_FILE else ""
            for key, value in json.loads(path.read_text()).items():
                out[tag + key] = value
    return out


def members_table(run_dirs: Sequence[Path], figures: dict[str, dict[str, float]]) -> str:
    """Members and ensemble side by side (markdown): validation (each run's own decoder)
    and test with the decoder tuned on validation; ``figures``: what :func:`build` returns."""
    cols = [f"val/{k}" for k in HEADLINE] + [f"tuned test/{k}" for k in HEADLINE]
    rows = [(str(d), member_figures(d)) for d in run_dirs]
    ens = {**figures.get("val", {})}
    ens.update({f"tuned {k}": v for k, v in figures.get("test_tuned", {}).items()})
    rows.append(("ensemble", ens))
    lines = ["| run | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, values in rows:
        cells = [
            f"{values[c]:.3f}" if isinstance(values.get(c), (int, float)) else "" for c in cols
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
