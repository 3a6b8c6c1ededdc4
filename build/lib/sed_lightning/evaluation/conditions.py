"""Metrics per recording condition: the same figures on the clips of each condition.

DCASE 2016 Task 2 reported its results per event-to-background ratio (-6, 0, +6 dB); a
detector that holds on generated backgrounds and fails on recorded ones shows it here
before it shows on audio it did not make. A *conditions table* has a ``filename`` column and
one column per condition (values are strings). It is read from a TSV of that form (a user's
own: room, microphone, ...) or made from a synthesized set's ``recipes.jsonl``
(:func:`conditions_from_recipes`).

    >>> import pandas as pd
    >>> ref = pd.DataFrame({"filename": ["a.wav", "b.wav"], "onset": [1.0, 1.0],
    ...                     "offset": [2.0, 2.0], "event_label": ["dog", "dog"]})
    >>> est = ref.iloc[:1]  # finds the event of a.wav, misses b.wav's
    >>> cond = pd.DataFrame({"filename": ["a.wav", "b.wav"], "ebr_db": ["6", "-6"]})
    >>> by = metrics_by_condition(ref, est, ["dog"], cond)
    >>> by["ebr_db"]["6"]["event_f1"], by["ebr_db"]["-6"]["event_f1"], by["ebr_db"]["6"]["n_clips"]
    (1.0, 0.0, 1)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from sed_lightning.data.tsv import LabelFileError
from sed_lightning.evaluation.metrics import dcase2016_metrics, sed_eval_metrics
from sed_lightning.evaluation.scores import audio_id

__all__ = ["conditions_from_recipes", "metrics_by_condition", "read_conditions"]

#: the figures given per condition (macro event/segment F1; DCASE 2016 onset-only F1, micro)
FIGURES = ("event_f1", "segment_f1", "dcase2016/onset_f1")


def conditions_from_recipes(path: str | PathLike) -> pd.DataFrame:
    """The conditions of a synthesized set from its ``recipes.jsonl`` (one clip a line).

    Columns: ``filename``; ``background_kind`` (``generated`` | ``recorded``);
    ``background`` (``generated`` or the recorded file's stem); ``ebr_db``, the EBR level
    of the clip's events (``mixed`` when they differ, ``none`` without events; e.g. ``-6``).

    Raises:
        LabelFileError: a line that is not a clip recipe, naming the file and line.
    """
    path = Path(path)
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise LabelFileError(f"{path}: cannot read the recipes ({err.strerror})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            recipe = json.loads(line)
            background = recipe["background"]
            recorded = background["kind"] == "recorded"
            levels = {float(e["ebr_db"]) for e in recipe["events"]}
            filename = str(recipe["filename"])
            name = Path(background["file"]).stem if recorded else "generated"
        except (ValueError, KeyError, TypeError) as err:
            raise LabelFileError(f"{path}, line {number}: not a clip recipe ({err!r})") from None
        if not levels:
            ebr = "none"
        elif len(levels) == 1:
            ebr = f"{levels.pop():g}"
        else:
            ebr = "mixed"
        kind = "recorded" if recorded else "generated"
        rows.append((filename, kind, name, ebr))
    return pd.DataFrame(rows, columns=["filename", "background_kind", "background", "ebr_db"])


def read_conditions(path: str | PathLike) -> pd.DataFrame:
    """A conditions table from a TSV (``filename`` + condition columns) or, for a
    ``.jsonl`` file, from a synthesized set's recipes (:func:`conditions_from_recipes`)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return conditions_from_recipes(path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise LabelFileError(f"{path}: cannot read the conditions table ({err})") from None
    if "filename" not in table.columns or len(table.columns) < 2:
        raise LabelFileError(
            f"{path}: a conditions table needs a `filename` column and at least one condition "
            f"column; has {list(table.columns)}"
        )
    empty = table.index[table["filename"].str.strip() == ""]
    if len(empty):
        raise LabelFileError(f"{path}, row {int(empty[0]) + 2}: empty filename")
    return table


def metrics_by_condition(
    reference: pd.DataFrame,
    estimated: pd.DataFrame,
    class_names: Sequence[str],
    conditions: pd.DataFrame,
    filenames: Sequence[str] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """:data:`FIGURES` on the clips of each value of each condition column.

    Clips are matched by audio id (file name without folder and extension), so
    ``validation_00001.wav`` in a reference matches ``validation_00001`` in the conditions.

    Args:
        reference, estimated: event tables (``filename onset offset event_label``).
        class_names: the classes scored.
        conditions: ``filename`` + condition columns (:func:`read_conditions`).
        filenames: every evaluated clip (clips without reference events included); default:
            those of ``reference`` and ``estimated``.

    Returns:
        ``{column: {value: {"n_clips": n, "event_f1": ..., ...}}}``, values sorted.

    Raises:
        ValueError: an evaluated clip without a row in ``conditions`` (the first few named).
    """
    by_id = conditions.assign(_id=[audio_id(f) for f in conditions["filename"]])
    duplicated = by_id["_id"][by_id["_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"conditions list clip(s) twice: {duplicated[:5]}")
    files = {str(f) for f in (filenames or [])}
    files |= set(reference["filename"].astype(str)) | set(estimated["filename"].astype(str))
    ids = {f: audio_id(f) for f in sorted(files)}
    known = set(by_id["_id"])
    missing = sorted(f for f, i in ids.items() if i not in known)
    if missing:
        raise ValueError(f"{len(missing)} evaluated clip(s) have no conditions, e.g. {missing[:5]}")
    # the conditions of the evaluated clips only, by audio id
    evaluated = by_id.set_index("_id").loc[sorted(set(ids.values()))].astype(str)
    ref_ids = reference["filename"].astype(str).map(ids)
    est_ids = estimated["filename"].astype(str).map(ids)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for column in (c for c in conditions.columns if c != "filename"):
        out[column] = {}
        for value, group in evaluated.groupby(column, sort=True):
            keep = set(group.index)
            clips = [f for f, i in ids.items() if i in keep]
            ref, est = reference[ref_ids.isin(keep)], estimated[est_ids.isin(keep)]
            figures = sed_eval_metrics(ref, est, class_names, clips)
            figures.update(dcase2016_metrics(ref, est, class_names, clips))
            out[column][str(value)] = {"n_clips": len(keep), **{k: figures[k] for k in FIGURES}}
    return out


def condition_table(by_condition: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown: one row per (condition, value) with its clip count and :data:`FIGURES`."""
    lines = ["| condition | value | clips | " + " | ".join(FIGURES) + " |"]
    lines.append("|---|---|---|" + "---|" * len(FIGURES))
    for column, values in by_condition.items():
        for value, row in values.items():
            cells = " | ".join(f"{row[k]:.3f}" for k in FIGURES)
            lines.append(f"| {column} | {value} | {row['n_clips']} | {cells} |")
    return "\n".join(lines)
