"""Tests for sed_lightning.data.procedural: built-in event and background generators."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from sed_lightning.data.procedural import (
    BACKGROUND_RMS,
    DEFAULT_CLASSES,
    DURATION_RANGES,
    EVENT_PEAK,
    generate_background,
    generate_event,
)

SR = 16000


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng(list(seed))


@pytest.mark.parametrize("label", DEFAULT_CLASSES)
def test_event_is_deterministic_per_seed(label: str) -> None:
    a = generate_event(label, _rng(1), duration=0.5)
    b = generate_event(label, _rng(1), duration=0.5)
    c = generate_event(label, _rng(2), duration=0.5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_background_is_deterministic_per_seed() -> None:
    np.testing.assert_array_equal(
        generate_background(1.0, _rng(1)), generate_background(1.0, _rng(1))
    )
    assert not np.allclose(generate_background(1.0, _rng(1)), generate_background(1.0, _rng(2)))


@pytest.mark.parametrize("label", DEFAULT_CLASSES)
def test_natural_durations_follow_class_range(label: str) -> None:
    low, high = DURATION_RANGES[label]
    lengths = [len(generate_event(label, _rng(seed))) / SR for seed in range(4)]
    assert all(low <= d <= high for d in lengths), lengths
    assert len(set(lengths)) > 1  # drawn, not fixed


@pytest.mark.parametrize("label", DEFAULT_CLASSES)
@pytest.mark.parametrize("duration", [0.02, 0.7])
def test_requested_duration_peak_and_fades(label: str, duration: float) -> None:
    x = generate_event(label, _rng(0), duration=duration)
    assert x.dtype == np.float32
    assert x.shape == (round(duration * SR),)
    assert np.max(np.abs(x)) == pytest.approx(EVENT_PEAK, rel=1e-5)
    assert x[0] == 0.0 and x[-1] == 0.0  # raised-cosine fades start/end at zero


def test_unknown_label_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'meow'.*alarm.*dog_bark"):
        generate_event("meow", _rng(0))


def test_background_level_and_length() -> None:
    b = generate_background(2.5, _rng(3))
    assert b.dtype == np.float32 and b.shape == (40000,)
    assert np.sqrt(np.mean(b.astype(np.float64) ** 2)) == pytest.approx(BACKGROUND_RMS, rel=1e-4)


def test_background_colour_varies_between_white_and_brown() -> None:
    """Low/high band power ratio differs across seeds (random spectral slope)."""
    ratios = []
    for seed in range(8):
        f, p = signal.welch(generate_background(2.0, _rng(seed)), SR, nperseg=1024)
        ratios.append(p[(f > 50) & (f < 200)].mean() / p[(f > 3000) & (f < 6000)].mean())
    assert min(ratios) < 3 and max(ratios) > 100


def _spectral_centroid(x: np.ndarray) -> float:
    f, p = signal.welch(x, SR, nperseg=1024)
    return float((f * p).sum() / p.sum())


def test_engine_and_knock_are_low_alarm_is_high() -> None:
    for seed in range(3):
        engine = _spectral_centroid(generate_event("engine", _rng(seed)))
        knock = _spectral_centroid(generate_event("knock", _rng(seed)))
        alarm = _spectral_centroid(generate_event("alarm", _rng(seed)))
        assert engine < 400 and knock < 500
        assert alarm > 1000


def _features(x: np.ndarray) -> np.ndarray:
    """16 log band energies (relative), envelope variability, median spectral flatness."""
    _, _, stft = signal.stft(x, SR, nperseg=512, noverlap=256)
    power = np.abs(stft) ** 2 + 1e-12
    bands = np.log10([b.sum() for b in np.array_split(power.mean(axis=1), 16)])
    envelope_db = 10 * np.log10(power.sum(axis=0))
    flatness = np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)
    return np.concatenate([bands - bands.max(), [envelope_db.std() / 10, 10 * np.median(flatness)]])


def test_classes_are_separable_by_nearest_class_mean() -> None:
    """Class means from seeds [0, k] classify unseen seeds [1, k] perfectly."""
    means = {
        label: np.mean(
            [_features(generate_event(label, _rng(0, k), duration=1.5)) for k in range(3)], 0
        )
        for label in DEFAULT_CLASSES
    }
    for label in DEFAULT_CLASSES:
        for k in range(3):
            f = _features(generate_event(label, _rng(1, k), duration=1.5))
            predicted = min(means, key=lambda c: np.linalg.norm(means[c] - f))
            assert predicted == label


def test_textures_are_deterministic_at_the_background_level_and_less_steady_than_ambience():
    from sed_lightning.data.procedural import BACKGROUND_RMS, generate_ambience, generate_textures

    one = generate_textures(3.0, np.random.default_rng(7))
    assert one.shape == (48000,) and one.dtype == np.float32
    np.testing.assert_array_equal(one, generate_textures(3.0, np.random.default_rng(7)))
    assert np.sqrt(np.mean(one.astype(np.float64) ** 2)) == pytest.approx(BACKGROUND_RMS, rel=1e-3)

    def unsteadiness(x: np.ndarray) -> float:
        """Std over 20 ms frames of the frame level (dB)."""
        frames = x[: len(x) // 320 * 320].reshape(-1, 320).astype(np.float64)
        return float(np.std(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)))

    seeds = range(12)
    textures = [unsteadiness(generate_textures(4.0, np.random.default_rng(s))) for s in seeds]
    ambience = [unsteadiness(generate_ambience(4.0, np.random.default_rng(s))) for s in seeds]
    # gusts (10-25 dB envelopes) and crackle make the level swing where ambience is steady
    assert np.median(textures) > np.median(ambience) + 1.0
