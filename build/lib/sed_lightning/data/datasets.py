"""DESED-format datasets: strong (frame labels), weak (clip tags) and unlabeled clips."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from sed_lightning.data.audio import fix_length, load_audio
from sed_lightning.data.batch import KINDS, clip_item
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.data.validation import (
    AUDIO_SUFFIXES,
    SetSource,
    ValidationReport,
    validate_set,
)

# SetSource is defined beside the validation that reads it (no import circle); it is
# still importable from here
__all__ = ["AUDIO_SUFFIXES", "SEDDataset", "SetSource", "kind_groups"]

log = logging.getLogger(__name__)


class SEDDataset(Dataset):
    """Clips of one kind with their labels encoded on the model's frame grid.

    Items are dicts with the fields of :class:`~sed_lightning.data.batch.SEDBatch`.
    The clip list and labels come from the set's validation
    (:func:`~sed_lightning.data.validation.validate_set`): the clips without problems,
    the cleaned events (duplicates dropped, offsets clipped to the audio and the clip,
    same-class overlaps merged). Audio is read with
    :func:`~sed_lightning.data.audio.load_audio` (resampled, downmixed) and zero-padded
    or cropped at the end to ``clip_duration``.

    Args:
        source: where the set lives.
        encoder: label encoder (class names and frame grid).
        sample_rate: audio is resampled to this rate.
        clip_duration: clips are zero-padded or cropped to this length (seconds).
        report: the set's validation; ``None`` validates it here and raises
            :class:`~sed_lightning.data.validation.DataValidationError` on any problem.
    """

    def __init__(
        self,
        source: SetSource,
        encoder: LabelEncoder,
        sample_rate: int,
        clip_duration: float,
        report: ValidationReport | None = None,
    ) -> None:
        if report is None:
            report = validate_set(source, encoder.class_names, sample_rate, clip_duration)
            report.raise_if_problems()
        self.source = source
        self.kind = source.kind
        self.encoder = encoder
        self.sample_rate = sample_rate
        self.clip_samples = int(round(clip_duration * sample_rate))
        self.audio_dir = Path(source.audio_dir)
        self.filenames: list[str] = list(report.filenames)
        self.events: dict[str, list[tuple[float, float, str]]] = report.events
        self.tags: dict[str, list[str]] = report.tags
        # seconds of each clip the model sees: min(audio duration, clip_duration)
        self.durations: dict[str, float] = report.durations

    def __len__(self) -> int:
        return len(self.filenames)

    def clip_labels(self, filename: str) -> list[str]:
        """Clip-level tags of a clip (from its events for a strong set)."""
        if self.kind == "strong":
            return sorted({label for _, _, label in self.events.get(filename, [])})
        return list(self.tags.get(filename, []))

    def reference_events(self) -> list[tuple[str, float, float, str]]:
        """Strong ground truth ``(filename, onset, offset, label)`` of this set."""
        return [(f, *ev) for f in self.filenames for ev in self.events.get(f, [])]

    def __getitem__(self, index: int) -> dict[str, Any]:
        filename = self.filenames[index]
        audio = load_audio(self.audio_dir / filename, sample_rate=self.sample_rate)
        audio = fix_length(audio, self.clip_samples).astype(np.float32, copy=False)
        events, labels = self.events.get(filename, []), self.clip_labels(filename)
        return clip_item(audio, filename, self.kind, self.encoder, events, labels)


def kind_groups(datasets: Sequence[SEDDataset]) -> dict[str, list[int]]:
    """Indices into ``ConcatDataset(datasets)`` grouped by kind."""
    groups: dict[str, list[int]] = {k: [] for k in KINDS}
    offset = 0
    for ds in datasets:
        groups[ds.kind].extend(range(offset, offset + len(ds)))
        offset += len(ds)
    return groups
