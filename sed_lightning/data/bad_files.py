"""What ``data.on_bad_file`` does with the problems dataset validation found.

:func:`enforce` applies it to the :class:`~.validation.ValidationReport` of every set a run
uses: ``raise`` raises one :class:`~.validation.DataValidationError` listing every problem
grouped by set; ``skip`` leaves the bad clips out, and :func:`write_skipped` lists them in
``skipped.tsv``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from sed_lightning.data.validation import (
    DataValidationError,
    Problem,
    ValidationReport,
    format_problems,
)

__all__ = ["ERRORS_TSV", "ON_BAD_FILE", "SKIPPED_TSV", "enforce", "write_skipped"]

ON_BAD_FILE = ("raise", "skip")
ERRORS_TSV = "validation_errors.tsv"
SKIPPED_TSV = "skipped.tsv"


def _write_tsv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, sep="\t", index=False)


def enforce(
    reports: Mapping[str, ValidationReport],
    on_bad_file: str,
    output_dir: str | os.PathLike | None = None,
    write: bool = True,
) -> list[dict]:
    """Apply ``on_bad_file`` to the reports of the sets a run uses.

    ``raise``: any problem -> one :class:`DataValidationError` listing every problem,
    grouped by set (the first :data:`~.validation.MAX_LISTED` in the message; all of them in
    ``output_dir/validation_errors.tsv``, columns ``set file line reason``).

    ``skip``: the bad clips are already left out of each report's ``filenames``; they
    are logged and returned as rows ``{set, filename, reason}`` (for ``skipped.tsv``).
    Problems of a whole set, or a set left without clips, still raise.

    ``write``: write ``validation_errors.tsv`` (only rank 0 should).
    """
    if on_bad_file not in ON_BAD_FILE:
        raise ValueError(f"on_bad_file must be one of {ON_BAD_FILE}, got {on_bad_file!r}")
    if on_bad_file == "raise":
        fatal = {name: list(r.problems) for name, r in reports.items() if r.problems}
        hint = "; fix them, or set data.on_bad_file=skip to leave the bad clips out"
    else:
        fatal = {}
        for name, r in reports.items():
            problems = list(r.set_problems)
            if not problems and not r.filenames:
                where = r.source.labels or r.source.durations or r.source.audio_dir
                problems.append(
                    Problem(str(where), None, "every clip of the set has a problem; none left")
                )
            if problems:
                fatal[name] = problems
        hint = " that on_bad_file=skip cannot skip (they concern whole sets)"
    if fatal:
        tsv = Path(output_dir) / ERRORS_TSV if output_dir is not None else None
        if tsv is not None and write:
            rows = [
                {"set": name, "file": p.file, "line": p.line, "reason": p.reason}
                for name, problems in fatal.items()
                for p in problems
            ]
            _write_tsv(tsv, rows, ["set", "file", "line", "reason"])
        raise DataValidationError(format_problems(fatal, tsv, hint), fatal)
    skipped = [
        {"set": name, "filename": clip, "reason": "; ".join(str(p) for p in problems)}
        for name, r in reports.items()
        for clip, problems in r.bad_clips.items()
    ]
    return skipped


def write_skipped(rows: list[dict], output_dir: str | os.PathLike) -> Path:
    """Write ``skipped.tsv`` (columns ``set filename reason``) into ``output_dir``."""
    path = Path(output_dir) / SKIPPED_TSV
    _write_tsv(path, rows, ["set", "filename", "reason"])
    return path
