"""The audio files of an archive: listing with relative names, fingerprints for resuming,
and a Dataset that reads them in DataLoader workers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from torch.utils.data import Dataset

from sed_lightning.data.audio import AudioError, load_audio, resampled_length
from sed_lightning.data.datasets import AUDIO_SUFFIXES
from sed_lightning.inference.windows import ArrayReader, WindowPlan, iter_windows


@dataclass(frozen=True)
class AudioFile:
    """One input file: its path, the name written in the outputs (relative to the folder
    given, with ``/``), and its size and modification time (what "already done" checks)."""

    path: Path
    name: str
    size: int
    mtime_ns: int

    @classmethod
    def at(cls, path: Path, root: Path) -> AudioFile:
        stat = path.stat()
        name = path.relative_to(root).as_posix() if path != root else path.name
        return cls(path, name, stat.st_size, stat.st_mtime_ns)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.name, self.size, self.mtime_ns)


def audio_files(path: str | Path) -> list[AudioFile]:
    """``path`` itself, or the audio files under a folder (recursively, sorted by relative
    name; names are relative to ``path``, so ``a/take1.wav`` and ``b/take1.wav`` differ).

    Raises:
        FileNotFoundError: ``path`` does not exist, or a folder holds no audio file.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES),
            key=lambda p: p.relative_to(path).as_posix(),
        )
        if not files:
            raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {path}")
        return [AudioFile.at(p, path) for p in files]
    if not path.is_file():
        raise FileNotFoundError(f"audio path {path} does not exist")
    return [AudioFile.at(path, path.parent)]


@dataclass
class FileItem:
    """What the DataLoader hands the prediction step for one file.

    ``windows`` holds the file's windows when it was read in the worker (files up to
    ``preload_seconds``); ``None`` for a longer file, which the step streams from disk.
    ``error`` says why the file could not be read (then nothing else is set).
    """

    file: AudioFile
    n_samples: int = 0
    starts: list[int] | None = None
    windows: list[np.ndarray] | None = None
    error: str | None = None


def collate_files(items: list[FileItem]) -> list[FileItem]:
    """Batches stay lists of :class:`FileItem` (files of different lengths)."""
    return items


class AudioFileDataset(Dataset):
    """One item per file: the file's windows read, downmixed and resampled in the worker
    (or, past ``preload_seconds``, left to be streamed). A file that cannot be read becomes
    an item with its ``error``, never an exception that stops the run.

    Args:
        files: the files to score.
        sample_rate: the model's rate.
        plan: ``plan(n_samples) -> WindowPlan``.
        pad: how the last window is padded (see :func:`iter_windows`).
        preload_seconds: longer files are streamed by the prediction step.
    """

    def __init__(self, files, sample_rate, plan, pad, preload_seconds: float = 120.0) -> None:
        self.files = list(files)
        self.sample_rate = sample_rate
        self.plan = plan
        self.pad = pad
        self.preload_seconds = preload_seconds

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> FileItem:
        file = self.files[index]
        try:
            info = sf.info(str(file.path))
            if info.frames <= 0:
                raise AudioError(f"{file.path}: audio file has no samples")
            n_samples = resampled_length(info.frames, info.samplerate, self.sample_rate)
            if n_samples / self.sample_rate > self.preload_seconds:
                return FileItem(file, n_samples)
            audio = load_audio(file.path, sample_rate=self.sample_rate)
            plan: WindowPlan = self.plan(len(audio))
            pairs = list(iter_windows(ArrayReader(audio), plan, self.pad))
            return FileItem(file, len(audio), [s for s, _ in pairs], [w for _, w in pairs])
        except (AudioError, sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
            return FileItem(file, error=str(err).replace(str(file.path), file.name))
