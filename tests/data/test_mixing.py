"""Tests for sed_lightning.data.mixing: events placed in one clip and mixed over its
background (:func:`~sed_lightning.data.mixing.synthesize_clip`)."""

from __future__ import annotations

import numpy as np
import pytest

from sed_lightning.data.mixing import SAME_CLASS_GAP, candidate_pieces, synthesize_clip
from sed_lightning.data.procedural import generate_background
from sed_lightning.data.set_spec import SoundscapeConfig

SR = 1000  # clip-level tests run at 1 kHz: same logic, 16x less work


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _sources() -> list[tuple[np.ndarray, str]]:
    return [(np.ones(800), "a"), (np.ones(1500), "b"), (np.sin(np.arange(600) / 3.0), "c")]


def test_events_never_overlap_without_overlap() -> None:
    cfg = SoundscapeConfig(
        clip_duration=5.0, sample_rate=SR, min_events=4, max_events=4, allow_overlap=False
    )
    n_events = []
    for seed in range(30):
        background = generate_background(5.0, _rng(seed), SR)
        _, events = synthesize_clip(_sources(), background, cfg, _rng(seed + 100))
        n_events.append(len(events))
        onsets = [on for on, _, _ in events]
        assert onsets == sorted(onsets)
        for (_, first_offset, _), (second_onset, _, _) in zip(events, events[1:], strict=False):
            assert first_offset <= second_onset
    assert max(n_events) == 4


def test_overlap_happens_when_allowed() -> None:
    """Control for the test above: the same draws do overlap when allowed."""
    cfg = SoundscapeConfig(
        clip_duration=5.0, sample_rate=SR, min_events=4, max_events=4, allow_overlap=True
    )
    overlaps = 0
    for seed in range(30):
        _, events = synthesize_clip(_sources(), np.zeros(5000), cfg, _rng(seed))
        overlaps += any(b[0] < a[1] for a, b in zip(events, events[1:], strict=False))
    assert overlaps > 0


def test_too_many_events_for_the_clip_are_dropped_not_overlapped() -> None:
    cfg = SoundscapeConfig(
        clip_duration=5.0, sample_rate=SR, min_events=6, max_events=6, allow_overlap=False
    )
    sources = [(np.ones(1500), "b")]  # at most 3 of 1.5 s fit in 5 s
    _, events = synthesize_clip(sources, np.zeros(5000), cfg, _rng(0))
    assert 1 <= len(events) <= 3
    assert all(a[1] <= b[0] for a, b in zip(events, events[1:], strict=False))


def test_given_placements_are_honoured_exactly() -> None:
    cfg = SoundscapeConfig(clip_duration=5.0, sample_rate=SR, ebr_db=(6.0, 6.0))
    sources = [(np.ones(500), "a"), (np.full(250, -1.0), "b")]
    mixture, events = synthesize_clip(
        sources, np.zeros(5000), cfg, _rng(0), placements=[(1, 2.0), (0, 0.5), (0, 4.8)]
    )
    assert events == [(0.5, 1.0, "a"), (2.0, 2.25, "b"), (4.8, 5.0, "a")]
    level = 0.05 * 10 ** (6 / 20)  # silent background: EBR relative to BACKGROUND_RMS
    expected = np.zeros(5000)
    expected[500:1000], expected[2000:2250], expected[4800:] = level, -level, level
    np.testing.assert_allclose(mixture, expected, rtol=1e-6)


def test_bad_placements_raise() -> None:
    cfg = SoundscapeConfig(clip_duration=5.0, sample_rate=SR, allow_overlap=False)
    sources = [(np.ones(500), "a")]
    with pytest.raises(ValueError, match="overlaps"):
        synthesize_clip(sources, np.zeros(5000), cfg, _rng(0), placements=[(0, 1.0), (0, 1.2)])
    with pytest.raises(ValueError, match="index 3"):
        synthesize_clip(sources, np.zeros(5000), cfg, _rng(0), placements=[(3, 1.0)])
    with pytest.raises(ValueError, match="outside the clip"):
        synthesize_clip(sources, np.zeros(5000), cfg, _rng(0), placements=[(0, 5.0)])


def test_event_to_background_ratio_is_exact_over_the_event_extent() -> None:
    cfg = SoundscapeConfig(clip_duration=5.0, sample_rate=SR, ebr_db=(10.0, 10.0))
    background = (0.05 * _rng(1).standard_normal(5000)).astype(np.float32)
    sine = np.sin(2 * np.pi * 50 * np.arange(1000) / SR)
    mixture, _ = synthesize_clip([(sine, "s")], background, cfg, _rng(0), placements=[(0, 1.0)])

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))

    event = mixture[1000:2000] - background[1000:2000]
    assert 20 * np.log10(rms(event) / rms(background[1000:2000])) == pytest.approx(10.0, abs=1e-3)
    np.testing.assert_array_equal(mixture[:1000], background[:1000])


def test_loud_mix_is_scaled_below_clipping_labels_unchanged() -> None:
    cfg = SoundscapeConfig(clip_duration=5.0, sample_rate=SR, ebr_db=(40.0, 40.0))
    background = generate_background(5.0, _rng(0), SR)
    mixture, events = synthesize_clip(
        [(np.ones(500), "a")], background, cfg, _rng(0), placements=[(0, 1.0)]
    )
    assert np.max(np.abs(mixture)) == pytest.approx(0.99, rel=1e-6)
    assert events == [(1.0, 1.5, "a")]


def test_long_source_is_cut_into_pieces_that_fit() -> None:
    cfg = SoundscapeConfig(clip_duration=10.0, sample_rate=SR, max_event_duration=2.0)
    source = np.sin(np.arange(12 * SR) / 7.0)
    pieces = candidate_pieces([(source, "water"), (np.ones(5 * SR), "hum")], cfg)

    lengths = [len(p) for p, _ in pieces]
    assert lengths == [2000] * 6 + [1667, 1666, 1667]
    assert [label for _, label in pieces] == ["water"] * 6 + ["hum"] * 3
    # Pieces are consecutive parts of the source (away from the 5 ms fades at cuts).
    np.testing.assert_allclose(pieces[2][0][10:-10], source[4010:5990], rtol=1e-6)

    cfg = SoundscapeConfig(
        clip_duration=10.0, sample_rate=SR, min_events=3, max_events=3, max_event_duration=2.0
    )
    for seed in range(5):
        _, events = synthesize_clip([(source, "water")], np.zeros(10 * SR), cfg, _rng(seed))
        assert len(events) == 3
        assert all(round((offset - onset) * SR) <= 2000 for onset, offset, _ in events)


def test_source_longer_than_clip_is_cut_to_clip_length() -> None:
    cfg = SoundscapeConfig(clip_duration=4.0, sample_rate=SR)
    lengths = [len(p) for p, _ in candidate_pieces([(np.ones(9 * SR), "x")], cfg)]
    assert lengths == [3000, 3000, 3000]


def test_same_class_events_never_overlap_even_when_overlap_is_allowed() -> None:
    cfg = SoundscapeConfig(
        clip_duration=5.0, sample_rate=SR, min_events=5, max_events=5, allow_overlap=True
    )
    for seed in range(30):
        _, events = synthesize_clip(_sources(), np.zeros(5000), cfg, _rng(seed))
        for label in {lab for _, _, lab in events}:
            spans = sorted((on, off) for on, off, lab in events if lab == label)
            for (_, first_off), (second_on, _) in zip(spans, spans[1:], strict=False):
                assert second_on - first_off >= SAME_CLASS_GAP - 1e-9


def test_given_same_class_overlap_is_refused() -> None:
    cfg = SoundscapeConfig(clip_duration=5.0, sample_rate=SR, allow_overlap=True)
    with pytest.raises(ValueError, match="apart"):
        synthesize_clip(
            [(np.ones(500), "a")], np.zeros(5000), cfg, _rng(0), placements=[(0, 0.5), (0, 0.8)]
        )
