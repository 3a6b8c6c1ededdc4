"""Dataset validation: every problem of every set, found in one pass before training.

:func:`validate_set` reads a set's label files (through the ``parse_*`` functions of
:mod:`~sed_lightning.data.tsv`) and every clip's audio (header, then a full decode) and
returns a :class:`ValidationReport`: the problems that make a clip unusable, the cleaned
labels :class:`~sed_lightning.data.datasets.SEDDataset` serves, and notes on what was
handled. :func:`~.bad_files.enforce` applies ``data.on_bad_file`` to the reports of all
the sets a run uses: ``raise`` raises one :class:`DataValidationError` listing every
problem grouped by set; ``skip`` leaves the bad clips out and lists them in ``skipped.tsv``.

Problems (the clip is unusable; ``file`` and ``line`` say where to fix it):

=================================  ==============================================
corrupt / undecodable audio        audio file: ``cannot read audio (...)``
zero-length audio                  audio file: ``audio file has no samples``
NaN or inf samples                 audio file: ``audio contains NaN or infinite samples``
missing audio file                 label (or durations) TSV + line: ``audio file ... not found``
unknown label, onset >= offset,    label TSV + line (every bad row of the file at once)
bad numbers, empty fields
onset at/after the audio's end     label TSV + line
=================================  ==============================================

A label file that is missing or unparsable, a set without a label file, or an audio
folder without audio is a problem of the whole set: it is never skipped.

Handled (logged once per set, with counts):

* another sample rate: resampled to ``sample_rate`` when loaded (info);
* several channels: downmixed to mono by averaging the channels (info);
* shorter / longer than ``clip_duration``: zero-padded / cropped at the end (info);
  events past the crop are dropped, offsets past it cut at the clip end;
* rows that repeat an earlier row exactly: dropped (warning naming file and lines);
* an event offset past the end of its audio (by more than a sample): clipped to the
  audio's end (warning naming file and line);
* overlapping or touching events of one class in one clip: merged into one event
  (warning naming the clips and lines) — sed_eval and sed_scores_eval reject such
  references, so the merged events are what the dataset exposes and scores against.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sed_lightning.data.audio import (
    AUDIO_SUFFIXES,
    AudioError,
    AudioInfo,
    inspect_audio,
    resampled_length,
)
from sed_lightning.data.batch import KINDS
from sed_lightning.data.merge_events import Event, merge_same_class
from sed_lightning.data.tsv import (
    LINE_COLUMN,
    LabelFileError,
    ParsedTable,
    parse_durations_tsv,
    parse_strong_tsv,
    parse_weak_tsv,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "MAX_LISTED",
    "DataValidationError",
    "Note",
    "Problem",
    "SetSource",
    "ValidationReport",
    "format_problems",
    "validate_set",
]

log = logging.getLogger(__name__)

MAX_LISTED = 50  # problems printed in an error message (all of them go to the TSV)


@dataclass
class SetSource:
    """Where one set lives: its audio folder, the label file its kind reads, durations.

    ``labels`` is a strong TSV for ``kind="strong"``, a weak TSV for ``kind="weak"`` and
    unused for ``kind="unlabeled"``. The clip list comes from ``durations`` when given
    (so clips without events are kept), else from the label file, else from the folder.
    """

    kind: str
    audio_dir: str
    labels: str | None = None
    durations: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something that makes a clip (or, with ``clip=None``, a whole set) unusable.

    Attributes
    ----------
    file
        The file to fix: a label or durations TSV, or an audio file.
    line
        1-based line in ``file`` (header = line 1); ``None`` for audio files.
    reason
        What is wrong (names the clip for TSV rows).
    clip
        The clip concerned (the TSV's filename); ``None`` when the whole set is.
    """

    file: str
    line: int | None
    reason: str
    clip: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file} line {self.line}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Note:
    """A handled case: what was done to how many clips/events/rows.

    ``case`` is one of ``resampled``, ``downmixed``, ``padded``, ``cropped``,
    ``duplicates_dropped``, ``offsets_clipped``, ``events_merged``.
    """

    case: str
    count: int
    message: str
    warning: bool = False


@dataclass
class ValidationReport:
    """What :func:`validate_set` found in one set.

    Attributes
    ----------
    name
        The set's name (for messages).
    source
        Where the set lives.
    filenames
        The clips without problems, sorted.
    events
        Strong sets: cleaned events ``(onset, offset, label)`` per clip (duplicates
        dropped, offsets clipped to the audio and the clip length, same-class overlaps
        merged), sorted by onset.
    tags
        Weak sets: the clip tags per clip.
    durations
        Seconds of each clip the model sees: ``min(audio duration, clip_duration)``.
    problems
        Every problem, in the order found (label files first, then audio).
    notes
        The handled cases (see the module docstring).
    """

    name: str
    source: SetSource
    filenames: list[str] = field(default_factory=list)
    events: dict[str, list[Event]] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def set_problems(self) -> list[Problem]:
        """Problems of the whole set (cannot be skipped)."""
        return [p for p in self.problems if p.clip is None]

    @property
    def bad_clips(self) -> dict[str, list[Problem]]:
        """Clip -> its problems, for every clip with a problem."""
        out: dict[str, list[Problem]] = {}
        for p in self.problems:
            if p.clip is not None:
                out.setdefault(p.clip, []).append(p)
        return out

    def count(self, case: str) -> int:
        """How many items the handled ``case`` concerned (0 when it did not occur)."""
        return sum(n.count for n in self.notes if n.case == case)

    def raise_if_problems(self) -> None:
        """Raise :class:`DataValidationError` when the set has any problem."""
        if self.problems:
            raise DataValidationError(
                format_problems({self.name: self.problems}, None), {self.name: list(self.problems)}
            )


class DataValidationError(ValueError):
    """Bad input data: the message lists every problem, grouped by set.

    ``problems`` maps each set's name to its problems.
    """

    def __init__(self, message: str, problems: Mapping[str, Sequence[Problem]]) -> None:
        super().__init__(message)
        self.problems = {k: list(v) for k, v in problems.items()}


def validate_set(
    source: SetSource,
    class_names: Sequence[str],
    sample_rate: int,
    clip_duration: float,
    name: str | None = None,
    decode: bool = True,
    workers: int | None = None,
) -> ValidationReport:
    """Check one set's labels and audio; never raises for bad data, reports it.

    Logs the handled cases once (warnings for dropped duplicates, clipped offsets and
    merged events; info for resampling, downmixing, padding and cropping).

    Parameters
    ----------
    source
        Where the set lives (kind, audio folder, label file, durations file).
    class_names
        Allowed event labels.
    sample_rate
        Rate the audio is resampled to when loaded.
    clip_duration
        Seconds clips are padded / cropped to.
    name
        The set's name in messages (default: its audio folder).
    decode
        Decode every clip fully (finds NaN/inf and decoding errors); ``False`` reads
        only the headers.
    workers
        Threads decoding audio (default: up to 8).
    """
    start = time.perf_counter()
    report = ValidationReport(name=name or str(source.audio_dir), source=source)
    checker = _SetChecker(report, list(class_names), sample_rate, clip_duration)
    checker.run(decode, workers or min(8, os.cpu_count() or 1))
    for note in report.notes:
        log.log(
            logging.WARNING if note.warning else logging.INFO, "%s: %s", report.name, note.message
        )
    bad = len(report.bad_clips)
    log.info(
        "%s: validated %d %s clip(s) in %.1f s%s",
        report.name,
        len(report.filenames) + bad,
        source.kind,
        time.perf_counter() - start,
        f"; {len(report.problems)} problem(s) in {bad} clip(s)" if report.problems else "",
    )
    return report


class _SetChecker:
    """The steps of :func:`validate_set` (fills ``report``)."""

    def __init__(
        self,
        report: ValidationReport,
        class_names: list[str],
        sample_rate: int,
        clip_duration: float,
    ) -> None:
        self.report = report
        self.source = report.source
        self.class_names = class_names
        self.sample_rate = int(sample_rate)
        self.clip_duration = float(clip_duration)
        self.clip_samples = int(round(clip_duration * sample_rate))
        self.audio_dir = Path(self.source.audio_dir)
        # clip -> (file listing it, first line); rows of a strong set with their lines
        self.listed: dict[str, tuple[str, int | None]] = {}
        self.rows: dict[str, list[tuple[float, float, str, int]]] = {}
        self.crop_events = (0, 0)  # events dropped after / cut at the crop point

    # -- problems -------------------------------------------------------------------
    def problem(self, file: object, line: int | None, reason: str, clip: str | None) -> None:
        self.report.problems.append(Problem(str(file), line, reason, clip))

    def note(self, case: str, count: int, message: str, warning: bool = False) -> None:
        if count:
            self.report.notes.append(Note(case, count, message, warning))

    # -- steps ----------------------------------------------------------------------
    def run(self, decode: bool, workers: int) -> None:
        kind = self.source.kind
        if kind not in KINDS:
            self.problem(self.audio_dir, None, f"kind must be one of {KINDS}, got {kind!r}", None)
            return
        if kind != "unlabeled" and not self.source.labels:
            self.problem(self.audio_dir, None, f"a {kind} set needs a label file", None)
            return
        tables = self.read_labels()
        if self.report.set_problems:
            return
        clips = self.clip_list()
        if clips is None:
            return
        infos = self.check_audio(clips, decode, workers)
        if kind == "strong":
            self.clean_events(infos)
        self.audio_notes(infos)
        self.duplicate_notes(tables)
        self.report.problems.sort(key=lambda p: (p.file, p.line or 0))
        bad = self.report.bad_clips
        self.report.filenames = [c for c in clips if c not in bad]
        self.report.durations = {
            c: min(infos[c].duration, self.clip_duration) for c in self.report.filenames
        }

    def read_labels(self) -> list[ParsedTable]:
        """Parse the label and durations files; their bad rows become problems."""
        src = self.source
        tables = []
        readers = []
        if src.kind == "strong":
            readers.append((parse_strong_tsv, src.labels, True))
        elif src.kind == "weak":
            readers.append((parse_weak_tsv, src.labels, True))
        if src.durations:
            readers.append((parse_durations_tsv, src.durations, False))
        for reader, path, with_classes in readers:
            try:
                table = reader(path, self.class_names) if with_classes else reader(path)
            except LabelFileError as err:
                file = err.path or path
                self.problem(file, None, _strip_prefix(str(err), file), None)
                continue
            tables.append(table)
            for p in table.problems:
                reason = f"{p.filename}: {p.message}" if p.filename else p.message
                self.problem(table.path, p.line, reason, p.filename)
        for table in tables:
            self.take_rows(table)
        return tables

    def take_rows(self, table: ParsedTable) -> None:
        rows = table.rows
        for clip, line in zip(rows["filename"], rows[LINE_COLUMN], strict=True):
            self.listed.setdefault(clip, (str(table.path), int(line)))
        if "onset" in rows:
            for clip in table.empty_files:
                self.listed.setdefault(clip, (str(table.path), None))
                self.rows.setdefault(clip, [])
            for r in rows.itertuples(index=False):
                self.rows.setdefault(r.filename, []).append(
                    (float(r.onset), float(r.offset), r.event_label, int(getattr(r, LINE_COLUMN)))
                )
        elif "event_labels" in rows:
            self.report.tags = {
                f: list(labels)
                for f, labels in zip(rows["filename"], rows["event_labels"], strict=True)
            }
        # clips with bad rows are listed too (so a missing audio file is reported)
        for p in table.problems:
            if p.filename:
                self.listed.setdefault(p.filename, (str(table.path), p.line))

    def clip_list(self) -> list[str] | None:
        """The set's clips: listed in the label/durations files, else the folder's audio."""
        if self.listed:
            return sorted(c for c in self.listed if c)
        if not self.audio_dir.is_dir():
            self.problem(self.audio_dir, None, "audio folder not found", None)
            return None
        files = sorted(p.name for p in self.audio_dir.iterdir() if p.suffix in AUDIO_SUFFIXES)
        if not files:
            reason = f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in the folder"
            self.problem(self.audio_dir, None, reason, None)
            return None
        return files

    def check_audio(self, clips: list[str], decode: bool, workers: int) -> dict[str, AudioInfo]:
        """Header + decode check of every clip (threads); failures become problems."""
        present = []
        for clip in clips:
            path = self.audio_dir / clip
            if path.is_file():
                present.append(clip)
            else:
                file, line = self.listed.get(clip, (str(self.audio_dir), None))
                self.problem(file, line, f"{clip}: audio file {path} not found", clip)

        def inspect(clip: str) -> AudioInfo | AudioError:
            try:
                return inspect_audio(self.audio_dir / clip, decode=decode)
            except AudioError as err:
                return err

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            results = list(pool.map(inspect, present))
        infos = {}
        for clip, result in zip(present, results, strict=True):
            if isinstance(result, AudioError):
                path = self.audio_dir / clip
                self.problem(path, None, _strip_prefix(str(result), path), clip)
            else:
                infos[clip] = result
        return infos

    def clean_events(self, infos: Mapping[str, AudioInfo]) -> None:
        """Check events against the audio; clip, crop and merge those of good clips."""
        labels_path = str(self.source.labels)
        for clip, rows in self.rows.items():
            info = infos.get(clip)
            if info is None:  # missing or bad audio: already a problem
                continue
            for onset, _, _, line in rows:
                if onset >= info.duration:
                    reason = (
                        f"{clip}: onset {onset:g} s is at or after the end of its audio "
                        f"({info.duration:g} s, {self.audio_dir / clip})"
                    )
                    self.problem(labels_path, line, reason, clip)
        bad = self.report.bad_clips
        clipped, merged, past_crop, cut_at_crop = [], [], 0, 0
        for clip, rows in self.rows.items():
            if clip in bad or clip not in infos:
                continue
            audio_end = infos[clip].duration
            tolerance = 1.0 / infos[clip].sample_rate
            kept: list[tuple[float, float, str, int]] = []
            for onset, offset, label, line in rows:
                if offset > audio_end:
                    if offset - audio_end > tolerance:
                        clipped.append((line, clip, offset, audio_end))
                    offset = audio_end
                if onset >= self.clip_duration:
                    past_crop += 1
                    continue
                if offset > self.clip_duration:
                    cut_at_crop += 1
                    offset = self.clip_duration
                kept.append((onset, offset, label, line))
            events, merges = merge_same_class(kept)
            merged.extend((clip, lines) for lines in merges)
            self.report.events[clip] = events
        self.crop_events = (past_crop, cut_at_crop)
        if clipped:
            listing = _cap(
                f"line {line} ({clip}: {off:g} s > {end:g} s)" for line, clip, off, end in clipped
            )
            self.note(
                "offsets_clipped",
                len(clipped),
                f"{labels_path}: {len(clipped)} event offset(s) past the end of their audio "
                f"clipped to the audio's end: {listing}",
                warning=True,
            )
        if merged:
            listing = _cap(f"{clip} (lines {', '.join(map(str, lines))})" for clip, lines in merged)
            self.note(
                "events_merged",
                len(merged),
                f"{labels_path}: {len(merged)} group(s) of overlapping or touching events of "
                f"the same class in {len({c for c, _ in merged})} clip(s) merged into one "
                f"event each: {listing}",
                warning=True,
            )

    def audio_notes(self, infos: Mapping[str, AudioInfo]) -> None:
        bad = self.report.bad_clips
        good = {c: i for c, i in infos.items() if c not in bad}
        rates = Counter(i.sample_rate for i in good.values() if i.sample_rate != self.sample_rate)
        n = sum(rates.values())
        origin = ", ".join(f"{r} Hz: {k}" for r, k in sorted(rates.items()))
        self.note(
            "resampled",
            n,
            f"{n} clip(s) resampled to {self.sample_rate} Hz when loaded (from {origin})",
        )
        n = sum(i.channels > 1 for i in good.values())
        self.note("downmixed", n, f"{n} multichannel clip(s) downmixed to mono (channel average)")
        lengths = {
            c: resampled_length(i.frames, i.sample_rate, self.sample_rate) for c, i in good.items()
        }
        short = [c for c, k in lengths.items() if k < self.clip_samples]
        long = [c for c, k in lengths.items() if k > self.clip_samples]
        if short:
            shortest = min(good[c].duration for c in short)
            self.note(
                "padded",
                len(short),
                f"{len(short)} clip(s) shorter than {self.clip_duration:g} s zero-padded at "
                f"the end (shortest: {shortest:g} s)",
            )
        if long:
            longest = max(good[c].duration for c in long)
            past, cut = self.crop_events
            events = (
                f"; {past} event(s) after the crop dropped, {cut} cut at its end"
                if (past or cut)
                else ""
            )
            self.note(
                "cropped",
                len(long),
                f"{len(long)} clip(s) longer than {self.clip_duration:g} s cropped at the end "
                f"(longest: {longest:g} s){events}",
            )

    def duplicate_notes(self, tables: Iterable[ParsedTable]) -> None:
        for table in tables:
            if table.duplicates:
                listing = _cap(f"line {d.line} ({d.message})" for d in table.duplicates)
                self.note(
                    "duplicates_dropped",
                    len(table.duplicates),
                    f"{table.path}: {len(table.duplicates)} duplicated row(s) dropped: {listing}",
                    warning=True,
                )


def _cap(items: Iterable[str], limit: int = 10) -> str:
    items = list(items)
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _strip_prefix(message: str, path: object) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def format_problems(
    problems: Mapping[str, Sequence[Problem]], tsv: Path | None, hint: str = ""
) -> str:
    """The message of a :class:`DataValidationError`: the problems grouped by set, the first
    :data:`MAX_LISTED` of them listed, ``tsv`` named as the file that lists them all."""
    total = sum(len(v) for v in problems.values())
    sets = [k for k, v in problems.items() if v]
    lines = [f"data validation found {total} problem(s) in {len(sets)} set(s){hint}:"]
    shown = 0
    for name in sets:
        lines.append(f"[{name}] {len(problems[name])} problem(s):")
        for p in problems[name]:
            if shown == MAX_LISTED:
                break
            lines.append(f"  {p}")
            shown += 1
    if total > shown:
        where = f", all listed in {tsv}" if tsv else ""
        lines.append(f"... and {total - shown} more{where}")
    elif tsv:
        lines.append(f"(also listed in {tsv})")
    return "\n".join(lines)
