"""Sliding windows, overlap-add and streamed reading (sed_lightning.inference.windows)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sed_lightning.data.audio import AudioError, load_audio
from sed_lightning.inference.windows import (
    ArrayReader,
    AudioReader,
    OverlapAdd,
    WindowPlan,
    iter_windows,
    pad_to,
)


@pytest.mark.parametrize("n_samples", [1, 999, 1000, 9_999, 10_000, 10_001, 47_500])
@pytest.mark.parametrize("hop_frames", [1, 4, 10])
def test_windows_cover_every_frame_on_the_file_grid(n_samples, hop_frames):
    plan = WindowPlan(n_samples, frame_samples=1000, window_frames=10, hop_frames=hop_frames)
    covered = np.zeros(plan.n_frames, dtype=int)
    for start in plan.starts:
        covered[start : start + plan.window_frames] += 1
    assert (covered >= 1).all()
    assert plan.starts[-1] < plan.n_frames  # no window starts past the file
    assert plan.n_frames == int(np.ceil(n_samples / 1000)) or n_samples < 1000


def test_windows_hold_the_file_samples_at_their_starts():
    audio = np.arange(23_456, dtype=np.float32)
    plan = WindowPlan(len(audio), frame_samples=100, window_frames=50, hop_frames=20)
    for start, window in iter_windows(ArrayReader(audio), plan, "zeros"):
        assert len(window) == 5000
        real = audio[start * 100 : start * 100 + 5000]
        np.testing.assert_array_equal(window[: len(real)], real)
        assert not window[len(real) :].any()


def test_reflect_padding_of_a_short_file_and_own_length_with_none():
    audio = np.linspace(-1, 1, 2500, dtype=np.float32)
    plan = WindowPlan(len(audio), frame_samples=1000, window_frames=10, hop_frames=5)
    [(start, window)] = list(iter_windows(ArrayReader(audio), plan, "reflect"))
    assert start == 0 and len(window) == 10_000
    np.testing.assert_array_equal(window[2500:4999], audio[::-1][1:2500])  # mirrored
    [(_, own)] = list(iter_windows(ArrayReader(audio), plan, "none"))
    assert len(own) == 3000  # whole frames only


def test_pad_to_repeats_reflection_for_a_very_short_segment():
    out = pad_to(np.array([0.0, 1.0]), 6, "reflect")
    np.testing.assert_array_equal(out, [0, 1, 0, 1, 0, 1])


def test_overlap_add_averages_where_windows_overlap():
    merged = OverlapAdd(n_frames=6, n_classes=2)
    merged.add(0, np.full((4, 2), 1.0))
    merged.add(2, np.full((4, 2), 0.0))
    np.testing.assert_allclose(merged.result()[:, 0], [1, 1, 0.5, 0.5, 0, 0])


def test_streamed_reading_equals_reading_the_whole_file(tmp_path):
    rng = np.random.default_rng(1)
    stereo = 0.3 * rng.standard_normal((44100 * 7 + 123, 2)).astype(np.float32)
    path = tmp_path / "x.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    whole = load_audio(path, sample_rate=16000)
    reader = AudioReader(path, 16000, block_seconds=1.3)  # many blocks
    parts = []
    while chunk := reader.read(5000).tolist():
        parts.extend(chunk)
    streamed = np.array(parts, dtype=np.float32)
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    # soxr's streaming and one-shot resampling agree up to float rounding
    np.testing.assert_allclose(streamed[:n], whole[:n], atol=1e-5)


def test_streamed_reading_names_the_file_and_time_of_a_nan(tmp_path):
    audio = np.zeros(16000 * 5, dtype=np.float32)
    audio[16000 * 3 + 10] = np.nan
    path = tmp_path / "bad.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    reader = AudioReader(path, 16000, block_seconds=1.0)
    with pytest.raises(AudioError, match=r"bad\.wav.*NaN.*3\.00 s"):
        while len(reader.read(4000)):
            pass
