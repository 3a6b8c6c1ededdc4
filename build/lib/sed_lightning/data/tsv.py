"""Readers and writers for DESED-style label files (tab-separated, with a header line).

* strong: ``filename  onset  offset  event_label`` (one row per event, seconds). A file
  may be listed once with empty onset/offset/event_label, meaning "no events".
* weak: ``filename  event_labels`` (comma-separated labels, possibly empty).
* durations: ``filename  duration`` (seconds).

Every reader validates the whole file and raises one :class:`LabelFileError` listing
all bad rows with their 1-based line numbers (the header is line 1). Rows that exactly
repeat an earlier row are dropped with a warning naming the file and both lines.

The ``parse_*`` functions do the same checks without raising on bad rows: they return a
:class:`ParsedTable` with the good rows and every problem, so a caller can gather the
problems of many files (see :mod:`sed_lightning.data.validation`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "DURATION_COLUMNS",
    "LINE_COLUMN",
    "STRONG_COLUMNS",
    "WEAK_COLUMNS",
    "LabelFileError",
    "ParsedTable",
    "RowProblem",
    "parse_durations_tsv",
    "parse_strong_tsv",
    "parse_weak_tsv",
    "read_durations_tsv",
    "read_strong_tsv",
    "read_weak_tsv",
    "strong_to_weak",
    "write_durations_tsv",
    "write_strong_tsv",
    "write_weak_tsv",
]

log = logging.getLogger(__name__)

STRONG_COLUMNS = ("filename", "onset", "offset", "event_label")
WEAK_COLUMNS = ("filename", "event_labels")
DURATION_COLUMNS = ("filename", "duration")
LINE_COLUMN = "tsv_line"  # 1-based line of each row in the tables parse_* return

_FIRST_DATA_LINE = 2  # line 1 is the header


class RowProblem(NamedTuple):
    """One bad (or dropped) row: its 1-based line, its filename and what is wrong."""

    line: int
    filename: str
    message: str


class LabelFileError(ValueError):
    """A label file is missing, malformed, or has invalid rows.

    The message names the file and, for row problems, the 1-based line number of
    every bad row (header = line 1). ``path`` is the file; ``problems`` the bad rows
    (empty when the whole file is unusable).
    """

    def __init__(self, message: str, path: Path | None = None, problems: Sequence[RowProblem] = ()):
        super().__init__(message)
        self.path = path
        self.problems = list(problems)


@dataclass
class ParsedTable:
    """Result of a ``parse_*`` function.

    Attributes
    ----------
    path
        The file.
    rows
        The good rows (bad and repeated rows left out), with a :data:`LINE_COLUMN`.
    problems
        Bad rows, ordered by line.
    duplicates
        Rows dropped because they repeat an earlier row (message: which line).
    empty_files
        Strong TSV only: files listed with no events.
    """

    path: Path
    rows: pd.DataFrame
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: list[RowProblem] = field(default_factory=list)
    empty_files: list[str] = field(default_factory=list)

    def raise_if_problems(self) -> None:
        """Raise one :class:`LabelFileError` listing all problems, ordered by line."""
        if self.problems:
            problems = sorted(self.problems)
            listing = "\n".join(f"  line {p.line}: {p.message}" for p in problems)
            raise LabelFileError(
                f"{self.path}: {len(problems)} problem(s):\n{listing}", self.path, problems
            )

    def warn_duplicates(self) -> None:
        """Log the dropped repeated rows (one warning per file)."""
        if self.duplicates:
            listing = ", ".join(f"line {d.line} ({d.message})" for d in self.duplicates)
            log.warning(
                "%s: dropped %d duplicated row(s): %s", self.path, len(self.duplicates), listing
            )


def _flag(
    problems: list[RowProblem],
    table: pd.DataFrame,
    mask: pd.Series,
    message: Callable[[int], str],
) -> None:
    """Append a problem ``message(i)`` for every row position ``i`` where ``mask`` is true."""
    names = table["filename"]
    problems.extend(
        RowProblem(_line(i), names[i], message(i)) for i in np.flatnonzero(mask.to_numpy())
    )


def _read_table(path: str | PathLike, columns: Sequence[str]) -> tuple[Path, pd.DataFrame]:
    """Read a TSV as strings (no NaN conversion) and check the required columns."""
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: label file not found", path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise LabelFileError(f"{path}: cannot parse as TSV ({err})", path) from err
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise LabelFileError(
            f"{path}: missing column(s) {missing}; expected {list(columns)}, "
            f"found {list(table.columns)}",
            path,
        )
    table = table.fillna("").apply(lambda col: col.str.strip())
    return path, table.reset_index(drop=True)


def _kept_rows(table: pd.DataFrame, keep: pd.Series, **columns: pd.Series) -> pd.DataFrame:
    """``filename``, the given value columns and each row's file line, for the kept rows."""
    lines = [_line(i) for i in range(len(table))]
    return pd.DataFrame({"filename": table["filename"], **columns, LINE_COLUMN: lines})[keep]


def _line(index: int) -> int:
    """1-based line number of the data row at 0-based position ``index``."""
    return index + _FIRST_DATA_LINE


def _to_float(values: pd.Series) -> pd.Series:
    """Parse numbers; unparsable or non-finite entries (``"inf"``) become NaN."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers))


def _split_duplicates(
    table: pd.DataFrame, key: pd.DataFrame, good: np.ndarray, problems: list[RowProblem], what: str
) -> tuple[np.ndarray, list[RowProblem]]:
    """Sort out rows whose filename appeared on an earlier good row.

    A row equal to the earlier one on every ``key`` column is a harmless repeat: it is
    dropped (returned as a duplicate). One that differs is a conflict, flagged as a
    problem. Returns the mask of rows to keep and the duplicates.
    """
    names = table["filename"]
    key_tuples = list(key.itertuples(index=False, name=None))
    first_line: dict[str, int] = {}
    first_key: dict[str, tuple] = {}
    seen_keys: dict[tuple, int] = {}
    keep = good.copy()
    duplicates: list[RowProblem] = []
    for i in np.flatnonzero(good):
        name, row_key = names[i], key_tuples[i]
        if row_key in seen_keys:
            duplicates.append(RowProblem(_line(i), name, f"repeats line {seen_keys[row_key]}"))
            keep[i] = False
        elif what and name in first_line and first_key[name] != row_key:
            problems.append(
                RowProblem(
                    _line(i),
                    name,
                    f"duplicate filename {name!r} (first on line {first_line[name]}) "
                    f"with a different {what}",
                )
            )
            keep[i] = False
        else:
            seen_keys[row_key] = _line(i)
            first_line.setdefault(name, _line(i))
            first_key.setdefault(name, row_key)
    return keep, duplicates


def _bad_rows(table: pd.DataFrame, problems: list[RowProblem]) -> np.ndarray:
    bad = np.zeros(len(table), dtype=bool)
    for p in problems:
        bad[p.line - _FIRST_DATA_LINE] = True
    return bad


def parse_strong_tsv(path: str | PathLike, class_names: Sequence[str] | None = None) -> ParsedTable:
    """Check a strong-label TSV like :func:`read_strong_tsv` without raising on bad rows.

    ``rows`` holds the good events (columns of :func:`read_strong_tsv` plus
    :data:`LINE_COLUMN`), repeated rows dropped; rows meaning "no events" are not in
    ``rows`` but their files are in ``empty_files`` (unless a good row has events).

    Raises
    ------
    LabelFileError
        Only when the file as a whole is unusable (missing, unparsable, columns missing).
    """
    path, table = _read_table(path, STRONG_COLUMNS)
    onset = _to_float(table["onset"])
    offset = _to_float(table["offset"])
    label = table["event_label"]
    is_empty = (table["onset"] == "") & (table["offset"] == "") & (label == "")
    has_event = ~is_empty
    problems: list[RowProblem] = []
    _flag(problems, table, table["filename"] == "", lambda i: "empty filename")
    _flag(
        problems,
        table,
        has_event & onset.isna(),
        lambda i: f"onset {table['onset'][i]!r} is not a finite number",
    )
    _flag(problems, table, onset < 0, lambda i: f"onset {onset[i]} is negative")
    _flag(
        problems,
        table,
        has_event & offset.isna(),
        lambda i: f"offset {table['offset'][i]!r} is not a finite number",
    )
    _flag(
        problems,
        table,
        onset >= offset,
        lambda i: f"onset {onset[i]} is not before offset {offset[i]}",
    )
    _flag(problems, table, has_event & (label == ""), lambda i: "empty event_label")
    if class_names is not None:
        known = sorted(set(class_names))
        _flag(
            problems,
            table,
            (label != "") & ~label.isin(known),
            lambda i: f"unknown event_label {label[i]!r} (known: {known})",
        )
    problems.sort()

    key = pd.DataFrame(
        {"f": table["filename"], "on": onset.fillna(-1.0), "off": offset.fillna(-1.0), "l": label}
    )
    keep, duplicates = _split_duplicates(table, key, ~_bad_rows(table, problems), problems, "")
    extra = [c for c in table.columns if c not in STRONG_COLUMNS]
    events = pd.DataFrame(
        {
            "filename": table["filename"],
            "onset": onset,
            "offset": offset,
            "event_label": table["event_label"],
        }
    )
    events = pd.concat([events, table[extra]], axis=1)
    events[LINE_COLUMN] = [_line(i) for i in range(len(table))]
    empty_rows = events[keep & is_empty.to_numpy()]
    events = events[keep & has_event.to_numpy()]
    events = events.sort_values(["filename", "onset"], kind="stable").reset_index(drop=True)
    empty_files = sorted(set(empty_rows["filename"]) - set(events["filename"]))
    return ParsedTable(path, events, problems, duplicates, empty_files)


def read_strong_tsv(path: str | PathLike, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and validate a strong-label TSV.

    Rows whose onset, offset and event_label are all empty mean "file has no events":
    they are dropped from the result and their filenames (unless the file also has
    events) are listed, sorted, in ``df.attrs["empty_files"]``. Columns other than
    :data:`STRONG_COLUMNS` are kept unvalidated, as strings, after the standard ones.
    Rows repeating an earlier row exactly are dropped with a warning.

    Parameters
    ----------
    path
        The TSV file.
    class_names
        Allowed labels; ``None`` accepts any non-empty label.

    Returns
    -------
    pd.DataFrame
        Columns ``filename`` (str), ``onset`` (float), ``offset`` (float),
        ``event_label`` (str), sorted by filename then onset, index ``0..n-1``.

    Raises
    ------
    LabelFileError
        Missing file or columns, or bad rows (empty filename, non-numeric or negative
        onset, non-numeric offset, onset >= offset, missing or unknown label), all
        listed with their line numbers.
    """
    parsed = parse_strong_tsv(path, class_names)
    parsed.raise_if_problems()
    parsed.warn_duplicates()
    events = parsed.rows.drop(columns=LINE_COLUMN)
    events.attrs["empty_files"] = parsed.empty_files
    return events


def write_strong_tsv(df: pd.DataFrame, path: str | PathLike) -> None:
    """Write strong labels as a TSV, sorted by filename then onset.

    Files in ``df.attrs["empty_files"]`` (if any) are written as rows with empty
    onset/offset/event_label. Extra columns are written after the standard ones.
    Floats are written with full (round-trip) precision. Parent folders are created.
    """
    _check_columns(df, STRONG_COLUMNS)
    extra = [c for c in df.columns if c not in STRONG_COLUMNS]
    out = df[list(STRONG_COLUMNS) + extra].copy()
    out["onset"] = out["onset"].astype(float)
    out["offset"] = out["offset"].astype(float)
    empty_files = sorted(set(df.attrs.get("empty_files", [])) - set(out["filename"]))
    if empty_files:
        empty = pd.DataFrame({"filename": empty_files})
        out = pd.concat([out, empty], ignore_index=True)
    out = out.sort_values(["filename", "onset"], kind="stable", na_position="first")
    _write_table(out, path)


def _check_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame lacks column(s) {missing}; has {list(df.columns)}")


def _write_table(df: pd.DataFrame, path: str | PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep="\t", index=False, na_rep="")


def _split_labels(text: str) -> list[str]:
    """``"b,a,,b"`` -> ``["a", "b"]`` (sorted, unique, empties dropped)."""
    return sorted({part.strip() for part in text.split(",") if part.strip()})


def parse_weak_tsv(path: str | PathLike, class_names: Sequence[str] | None = None) -> ParsedTable:
    """Check a weak-label TSV like :func:`read_weak_tsv` without raising on bad rows.

    ``rows``: columns ``filename``, ``event_labels`` and :data:`LINE_COLUMN`.

    Raises
    ------
    LabelFileError
        Only when the file as a whole is unusable (missing, unparsable, columns missing).
    """
    path, table = _read_table(path, WEAK_COLUMNS)
    labels = table["event_labels"].map(_split_labels)
    problems: list[RowProblem] = []
    _flag(problems, table, table["filename"] == "", lambda i: "empty filename")
    if class_names is not None:
        known = sorted(set(class_names))
        unknown = labels.map(lambda row: [lab for lab in row if lab not in known])
        _flag(
            problems,
            table,
            unknown.map(bool),
            lambda i: f"unknown event label(s) {unknown[i]} (known: {known})",
        )
    key = pd.DataFrame({"f": table["filename"], "l": labels.map(tuple)})
    keep, duplicates = _split_duplicates(
        table, key, ~_bad_rows(table, problems), problems, "label list"
    )
    problems.sort()
    weak = _kept_rows(table, keep, event_labels=labels)
    weak = weak.sort_values("filename", kind="stable").reset_index(drop=True)
    return ParsedTable(path, weak, problems, duplicates)


def read_weak_tsv(path: str | PathLike, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and validate a weak-label TSV.

    Rows repeating an earlier row (same filename, same labels) are dropped with a
    warning; the same filename with other labels is an error.

    Returns
    -------
    pd.DataFrame
        Columns ``filename`` (str) and ``event_labels`` (``list[str]``, sorted, unique,
        possibly empty), one row per file, sorted by filename.

    Raises
    ------
    LabelFileError
        Missing file or columns, empty or conflicting duplicate filenames, unknown labels.
    """
    parsed = parse_weak_tsv(path, class_names)
    parsed.raise_if_problems()
    parsed.warn_duplicates()
    return parsed.rows.drop(columns=LINE_COLUMN)


def _join_labels(labels: Iterable[str] | str) -> str:
    if isinstance(labels, str):
        labels = labels.split(",")
    return ",".join(_split_labels(",".join(labels)))


def write_weak_tsv(df: pd.DataFrame, path: str | PathLike) -> None:
    """Write weak labels; each row's ``event_labels`` (list of str) comma-joined, sorted.

    Rows are sorted by filename; parent folders are created.
    """
    _check_columns(df, WEAK_COLUMNS)
    out = pd.DataFrame(
        {"filename": df["filename"], "event_labels": df["event_labels"].map(_join_labels)}
    )
    _write_table(out.sort_values("filename", kind="stable"), path)


def parse_durations_tsv(path: str | PathLike) -> ParsedTable:
    """Check a durations TSV like :func:`read_durations_tsv` without raising on bad rows.

    ``rows``: columns ``filename``, ``duration`` (float) and :data:`LINE_COLUMN`.

    Raises
    ------
    LabelFileError
        Only when the file as a whole is unusable (missing, unparsable, columns missing).
    """
    path, table = _read_table(path, DURATION_COLUMNS)
    duration = _to_float(table["duration"])
    problems: list[RowProblem] = []
    _flag(problems, table, table["filename"] == "", lambda i: "empty filename")
    _flag(
        problems,
        table,
        duration.isna(),
        lambda i: f"duration {table['duration'][i]!r} is not a finite number",
    )
    _flag(problems, table, duration <= 0, lambda i: f"duration {duration[i]} is not positive")
    key = pd.DataFrame({"f": table["filename"], "d": duration})
    keep, duplicates = _split_duplicates(
        table, key, ~_bad_rows(table, problems), problems, "duration"
    )
    problems.sort()
    rows = _kept_rows(table, keep, duration=duration)
    return ParsedTable(path, rows.reset_index(drop=True), problems, duplicates)


def read_durations_tsv(path: str | PathLike) -> dict[str, float]:
    """Read a ``filename  duration`` TSV into ``{filename: seconds}``.

    Rows repeating an earlier row exactly are dropped with a warning.

    Raises
    ------
    LabelFileError
        Missing file or columns, empty or conflicting duplicate filenames, non-numeric
        or non-positive durations.
    """
    parsed = parse_durations_tsv(path)
    parsed.raise_if_problems()
    parsed.warn_duplicates()
    rows = parsed.rows
    return dict(zip(rows["filename"], rows["duration"].tolist(), strict=True))


def write_durations_tsv(durations: Mapping[str, float], path: str | PathLike) -> None:
    """Write ``{filename: seconds}`` as a ``filename  duration`` TSV sorted by filename."""
    names = sorted(durations)
    out = pd.DataFrame({"filename": names, "duration": [float(durations[n]) for n in names]})
    _write_table(out, path)


def strong_to_weak(df: pd.DataFrame) -> pd.DataFrame:
    """Drop the times of strong labels: one row per file with its sorted unique labels.

    Files in ``df.attrs["empty_files"]`` get an empty label list.

    Returns
    -------
    pd.DataFrame
        Columns ``filename``, ``event_labels`` (``list[str]``), sorted by filename.
    """
    _check_columns(df, STRONG_COLUMNS)
    grouped = df.groupby("filename", sort=True)["event_label"].agg(lambda s: sorted(set(s)))
    labels = dict(grouped.items())
    for name in df.attrs.get("empty_files", []):
        labels.setdefault(name, [])
    names = sorted(labels)
    return pd.DataFrame({"filename": names, "event_labels": [labels[n] for n in names]})
