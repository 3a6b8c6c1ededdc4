"""Event- and background-level variation: known answers on tones and impulses."""

from __future__ import annotations

import numpy as np
import pytest

from sed_lightning.data.variation import (
    BackgroundVariation,
    EventVariation,
    apply_background_variation,
    apply_variation,
    equalise,
    pitch_shift,
    reverberate,
    time_stretch,
)

SR = 16000


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[np.argmax(spectrum)])


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_changes_length_not_pitch(rate):
    out = time_stretch(_tone(440.0), rate)
    assert len(out) == round(SR / rate)
    assert abs(_peak_hz(out[1000:-1000]) - 440.0) < 5.0
    # no silent holes: the level stays near the input's in the middle
    rms = np.sqrt(np.mean(out[2000:-2000] ** 2))
    assert 0.5 < rms / np.sqrt(0.5) < 1.3


@pytest.mark.parametrize("semitones", [-2.0, 3.0])
def test_pitch_shift_moves_the_tone_keeps_the_length(semitones):
    out = pitch_shift(_tone(440.0), semitones)
    assert len(out) == SR
    expected = 440.0 * 2 ** (semitones / 12)
    assert abs(_peak_hz(out[1000:-1000]) - expected) < 6.0


def test_equaliser_applies_the_band_gains():
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    # two points: -12 dB in the low half of the log-frequency axis, +6 dB in the high half
    out = equalise(noise, [0.5], [-12.0, 6.0], SR)
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    gain = np.abs(np.fft.rfft(out)) / np.abs(np.fft.rfft(noise))
    low, high = (freqs > 60) & (freqs < 100), (freqs > 6000) & (freqs < 7800)
    np.testing.assert_allclose(20 * np.log10(np.median(gain[low])), -12.0, atol=0.5)
    np.testing.assert_allclose(20 * np.log10(np.median(gain[high])), 6.0, atol=0.5)


def test_reverb_adds_a_decaying_tail_and_keeps_length():
    click = np.zeros(SR, dtype=np.float32)
    click[100] = 1.0
    out = reverberate(click, rt60=0.5, wet=0.5, seed=3, sample_rate=SR)
    assert out.shape == click.shape
    early = np.sqrt(np.mean(out[200:1800] ** 2))
    late = np.sqrt(np.mean(out[6000:7600] ** 2))
    assert early > 0 and late > 0
    # 60 dB per rt60: the window centres are 0.3625 s apart, so ~43.5 dB
    assert abs(20 * np.log10(early / late) - 60 * 0.3625 / 0.5) < 4
    np.testing.assert_array_equal(out, reverberate(click, 0.5, 0.5, 3, SR))  # seeded


def test_draw_is_json_safe_and_rendering_deterministic():
    var = EventVariation(gain_p=1, pitch_p=1, stretch_p=1, eq_p=1, reverb_p=1)
    params = var.draw(np.random.default_rng(1))
    assert set(params) >= {"gain_db", "pitch_semitones", "stretch_rate", "eq_gains_db"}
    assert all(isinstance(v, (int, float, list)) for v in params.values())
    tone = _tone(300.0, 0.5)
    a, b = apply_variation(tone, params, SR), apply_variation(tone, params, SR)
    np.testing.assert_array_equal(a, b)
    assert len(a) == round(len(tone) / params["stretch_rate"])


def test_variation_off_draws_nothing_and_probabilities_are_checked():
    rng = np.random.default_rng(0)
    assert EventVariation().draw(rng) == {}
    assert rng.random() == np.random.default_rng(0).random()  # generator not advanced
    with pytest.raises(ValueError, match="pitch_p"):
        EventVariation(pitch_p=1.5)
    with pytest.raises(ValueError, match="stretch_rate"):
        EventVariation(stretch_rate=(1.2, 0.9))


def test_each_part_applies_with_its_probability():
    var = EventVariation(pitch_p=0.3, reverb_p=0.7)
    draws = [var.draw(np.random.default_rng(i)) for i in range(2000)]
    assert abs(np.mean(["pitch_semitones" in d for d in draws]) - 0.3) < 0.04
    assert abs(np.mean(["reverb_rt60" in d for d in draws]) - 0.7) < 0.04
    assert not any("stretch_rate" in d for d in draws)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_background_playback_rate_moves_the_pitch_and_keeps_length_and_level():
    reads = []

    def piece(n):  # a 1 kHz tone read from the clip's offset
        reads.append(n)
        return 0.3 * _tone(1000.0, n / SR)

    out = apply_background_variation(piece, {"rate": 1.25}, SR, SR)
    assert reads == [int(np.ceil(1.25 * SR))]  # 25 % more of the recording read
    assert out.shape == (SR,) and out.dtype == np.float32
    assert abs(_peak_hz(out) - 1250.0) < 10  # faster and higher
    assert _rms(out) == pytest.approx(_rms(0.3 * _tone(1000.0)), rel=1e-3)
    slow = apply_background_variation(piece, {"rate": 0.8}, SR, SR)
    assert abs(_peak_hz(slow) - 800.0) < 10


def test_background_reversal_eq_and_generated_ambience_under_a_recording():
    tone = 0.2 * _tone(1000.0)
    ramp = tone * np.linspace(0.0, 1.0, SR, dtype=np.float32)
    reversed_ = apply_background_variation(lambda n: ramp[:n], {"reverse": True}, SR, SR)
    np.testing.assert_allclose(reversed_, ramp[::-1], atol=1e-6)
    # mixed at 0 dB: the generated 3 kHz tone under the recorded 1 kHz one, equal levels,
    # the sum brought back to the recording's level
    mixed = apply_background_variation(
        lambda n: tone[:n], {"mix_db": 0.0}, SR, SR, generated=lambda: 5 * _tone(3000.0)
    )
    spectrum = np.abs(np.fft.rfft(mixed))
    assert spectrum[3000] == pytest.approx(spectrum[1000], rel=1e-3)  # 1 Hz bins
    assert _rms(mixed) == pytest.approx(_rms(tone), rel=1e-6)
    quieter = apply_background_variation(
        lambda n: tone[:n], {"mix_db": -20.0}, SR, SR, generated=lambda: _tone(3000.0)
    )
    spectrum = np.abs(np.fft.rfft(quieter))
    assert spectrum[3000] / spectrum[1000] == pytest.approx(0.1, rel=1e-3)
    eq = {"eq_edges": [0.5], "eq_gains_db": [-12.0, -12.0]}  # -12 dB everywhere
    flat = apply_background_variation(lambda n: tone[:n], eq, SR, SR)
    np.testing.assert_allclose(flat, tone, atol=1e-4)  # same shape, level restored


def test_background_draw_parts_are_independent_and_mix_is_for_recordings():
    assert BackgroundVariation().draw(np.random.default_rng(0), recorded=True) == {}
    rng = np.random.default_rng(0)
    BackgroundVariation().draw(rng, recorded=True)
    assert rng.random() == np.random.default_rng(0).random()  # off: the stream untouched
    full = BackgroundVariation(rate_p=1, eq_p=1, reverse_p=1, mix_p=1)
    drawn = full.draw(np.random.default_rng(3), recorded=True)
    assert set(drawn) == {"rate", "eq_edges", "eq_gains_db", "reverse", "mix_db"}
    assert 0.7 <= drawn["rate"] <= 1.4 and -12.0 <= drawn["mix_db"] <= 0.0
    generated = full.draw(np.random.default_rng(3), recorded=False)
    assert "mix_db" not in generated and generated["rate"] == drawn["rate"]
    no_rate = BackgroundVariation(eq_p=1, reverse_p=1, mix_p=1).draw(
        np.random.default_rng(3), recorded=True
    )
    assert no_rate["eq_gains_db"] == drawn["eq_gains_db"]  # switching rate off changes nothing else
    with pytest.raises(ValueError, match="background_variation.mix_p"):
        BackgroundVariation(mix_p=1.5)
    with pytest.raises(ValueError, match="rate must be positive"):
        BackgroundVariation(rate=(0.0, 1.0))
