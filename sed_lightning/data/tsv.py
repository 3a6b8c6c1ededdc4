"""Readers and writers for DESED-style label files (tab-separated, with a header line).

* strong: ``filename  onset  offset  event_label`` (one row per event, seconds). A file
  may be listed once with empty onset/offset/event_label, meaning "no events".
* weak: ``filename  event_labels`` (comma-separated labels, possibly empty).
* durations: ``filename  duration`` (seconds).

Every reader validates the whole file and raises one :class:`LabelFileError` listing
all bad rows with their 1-based line numbers (the header is line 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DURATION_COLUMNS",
    "STRONG_COLUMNS",
    "WEAK_COLUMNS",
    "LabelFileError",
    "read_durations_tsv",
    "read_strong_tsv",
    "read_weak_tsv",
    "strong_to_weak",
    "write_durations_tsv",
    "write_strong_tsv",
    "write_weak_tsv",
]

STRONG_COLUMNS = ("filename", "onset", "offset", "event_label")
WEAK_COLUMNS = ("filename", "event_labels")
DURATION_COLUMNS = ("filename", "duration")

_FIRST_DATA_LINE = 2  # line 1 is the header


class LabelFileError(ValueError):
    """A label file is missing, malformed, or has invalid rows.

    The message names the file and, for row problems, the 1-based line number of
    every bad row (header = line 1).
    """


Problems = list[tuple[int, str]]  # (line number, message)


def _raise_if_problems(path: Path, problems: Problems) -> None:
    """Raise one :class:`LabelFileError` listing all problems, ordered by line."""
    if problems:
        listing = "\n".join(f"  line {line}: {msg}" for line, msg in sorted(problems))
        raise LabelFileError(f"{path}: {len(problems)} problem(s):\n{listing}")


def _flag(problems: Problems, mask: pd.Series, message: Callable[[int], str]) -> None:
    """Append ``message(i)`` for every row position ``i`` where ``mask`` is true."""
    problems.extend((_line(i), message(i)) for i in np.flatnonzero(mask.to_numpy()))


def _read_table(path: str | PathLike, columns: Sequence[str]) -> tuple[Path, pd.DataFrame]:
    """Read a TSV as strings (no NaN conversion) and check the required columns."""
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: label file not found")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise LabelFileError(f"{path}: cannot parse as TSV ({err})") from err
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise LabelFileError(
            f"{path}: missing column(s) {missing}; expected {list(columns)}, "
            f"found {list(table.columns)}"
        )
    table = table.fillna("").apply(lambda col: col.str.strip())
    return path, table.reset_index(drop=True)


def _line(index: int) -> int:
    """1-based line number of the data row at 0-based position ``index``."""
    return index + _FIRST_DATA_LINE


def _to_float(values: pd.Series) -> pd.Series:
    """Parse numbers; unparsable or non-finite entries (``"inf"``) become NaN."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers))


def _flag_duplicates(table: pd.DataFrame, problems: Problems) -> None:
    """Flag every repeated filename, pointing at its first occurrence."""
    names = table["filename"]
    first_line = {name: _line(i) for i, name in reversed(list(enumerate(names)))}
    _flag(
        problems,
        names.duplicated(),
        lambda i: f"duplicate filename {names[i]!r} (first on line {first_line[names[i]]})",
    )


def read_strong_tsv(path: str | PathLike, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and validate a strong-label TSV.

    Rows whose onset, offset and event_label are all empty mean "file has no events":
    they are dropped from the result and their filenames (unless the file also has
    events) are listed, sorted, in ``df.attrs["empty_files"]``. Columns other than
    :data:`STRONG_COLUMNS` are kept unvalidated, as strings, after the standard ones.

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
    path, table = _read_table(path, STRONG_COLUMNS)
    onset = _to_float(table["onset"])
    offset = _to_float(table["offset"])
    label = table["event_label"]
    is_empty = (table["onset"] == "") & (table["offset"] == "") & (label == "")
    has_event = ~is_empty
    problems: Problems = []
    _flag(problems, table["filename"] == "", lambda i: "empty filename")
    _flag(
        problems,
        has_event & onset.isna(),
        lambda i: f"onset {table['onset'][i]!r} is not a finite number",
    )
    _flag(problems, onset < 0, lambda i: f"onset {onset[i]} is negative")
    _flag(
        problems,
        has_event & offset.isna(),
        lambda i: f"offset {table['offset'][i]!r} is not a finite number",
    )
    _flag(
        problems,
        onset >= offset,
        lambda i: f"onset {onset[i]} is not before offset {offset[i]}",
    )
    _flag(problems, has_event & (label == ""), lambda i: "empty event_label")
    if class_names is not None:
        known = sorted(set(class_names))
        _flag(
            problems,
            (label != "") & ~label.isin(known),
            lambda i: f"unknown event_label {label[i]!r} (known: {known})",
        )
    _raise_if_problems(path, problems)

    extra = [c for c in table.columns if c not in STRONG_COLUMNS]
    events = pd.DataFrame(
        {
            "filename": table["filename"],
            "onset": onset,
            "offset": offset,
            "event_label": table["event_label"],
        }
    )
    events = pd.concat([events, table[extra]], axis=1)[~is_empty]
    events = events.sort_values(["filename", "onset"], kind="stable").reset_index(drop=True)
    with_events = set(events["filename"])
    events.attrs["empty_files"] = sorted(set(table.loc[is_empty, "filename"]) - with_events)
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


def read_weak_tsv(path: str | PathLike, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and validate a weak-label TSV.

    Returns
    -------
    pd.DataFrame
        Columns ``filename`` (str) and ``event_labels`` (``list[str]``, sorted, unique,
        possibly empty), one row per file, sorted by filename.

    Raises
    ------
    LabelFileError
        Missing file or columns, empty or duplicate filenames, unknown labels.
    """
    path, table = _read_table(path, WEAK_COLUMNS)
    labels = table["event_labels"].map(_split_labels)
    problems: Problems = []
    _flag(problems, table["filename"] == "", lambda i: "empty filename")
    if class_names is not None:
        known = sorted(set(class_names))
        unknown = labels.map(lambda row: [lab for lab in row if lab not in known])
        _flag(
            problems,
            unknown.map(bool),
            lambda i: f"unknown event label(s) {unknown[i]} (known: {known})",
        )
    _flag_duplicates(table, problems)
    _raise_if_problems(path, problems)
    weak = pd.DataFrame({"filename": table["filename"], "event_labels": labels})
    return weak.sort_values("filename", kind="stable").reset_index(drop=True)


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


def read_durations_tsv(path: str | PathLike) -> dict[str, float]:
    """Read a ``filename  duration`` TSV into ``{filename: seconds}``.

    Raises
    ------
    LabelFileError
        Missing file or columns, empty or duplicate filenames, non-numeric or
        non-positive durations.
    """
    path, table = _read_table(path, DURATION_COLUMNS)
    duration = _to_float(table["duration"])
    problems: Problems = []
    _flag(problems, table["filename"] == "", lambda i: "empty filename")
    _flag(
        problems,
        duration.isna(),
        lambda i: f"duration {table['duration'][i]!r} is not a finite number",
    )
    _flag(problems, duration <= 0, lambda i: f"duration {duration[i]} is not positive")
    _flag_duplicates(table, problems)
    _raise_if_problems(path, problems)
    return dict(zip(table["filename"], duration.tolist(), strict=True))


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
