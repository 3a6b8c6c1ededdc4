"""Recorded backgrounds for synthesis: a folder of ambience files with a per-file split.

The folder holds audio files (any sample rate or channel count: they are downmixed and
resampled) and a ``metadata.csv`` with columns ``filename, split`` (more columns, e.g.
``duration``, are ignored). The split is per *file*, so no recording is shared between
training, validation and test soundscapes. A clip's background is a random clip-length
piece of one file of the set's split; a file shorter than a clip is looped with a short
cross-fade.

    >>> import tempfile, numpy as np, soundfile as sf
    >>> root = Path(tempfile.mkdtemp())
    >>> sf.write(root / "hum.wav", np.ones((44100, 2), "float32") * 0.1, 44100)
    >>> _ = (root / "metadata.csv").write_text("filename,split\\nhum.wav,train\\n")
    >>> bank = BackgroundBank(root, sample_rate=16000)
    >>> bank.files("train")
    ['hum.wav']
    >>> name, offset = bank.draw("train", 24000, np.random.default_rng(0))
    >>> bank.piece(name, offset, 24000).shape
    (24000,)
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from sed_lightning.data.audio import AudioError, load_audio
from sed_lightning.data.procedural import BACKGROUND_RMS
from sed_lightning.data.sources import SPLITS

__all__ = ["BackgroundBank", "BackgroundBankError"]

_CROSSFADE = 0.05  # seconds, where a short file is looped


class BackgroundBankError(ValueError):
    """A problem with a background folder, naming the file (and row)."""


class BackgroundBank:
    """Recorded backgrounds with a fixed per-file split.

    Args:
        root: folder with ``metadata.csv`` and the audio files it lists.
        sample_rate: files are resampled to this rate (soxr) and downmixed to mono.

    Raises:
        BackgroundBankError: no metadata, missing columns, unknown split, a listed file
            missing, or a file listed twice (each message names the file and row).
    """

    def __init__(self, root: str | PathLike, sample_rate: int = 16000) -> None:
        self.root = Path(root)
        self.sample_rate = int(sample_rate)
        self._split: dict[str, str] = _read_metadata(self.root)
        self._load = functools.lru_cache(maxsize=None)(self._load_uncached)

    def __repr__(self) -> str:
        return f"BackgroundBank({str(self.root)!r}, {len(self._split)} files)"

    def files(self, split: str | Sequence[str]) -> list[str]:
        """File names of one split or several, in metadata order."""
        wanted = {split} if isinstance(split, str) else set(split)
        unknown = wanted - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; known: {list(SPLITS)}")
        return [name for name, s in self._split.items() if s in wanted]

    def split_of(self, name: str) -> str:
        return self._split[name]

    def fingerprint(self) -> str:
        """Hash of the file list, splits, sizes and modification times (for caches)."""
        listing = [
            (name, split, (self.root / name).stat().st_size, (self.root / name).stat().st_mtime_ns)
            for name, split in self._split.items()
        ]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()

    def load(self, name: str) -> np.ndarray:
        """The whole file at :attr:`sample_rate`, mono, cached (read-only array)."""
        return self._load(name)

    def _load_uncached(self, name: str) -> np.ndarray:
        path = self.root / name
        try:
            audio = load_audio(path, self.sample_rate, mono=True)
        except AudioError as err:
            raise BackgroundBankError(f"background {path}: {err}") from err
        if audio.size == 0 or not np.isfinite(audio).all() or not np.any(audio):
            raise BackgroundBankError(f"background {path}: empty, silent or not finite")
        audio.flags.writeable = False
        return audio

    def draw(self, split: str | Sequence[str], n_samples: int, rng: np.random.Generator):
        """A random file of ``split`` and a random start sample for an ``n_samples`` piece.

        Returns:
            ``(file name, offset)``; render it with :meth:`piece`.
        """
        names = self.files(split)
        if not names:
            raise BackgroundBankError(f"{self.root}: no background file in split {split!r}")
        name = names[int(rng.integers(len(names)))]
        length = len(self.load(name))
        offset = int(rng.integers(max(1, length - n_samples + 1)))
        return name, offset

    def piece(self, name: str, offset: int, n_samples: int) -> np.ndarray:
        """``n_samples`` from ``offset``, looped with a cross-fade if the file is too
        short, RMS-normalised to :data:`~.procedural.BACKGROUND_RMS`.

        Shape:
            ``(n_samples,)``, ``float32``.
        """
        audio = self.load(name)
        if offset + n_samples > len(audio):
            audio = _loop(audio, offset + n_samples, int(_CROSSFADE * self.sample_rate))
        out = np.array(audio[offset : offset + n_samples], dtype=np.float64)
        rms = np.sqrt(np.mean(np.square(out)))
        if rms > 0:
            out *= BACKGROUND_RMS / rms
        return out.astype(np.float32)


def _loop(audio: np.ndarray, n: int, n_fade: int) -> np.ndarray:
    """Repeat ``audio`` with linear cross-fades until it has at least ``n`` samples."""
    n_fade = min(n_fade, len(audio) // 2)
    out = np.array(audio, dtype=np.float64)
    ramp = np.linspace(0.0, 1.0, n_fade)
    while len(out) < n:
        head = audio[:n_fade] * ramp
        out[len(out) - n_fade :] = out[len(out) - n_fade :] * ramp[::-1] + head
        out = np.concatenate([out, audio[n_fade:]])
    return out


def _read_metadata(root: Path) -> dict[str, str]:
    path = root / "metadata.csv"
    if not path.is_file():
        raise BackgroundBankError(f"no metadata.csv in backgrounds_dir {root}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"filename", "split"} - set(reader.fieldnames or [])
        if missing:
            raise BackgroundBankError(f"{path}: missing column(s) {sorted(missing)}")
        split: dict[str, str] = {}
        problems = []
        for row_no, row in enumerate(reader, start=2):
            name, s = (row["filename"] or "").strip(), (row["split"] or "").strip()
            if s not in SPLITS:
                problems.append(f"{path}:{row_no}: {name}: split {s!r} not in {list(SPLITS)}")
            elif name in split:
                problems.append(f"{path}:{row_no}: {name} listed twice")
            elif not (root / name).is_file():
                problems.append(f"{path}:{row_no}: file {root / name} not found")
            else:
                split[name] = s
    if problems:
        raise BackgroundBankError("\n".join(problems))
    if not split:
        raise BackgroundBankError(f"{path}: lists no files")
    return split
