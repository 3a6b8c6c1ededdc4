"""Audio file I/O: loading (soundfile, no FFmpeg), resampling, saving, length fixing.

All audio inside the framework is ``float32`` in ``[-1, 1]``, mono, at the configured
sample rate (16 kHz by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioError",
    "AudioInfo",
    "fix_length",
    "inspect_audio",
    "load_audio",
    "resample",
    "resampled_length",
    "save_audio",
]

# the audio files the framework reads from a folder (sets, backgrounds, noise banks)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
_READ_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError)
_BLOCK_FRAMES = 1 << 18  # frames decoded at a time by inspect_audio


class AudioError(ValueError):
    """An audio file is missing, unreadable, empty or holds non-finite samples.

    The message always names the offending file.
    """


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`inspect_audio` found in a file (frames actually decoded)."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.sample_rate


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")


def inspect_audio(path: str | PathLike, decode: bool = True) -> AudioInfo:
    """Check that a file is usable audio without keeping its samples.

    Reads the header (cheap); with ``decode`` also decodes every sample, block by
    block, to find decoding errors (e.g. a truncated FLAC) and NaN/inf samples; the
    frame count is then the number of frames actually decoded.

    Raises
    ------
    AudioError
        Same conditions as :func:`load_audio`: missing, undecodable, no samples, NaN/inf.
    """
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(path)
        frames = int(info.frames)
        if decode:
            frames = 0
            for block in sf.blocks(path, blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    raise AudioError(f"{path}: audio contains NaN or infinite samples")
                frames += block.shape[0]
    except _READ_ERRORS as err:
        raise AudioError(f"{path}: cannot read audio ({err})") from err
    if frames <= 0:
        raise AudioError(f"{path}: audio file has no samples")
    return AudioInfo(sample_rate=int(info.samplerate), channels=int(info.channels), frames=frames)


def resampled_length(n_samples: int, orig_rate: int, new_rate: int) -> int:
    """Length :func:`resample` returns for ``n_samples`` samples (soxr rounds to nearest).

    >>> resampled_length(44100, 44100, 16000), resampled_length(7, 48000, 16000)
    (16000, 2)
    """
    if orig_rate == new_rate:
        return int(n_samples)
    return int(n_samples * new_rate / orig_rate + 0.5)


def load_audio(path: str | PathLike, sample_rate: int = 16000, mono: bool = True) -> np.ndarray:
    """Read an audio file (wav/flac/ogg, anything libsndfile reads) as float32.

    Multichannel audio is downmixed by averaging the channels when ``mono`` is true.
    The signal is resampled to ``sample_rate`` when the file's rate differs.

    Parameters
    ----------
    path
        Audio file.
    sample_rate
        Target sample rate in Hz.
    mono
        Downmix to a single channel.

    Returns
    -------
    np.ndarray
        ``float32`` samples.

    Shape:
        ``(n_samples,)`` when ``mono``; ``(n_channels, n_samples)`` otherwise.

    Raises
    ------
    AudioError
        The file is missing, cannot be decoded, has no samples, or holds NaN/inf.
    """
    path = Path(path)
    _check_file(path)
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except _READ_ERRORS as err:
        raise AudioError(f"{path}: cannot read audio ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file has no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    audio = data.T  # (n_channels, n_samples)
    if mono:
        audio = audio.mean(axis=0)
    if file_rate != sample_rate:
        audio = resample(audio, file_rate, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def resample(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality, linear phase).

    soxr is the resampler librosa uses by default: maintained, fast, and free of any
    pairing with torch's build (the library used before is end of life). ``scipy.signal.resample_poly``
    would also do, but needs rational factors and is slower for 44.1 -> 16 kHz.

    Shape:
        ``(..., n_samples)`` -> ``(..., resampled_length(n_samples, orig_rate, new_rate))``.

    >>> resample(np.zeros((2, 44100), dtype=np.float32), 44100, 16000).shape
    (2, 16000)
    """
    if orig_rate == new_rate:
        return audio.astype(np.float32, copy=False)
    audio = np.asarray(audio, dtype=np.float32)
    lead = audio.shape[:-1]
    frames = audio.reshape(-1, audio.shape[-1]).T  # soxr wants (n_samples, n_channels)
    out = soxr.resample(np.ascontiguousarray(frames), int(orig_rate), int(new_rate), quality="HQ")
    out = np.asarray(out, dtype=np.float32).reshape(-1, frames.shape[1]).T
    return np.ascontiguousarray(out).reshape(*lead, -1)


def save_audio(path: str | PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write a 16-bit PCM WAV file, clipping to ``[-1, 1]`` and creating parent folders.

    Shape:
        audio: ``(n_samples,)`` or ``(n_channels, n_samples)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if data.ndim == 2:
        data = data.T  # soundfile wants (n_samples, n_channels)
    sf.write(path, data, int(sample_rate), subtype="PCM_16", format="WAV")


def fix_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad at the end or crop the last axis to exactly ``n_samples``.

    Shape:
        ``(..., n)`` -> ``(..., n_samples)``.
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    current = audio.shape[-1]
    if current >= n_samples:
        return audio[..., :n_samples]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, n_samples - current)]
    return np.pad(audio, pad)
