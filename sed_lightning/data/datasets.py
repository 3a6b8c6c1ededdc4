"""DESED-format datasets: strong (frame labels), weak (clip tags) and unlabeled clips."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from sed_lightning.data.audio import fix_length, load_audio
from sed_lightning.data.batch import KINDS
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.data.tsv import read_durations_tsv, read_strong_tsv, read_weak_tsv

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


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


class SEDDataset(Dataset):
    """Clips of one kind with their labels encoded on the model's frame grid.

    Items are dicts with the fields of :class:`~sed_lightning.data.batch.SEDBatch`.

    Args:
        source: where the set lives.
        encoder: label encoder (class names and frame grid).
        sample_rate: audio is resampled to this rate.
        clip_duration: clips are zero-padded or cropped to this length (seconds).
    """

    def __init__(
        self, source: SetSource, encoder: LabelEncoder, sample_rate: int, clip_duration: float
    ) -> None:
        if source.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {source.kind!r}")
        if source.kind != "unlabeled" and not source.labels:
            raise ValueError(f"a {source.kind} set needs a label file (audio: {source.audio_dir})")
        self.source = source
        self.kind = source.kind
        self.encoder = encoder
        self.sample_rate = sample_rate
        self.clip_samples = int(round(clip_duration * sample_rate))
        self.audio_dir = Path(source.audio_dir)
        self.events: dict[str, list[tuple[float, float, str]]] = {}
        self.tags: dict[str, list[str]] = {}
        self.durations = read_durations_tsv(source.durations) if source.durations else None
        self.filenames = self._read_labels()
        self._check_audio_exists()

    def _read_labels(self) -> list[str]:
        names = self.encoder.class_names
        if self.kind == "strong":
            df = read_strong_tsv(self.source.labels, class_names=names)
            for row in df.itertuples(index=False):
                self.events.setdefault(row.filename, []).append(
                    (row.onset, row.offset, row.event_label)
                )
            listed = set(df["filename"]) | set(df.attrs.get("empty_files", []))
        elif self.kind == "weak":
            df = read_weak_tsv(self.source.labels, class_names=names)
            self.tags = {row.filename: list(row.event_labels) for row in df.itertuples(index=False)}
            listed = set(self.tags)
        else:
            listed = set()
        if self.durations is not None:
            return sorted(set(self.durations) | listed)
        if listed:
            return sorted(listed)
        files = sorted(p.name for p in self.audio_dir.iterdir() if p.suffix in AUDIO_SUFFIXES)
        if not files:
            raise ValueError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {self.audio_dir}")
        return files

    def _check_audio_exists(self) -> None:
        missing = [f for f in self.filenames if not (self.audio_dir / f).is_file()]
        if missing:
            where = self.source.labels or self.source.durations or self.audio_dir
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise FileNotFoundError(
                f"{len(missing)} clip(s) listed in {where} have no audio in {self.audio_dir}: {shown}"
            )

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
        enc = self.encoder
        strong = np.zeros((enc.n_classes, enc.n_frames), dtype=np.float32)
        weak = np.zeros(enc.n_classes, dtype=np.float32)
        if self.kind == "strong":
            strong = enc.encode_strong(self.events.get(filename, []))
        if self.kind != "unlabeled":
            weak = enc.encode_weak(self.clip_labels(filename))
        return {
            "audio": audio,
            "weak_labels": weak,
            "strong_labels": strong,
            "has_weak": self.kind != "unlabeled",
            "has_strong": self.kind == "strong",
            "filename": filename,
        }


def kind_groups(datasets: Sequence[SEDDataset]) -> dict[str, list[int]]:
    """Indices into ``ConcatDataset(datasets)`` grouped by kind."""
    groups: dict[str, list[int]] = {k: [] for k in KINDS}
    offset = 0
    for ds in datasets:
        groups[ds.kind].extend(range(offset, offset + len(ds)))
        offset += len(ds)
    return groups
