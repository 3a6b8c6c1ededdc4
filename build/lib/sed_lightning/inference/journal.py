"""The record of finished files that makes a prediction run resumable.

Every process appends one JSON line per finished file to ``<out>.progress/rank<R>.jsonl``
(flushed and synced to disk before the next batch): the file's name, size and modification
time, and either its events or why it failed. A run started again with the same settings
reads these lines, skips the files whose name, size and modification time match, and at
the end writes the outputs from all lines, sorted: the same bytes as a run that was never
interrupted. A line cut short by a kill is ignored (its file is scored again).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from sed_lightning.inference.files import AudioFile
from sed_lightning.postprocessing.events import EVENT_COLUMNS, empty_event_table

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"


def journal_dir(out: str | Path) -> Path:
    """Where the run's progress lines go: ``<out>.progress/`` beside the output TSV."""
    out = Path(out)
    return out.with_name(out.name + ".progress")


def prepare(folder: Path, settings: Mapping[str, Any]) -> None:
    """Keep ``folder`` for a run with the same ``settings``; start it anew otherwise (a
    different checkpoint, post-processing or windowing makes earlier results stale)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SETTINGS_FILE
    current = json.loads(json.dumps(dict(settings), default=str))
    if path.is_file():
        try:
            earlier = json.loads(path.read_text())
        except json.JSONDecodeError:
            earlier = None
        if earlier == current:
            return
        log.warning("%s: settings differ from the earlier run's: scoring every file again", folder)
        shutil.rmtree(folder)
        folder.mkdir(parents=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read(folder: Path) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Every finished file's latest record, keyed by ``(name, size, mtime_ns)``."""
    records: dict[tuple[str, int, int], dict[str, Any]] = {}
    for path in sorted(folder.glob("rank*.jsonl")):
        with path.open() as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                    key = (record["file"], int(record["size"]), int(record["mtime_ns"]))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a line cut short by a kill: that file is scored again
                records[key] = record
    return records


def record(file: AudioFile, events: pd.DataFrame | None, duration: float, error: str | None) -> str:
    """One journal line (newline included)."""
    entry: dict[str, Any] = {
        "file": file.name,
        "size": file.size,
        "mtime_ns": file.mtime_ns,
        "duration": duration,
    }
    if error is not None:
        entry["error"] = error
    else:
        rows = events[["onset", "offset", "event_label"]].itertuples(index=False, name=None)
        entry["events"] = [[float(a), float(b), str(c)] for a, b, c in rows]
    return json.dumps(entry) + "\n"


def assemble(
    records: Mapping[tuple[str, int, int], Mapping[str, Any]], files: Iterable[AudioFile]
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The events of ``files`` (sorted as the strong-TSV writer sorts) and the failed
    ``(name, reason)`` pairs, from their records; files without a record are left out."""
    rows, failed = [], []
    for file in files:
        entry = records.get(file.key)
        if entry is None:
            continue
        if "error" in entry:
            failed.append((file.name, entry["error"]))
        else:
            rows.extend((file.name, on, off, label) for on, off, label in entry["events"])
    if not rows:
        return empty_event_table(), failed
    events = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    events = events.sort_values(EVENT_COLUMNS, kind="stable").reset_index(drop=True)
    return events, sorted(failed)
