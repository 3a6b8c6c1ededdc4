"""Tests for sed_lightning.data.audio: loading, resampling, saving, length fixing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sed_lightning.data.audio import (
    AudioError,
    fix_length,
    load_audio,
    resample,
    resampled_length,
    save_audio,
)


def _sine(freq: float, sr: int, seconds: float, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)


def _peak_frequency(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


def test_stereo_44k_becomes_mono_16k_with_right_length(tmp_path: Path) -> None:
    sine = _sine(440, 44100, 1.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([0.5 * sine, 0.1 * sine], axis=1), 44100, subtype="FLOAT")

    audio = load_audio(path, sample_rate=16000)

    assert audio.dtype == np.float32
    assert audio.shape == (16000,)
    # Channel mean: (0.5 + 0.1) / 2 = 0.3 amplitude (edges excluded from the check).
    assert np.max(np.abs(audio[1000:-1000])) == pytest.approx(0.3, abs=0.005)


def test_mono_false_keeps_channels(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    data = np.stack([np.full(800, 0.25), np.full(800, -0.5)], axis=1)
    sf.write(path, data, 16000, subtype="FLOAT")

    audio = load_audio(path, sample_rate=16000, mono=False)

    assert audio.shape == (2, 800)
    np.testing.assert_allclose(audio[:, 0], [0.25, -0.5])


@pytest.mark.parametrize(("file_rate", "fmt"), [(44100, "WAV"), (22050, "FLAC"), (48000, "OGG")])
def test_resampling_keeps_sine_frequency(tmp_path: Path, file_rate: int, fmt: str) -> None:
    path = tmp_path / f"sine.{fmt.lower()}"
    sf.write(path, _sine(440, file_rate, 1.0, 0.5), file_rate, format=fmt)

    audio = load_audio(path, sample_rate=16000)

    assert len(audio) == 16000
    assert _peak_frequency(audio, 16000) == pytest.approx(440, abs=1)


@pytest.mark.parametrize("orig_rate", [8000, 11025, 22050, 32000, 44100, 48000, 96000])
@pytest.mark.parametrize("n_samples", [1, 7, 999, 16001, 44100])
def test_resampled_length_predicts_what_resample_returns(orig_rate: int, n_samples: int) -> None:
    audio = np.random.default_rng(0).standard_normal((2, n_samples)).astype(np.float32)
    out = resample(audio, orig_rate, 16000)
    assert out.shape == (2, resampled_length(n_samples, orig_rate, 16000))
    assert out.dtype == np.float32


def test_resampling_removes_content_above_the_new_nyquist() -> None:
    # 7 kHz passes to 16 kHz; 9.5 kHz would alias to 6.5 kHz and must be filtered out.
    x = _sine(7000, 48000, 1.0, 0.5) + _sine(9500, 48000, 1.0, 0.5)
    y = resample(x.astype(np.float32), 48000, 16000)[1000:-1000]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    at = lambda f: spectrum[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert at(6500) < 1e-3 * at(7000)


def test_same_rate_is_returned_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "same.wav"
    data = np.array([0.0, 0.5, -0.25, 1.0], dtype=np.float32)
    sf.write(path, data, 16000, subtype="FLOAT")

    np.testing.assert_array_equal(load_audio(path), data)


def test_missing_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="nope.wav"):
        load_audio(path)


def test_zero_length_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav.*no samples"):
        load_audio(path)


def test_nan_samples_raise(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN"):
        load_audio(path)


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00", b"not audio at all" * 100])
def test_corrupt_file_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=r"corrupt\.wav"):
        load_audio(path)


def test_truncated_flac_raises(tmp_path: Path) -> None:
    good = tmp_path / "good.flac"
    sf.write(good, _sine(440, 16000, 1.0, 0.5), 16000)
    bad = tmp_path / "truncated.flac"
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(AudioError, match=r"truncated\.flac"):
        load_audio(bad)


def test_save_audio_clips_writes_pcm16_and_creates_dirs(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.wav"
    save_audio(path, np.array([2.0, -3.0, 0.5, 0.0]), 16000)

    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    np.testing.assert_allclose(load_audio(path), [1.0, -1.0, 0.5, 0.0], atol=1 / 32768)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(2, [1.0, 2.0]), (3, [1.0, 2.0, 3.0]), (5, [1.0, 2.0, 3.0, 0.0, 0.0]), (0, [])],
)
def test_fix_length(n: int, expected: list[float]) -> None:
    np.testing.assert_array_equal(fix_length(np.array([1.0, 2.0, 3.0]), n), expected)


def test_fix_length_acts_on_last_axis() -> None:
    out = fix_length(np.ones((2, 3)), 4)
    np.testing.assert_array_equal(out, [[1, 1, 1, 0], [1, 1, 1, 0]])
