"""Isolated event sources ("event banks") used to synthesise soundscapes.

An event-bank folder holds audio files and a ``metadata.csv`` with columns
``filename`` (relative to the folder), ``event_label``, ``duration`` (seconds) and
``split`` (``train`` / ``validation`` / ``test``). Both the real source folders (e.g.
``dcase2016_task2_events``) and procedurally generated banks
(:func:`~.procedural_bank.build_event_bank`) use this layout. The folder is only read,
never copied or modified.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from sed_lightning.data.audio import load_audio

__all__ = [
    "METADATA_COLUMNS",
    "SPLITS",
    "EventBank",
    "EventBankError",
    "EventSource",
    "per_class_subset",
]

METADATA_COLUMNS = ("filename", "event_label", "duration", "split")
SPLITS = ("train", "validation", "test")


class EventBankError(ValueError):
    """``metadata.csv`` is missing or has bad rows (file and line numbers are named)."""


@dataclass(frozen=True)
class EventSource:
    """One isolated event recording.

    Attributes
    ----------
    path
        Absolute path of the audio file.
    label
        Event class.
    duration
        Seconds, as listed in the metadata.
    split
        ``train``, ``validation`` or ``test``.
    """

    path: Path
    label: str
    duration: float
    split: str


class EventBank:
    """Read-only view of an event-bank folder.

    Parameters
    ----------
    root
        Folder containing ``metadata.csv`` and the audio files.
    sample_rate
        Rate (Hz) that :meth:`load` returns audio at.
    cache_size
        Number of decoded sources kept in memory by :meth:`load` (LRU).

    Raises
    ------
    EventBankError
        Missing ``metadata.csv`` or columns, or bad rows (empty fields, non-positive
        duration, unknown split, duplicate or missing audio file), all listed at once
        with their 1-based line numbers (header = line 1).
    """

    def __init__(
        self, root: str | PathLike, sample_rate: int = 16000, cache_size: int = 1024
    ) -> None:
        self.root = Path(root).resolve()
        self.sample_rate = int(sample_rate)
        self.metadata_path = self.root / "metadata.csv"
        self._sources = _read_metadata(self.metadata_path, self.root)
        self.class_names: list[str] = sorted({s.label for s in self._sources})
        self._load = functools.lru_cache(maxsize=cache_size)(self._load_uncached)

    def __len__(self) -> int:
        return len(self._sources)

    def __repr__(self) -> str:
        return (
            f"EventBank({str(self.root)!r}, {len(self)} sources, {len(self.class_names)} classes)"
        )

    def sources(self, split: str | Sequence[str]) -> list[EventSource]:
        """Sources of one split or several, in metadata order.

        Raises
        ------
        ValueError
            A split name other than ``train``, ``validation``, ``test``.
        """
        wanted = {split} if isinstance(split, str) else set(split)
        unknown = wanted - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; known: {list(SPLITS)}")
        return [s for s in self._sources if s.split in wanted]

    def load(self, source: EventSource) -> np.ndarray:
        """Decode ``source`` at the bank's sample rate (mono), cached in memory.

        The returned array is shared with the cache and therefore read-only.

        Shape:
            ``(n_samples,)``, ``float32``.
        """
        return self._load(source.path)

    def _load_uncached(self, path: Path) -> np.ndarray:
        audio = load_audio(path, self.sample_rate, mono=True)
        audio.flags.writeable = False
        return audio


def per_class_subset(
    sources: Sequence[EventSource], n: int, seed: int = 0, split: str = "train"
) -> list[EventSource]:
    """Keep ``n`` sources of each class from ``split``, drawn at random from ``seed``.

    For learning curves over the number of sources a class has (how many recordings of a
    class a detector needs). Sources of other splits are all kept; the kept ones stay in
    ``sources``' order. The draw for a class depends only on ``seed`` and that class's
    ``split`` sources, so ``n`` = 7 and ``n`` = 10 with one seed draw different subsets
    but the same ``n`` always the same one.

    Raises
    ------
    ValueError
        ``n`` < 1, or a class with fewer than ``n`` sources in ``split`` (named).

    Example
    -------
    >>> s = [EventSource(Path(f"{c}{i}.wav"), c, 1.0, "train") for c in "ab" for i in range(4)]
    >>> kept = per_class_subset(s, 2, seed=0)
    >>> sorted({x.label: sum(y.label == x.label for y in kept) for x in kept}.items())
    [('a', 2), ('b', 2)]
    >>> per_class_subset(s, 2, seed=0) == kept
    True
    """
    if n < 1:
        raise ValueError(f"sources per class must be >= 1, got {n}")
    by_class: dict[str, list[int]] = {}
    for i, source in enumerate(sources):
        if source.split == split:
            by_class.setdefault(source.label, []).append(i)
    keep = {i for i, source in enumerate(sources) if source.split != split}
    for label in sorted(by_class):
        indices = by_class[label]
        if len(indices) < n:
            raise ValueError(
                f"class {label!r} has {len(indices)} {split} source(s), fewer than the {n} asked"
            )
        # one generator per class, keyed on every byte of its name (not a prefix: car_horn
        # and car_alarm draw independently), so adding a class changes no draw
        rng = np.random.default_rng([seed, len(label), *label.encode()])
        keep.update(indices[j] for j in rng.choice(len(indices), size=n, replace=False))
    return [source for i, source in enumerate(sources) if i in keep]


def _read_metadata(path: Path, root: Path) -> list[EventSource]:
    """Parse and validate ``metadata.csv``; report every bad row at once."""
    if not path.is_file():
        raise EventBankError(f"{path}: event-bank metadata not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False).fillna("")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise EventBankError(f"{path}: cannot parse as CSV ({err})") from err
    missing = [c for c in METADATA_COLUMNS if c not in table.columns]
    if missing:
        raise EventBankError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    table = table[list(METADATA_COLUMNS)].apply(lambda col: col.str.strip())
    duration = pd.to_numeric(table["duration"], errors="coerce").astype(float)

    problems = []
    seen: set[str] = set()
    for i, row in enumerate(table.itertuples(index=False)):
        row_problems = _row_problems(row, duration[i], root, seen)
        problems.extend(f"line {i + 2}: {msg}" for msg in row_problems)
        seen.add(row.filename)
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise EventBankError(f"{path}: {len(problems)} problem(s):\n{listing}")
    return [
        EventSource(root / row.filename, row.event_label, float(duration[i]), row.split)
        for i, row in enumerate(table.itertuples(index=False))
    ]


def _row_problems(row: tuple, duration: float, root: Path, seen: set[str]) -> list[str]:
    """Problems of one metadata row (without line number)."""
    problems = []
    if row.filename == "":
        problems.append("empty filename")
    elif row.filename in seen:
        problems.append(f"duplicate filename {row.filename!r}")
    elif not (root / row.filename).is_file():
        problems.append(f"audio file {root / row.filename} not found")
    if row.event_label == "":
        problems.append("empty event_label")
    if not np.isfinite(duration) or duration <= 0:
        problems.append(f"duration {row.duration!r} is not a positive number")
    if row.split not in SPLITS:
        problems.append(f"split {row.split!r} is not one of {list(SPLITS)}")
    return problems
