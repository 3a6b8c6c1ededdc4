"""Sliding windows over audio of any length, and the overlap-add of their frame scores.

A file of ``n_samples`` samples is scored on the model's frame grid: frame ``k`` covers
samples ``[k * frame_samples, (k + 1) * frame_samples)``, and the file has
``ceil(n_samples / frame_samples)`` frames. Windows are ``window_frames`` frames long (the
training clip) and start every ``hop_frames`` frames, so every window's frames fall on the
file's grid; where windows overlap, their scores are averaged. Audio is read forward once
(:class:`AudioReader`, :func:`iter_windows`), so memory is bounded by a window, not a file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sed_lightning.data.audio import AudioError

PAD_MODES = ("reflect", "zeros", "none")


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of one file start.

    Args:
        n_samples: the file's length at the model's sample rate.
        frame_samples: samples per model frame (STFT hop x the CNN's time pooling).
        window_frames: frames per window (the training clip's).
        hop_frames: frames between window starts (``window_frames``: no overlap).

    >>> plan = WindowPlan(n_samples=25_000, frame_samples=1000, window_frames=10, hop_frames=5)
    >>> plan.n_frames, plan.window_samples, plan.starts
    (25, 10000, [0, 5, 10, 15])
    >>> WindowPlan(3_500, 1000, 10, 5).starts  # shorter than a window: one window
    [0]
    """

    n_samples: int
    frame_samples: int
    window_frames: int
    hop_frames: int

    def __post_init__(self) -> None:
        if not 0 < self.hop_frames <= self.window_frames:
            raise ValueError(
                f"the window hop must be 1..{self.window_frames} frames, got {self.hop_frames}"
            )

    @property
    def n_frames(self) -> int:
        return max(1, math.ceil(self.n_samples / self.frame_samples))

    @property
    def window_samples(self) -> int:
        return self.window_frames * self.frame_samples

    @property
    def starts(self) -> list[int]:
        """First frame of each window; the last window reaches the file's last frame."""
        extra = max(0, self.n_frames - self.window_frames)
        n_windows = 1 + math.ceil(extra / self.hop_frames)
        return [j * self.hop_frames for j in range(n_windows)]


def pad_to(segment: np.ndarray, length: int, mode: str) -> np.ndarray:
    """Pad a 1-D segment at its end to ``length`` samples.

    ``reflect`` mirrors the audio (repeatedly, for a segment much shorter than ``length``);
    ``zeros`` appends digital silence; ``none`` pads only up to the next whole frame (the
    caller passes that length), with reflection.

    >>> pad_to(np.array([1.0, 2.0, 3.0]), 7, "reflect")
    array([1., 2., 3., 2., 1., 2., 3.])
    >>> pad_to(np.array([1.0, 2.0]), 4, "zeros")
    array([1., 2., 0., 0.])
    """
    missing = length - len(segment)
    if missing <= 0:
        return segment[:length]
    if mode == "zeros" or len(segment) < 2:
        return np.pad(segment, (0, missing))
    return np.pad(segment, (0, missing), mode="reflect")


class OverlapAdd:
    """Average of the window scores that cover each frame.

    Shape:
        ``add(start, scores)``: ``scores`` ``(n_window_frames, n_classes)`` at frame
        ``start``; :meth:`result` ``(n_frames, n_classes)``.

    >>> merged = OverlapAdd(n_frames=4, n_classes=1)
    >>> merged.add(0, np.array([[1.0], [1.0], [1.0]]))
    >>> merged.add(2, np.array([[0.0], [0.0], [0.0]]))  # its last frame is past the file
    >>> merged.result()[:, 0]
    array([1. , 1. , 0.5, 0. ], dtype=float32)
    """

    def __init__(self, n_frames: int, n_classes: int) -> None:
        self.total = np.zeros((n_frames, n_classes), dtype=np.float64)
        self.count = np.zeros(n_frames, dtype=np.int64)

    def add(self, start: int, scores: np.ndarray) -> None:
        stop = min(start + len(scores), len(self.count))
        self.total[start:stop] += scores[: stop - start]
        self.count[start:stop] += 1

    def result(self) -> np.ndarray:
        covered = self.count > 0
        if not covered.all():  # at most a frame past the last output frame: repeat it
            last = np.flatnonzero(covered)[-1]
            self.total[last + 1 :] = self.total[last] / self.count[last]
            self.count[last + 1 :] = 1
        return (self.total / self.count[:, None]).astype(np.float32)


class ArrayReader:
    """:class:`AudioReader`'s interface over audio already in memory."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = np.asarray(audio, dtype=np.float32)
        self.position = 0

    def read(self, n: int) -> np.ndarray:
        out = self.audio[self.position : self.position + n]
        self.position += len(out)
        return out


class AudioReader:
    """Read a file forward in blocks as mono float32 at ``sample_rate`` (downmixed, and
    resampled with soxr's streaming resampler, which gives the same result as resampling
    the whole file at once up to float rounding).

    Raises :class:`~sed_lightning.data.audio.AudioError` naming the file and the time for
    NaN or infinite samples.
    """

    def __init__(self, path: str | Path, sample_rate: int, block_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self.file = sf.SoundFile(str(path))
        self.file_rate = int(self.file.samplerate)
        self.block = max(1, int(block_seconds * self.file_rate))
        self.resampler = (
            None
            if self.file_rate == sample_rate
            else soxr.ResampleStream(self.file_rate, sample_rate, 1, dtype="float32", quality="HQ")
        )
        self.buffer = np.zeros(0, dtype=np.float32)
        self.done = False
        self.read_frames = 0

    def _more(self) -> None:
        data = self.file.read(self.block, dtype="float32", always_2d=True)
        last = len(data) < self.block
        if not np.isfinite(data).all():
            bad = self.read_frames + int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0])
            raise AudioError(
                f"{self.path}: NaN or infinite samples (first at {bad / self.file_rate:.2f} s)"
            )
        self.read_frames += len(data)
        mono = data.mean(axis=1)
        if self.resampler is not None:
            mono = self.resampler.resample_chunk(mono, last=last)
        self.buffer = np.concatenate([self.buffer, mono.astype(np.float32, copy=False)])
        if last:
            self.done = True
            self.file.close()

    def read(self, n: int) -> np.ndarray:
        while len(self.buffer) < n and not self.done:
            self._more()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


def iter_windows(
    reader: ArrayReader | AudioReader, plan: WindowPlan, pad: str = "reflect"
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start_frame, window)`` for each window of ``plan``, reading ``reader`` forward.

    Windows are ``plan.window_samples`` long; the last one (or a file shorter than a window)
    is padded with ``pad`` — with ``none`` it is cut to its own length in whole frames.
    Only the samples of the current window are held.

    >>> plan = WindowPlan(n_samples=5, frame_samples=2, window_frames=2, hop_frames=1)
    >>> [(s, w.tolist()) for s, w in iter_windows(ArrayReader(np.arange(5.0)), plan, "zeros")]
    [(0, [0.0, 1.0, 2.0, 3.0]), (1, [2.0, 3.0, 4.0, 0.0])]
    """
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    held = np.zeros(0, dtype=np.float32)
    held_from = 0  # sample index of held[0]
    fs = plan.frame_samples
    for start in plan.starts:
        first = start * fs
        held = held[first - held_from :]
        held_from = first
        want = plan.window_samples - len(held)
        if want > 0:
            held = np.concatenate([held, reader.read(want)])
        window = held[: plan.window_samples]
        if len(window) < plan.window_samples:
            if pad == "none":
                length = max(fs, math.ceil(len(window) / fs) * fs)
            else:
                length = plan.window_samples
            window = pad_to(window, length, "reflect" if pad == "none" else pad)
        yield start, window
