"""Variation at synthesis time. Per event: gain, pitch shift, time stretch, EQ, reverb
(:class:`EventVariation`). Per clip, of its background: playback rate, EQ, reversal and a
generated ambience under a recorded one (:class:`BackgroundVariation`).

Each transform is switched on by a probability and drawn per event. The draw
(:meth:`EventVariation.draw`) and the rendering (:func:`apply_variation`) are separate:
the draw returns plain numbers (JSON-safe) that go into the clip's recipe, and rendering
from those numbers is deterministic, so a clip re-renders bit for bit from its recipe.

    >>> import numpy as np
    >>> var = EventVariation(pitch_p=1.0, pitch_semitones=(2.0, 2.0))
    >>> params = var.draw(np.random.default_rng(0))
    >>> params["pitch_semitones"]
    2.0
    >>> tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 16000).astype(np.float32)
    >>> apply_variation(tone, params, 16000).shape
    (8000,)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.fft
import scipy.signal
import soxr

__all__ = [
    "BackgroundVariation",
    "EventVariation",
    "apply_background_variation",
    "apply_variation",
    "pitch_shift",
    "reverberate",
    "time_stretch",
]

_N_FFT = 512
_HOP = 128
_TAIL_FADE = 0.01  # seconds of fade where a reverberated event is cut back to its length


@dataclass
class EventVariation:
    """Per-event variation, each part applied with its probability (0 = off).

    Attributes
    ----------
    gain_p, gain_db
        Extra gain (dB, uniform in the range) on top of the event's EBR, so events of one
        clip need not share a level.
    pitch_p, pitch_semitones
        Pitch shift in semitones (duration kept): phase-vocoder stretch, then resampling.
    stretch_p, stretch_rate
        Time stretch (pitch kept): rate > 1 shortens the event.
    eq_p, eq_bands, eq_db
        A random equaliser curve (FilterAugment-style, on the waveform): ``eq_bands``
        (low, high) random band edges on a log-frequency axis, each band point's gain
        uniform in ``eq_db``, linear in dB between the points.
    reverb_p, reverb_rt60, reverb_wet
        A simple room: exponentially decaying noise impulse response with reverberation
        time ``rt60`` seconds, mixed ``wet`` (0..1) with the dry event; the event keeps
        its length (the tail is cut with a short fade) so its labels are unchanged.
    """

    gain_p: float = 0.0
    gain_db: tuple[float, float] = (-3.0, 3.0)
    pitch_p: float = 0.0
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    stretch_p: float = 0.0
    stretch_rate: tuple[float, float] = (0.8, 1.25)
    eq_p: float = 0.0
    eq_bands: tuple[int, int] = (3, 6)
    eq_db: tuple[float, float] = (-6.0, 6.0)
    reverb_p: float = 0.0
    reverb_rt60: tuple[float, float] = (0.2, 0.8)
    reverb_wet: tuple[float, float] = (0.1, 0.5)

    #: each part's settings beside its probability ``<part>_p``
    PARTS: ClassVar[dict[str, tuple[str, ...]]] = {
        "gain": ("gain_db",),
        "pitch": ("pitch_semitones",),
        "stretch": ("stretch_rate",),
        "eq": ("eq_bands", "eq_db"),
        "reverb": ("reverb_rt60", "reverb_wet"),
    }

    def __post_init__(self) -> None:
        _check_parts(self, "variation", tuple(self.PARTS))
        ranges = ("gain_db", "pitch_semitones", "stretch_rate", "eq_db", "reverb_rt60")
        _check_ranges(self, "variation", ranges)
        self.eq_bands = (int(self.eq_bands[0]), int(self.eq_bands[1]))
        self.reverb_wet = (float(self.reverb_wet[0]), float(self.reverb_wet[1]))
        if self.stretch_rate[0] <= 0:
            raise ValueError(f"variation.stretch_rate must be positive, got {self.stretch_rate}")
        if not 1 <= self.eq_bands[0] <= self.eq_bands[1]:
            raise ValueError(f"variation.eq_bands must be 1 <= low <= high, got {self.eq_bands}")

    @property
    def active(self) -> bool:
        """Whether any part can apply (if not, :meth:`draw` uses no randomness)."""
        return any(getattr(self, f"{n}_p") > 0 for n in self.PARTS)

    def content(self) -> dict[str, Any]:
        """The fields as they shape :meth:`draw`: a part that never applies (``p`` = 0)
        draws nothing, so its settings are given at their defaults. A cached set (e.g. a
        fixed evaluation set, all ``p`` = 0) is then not made again when only the ranges
        of parts it does not use change (a sweep over the training sets' pitch range).

        >>> EventVariation(pitch_semitones=(-4.0, 4.0)).content() == EventVariation().content()
        True
        >>> on = EventVariation(pitch_p=0.5, pitch_semitones=(-4.0, 4.0))
        >>> on.content() == EventVariation(pitch_p=0.5).content()
        False
        """
        content = asdict(self)
        defaults = EventVariation()
        for part, settings in self.PARTS.items():
            if getattr(self, f"{part}_p") == 0:
                content.update({name: getattr(defaults, name) for name in settings})
        return content

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw one event's variation: a JSON-safe dict of the parts that apply.

        Nothing is drawn when :attr:`active` is false (the generator is not advanced).
        """
        if not self.active:
            return {}
        params: dict[str, Any] = {}
        # Always draw the coin of every part, so switching one part on or off does not
        # change the other parts' draws.
        coins = rng.random(5)
        if coins[0] < self.gain_p:
            params["gain_db"] = float(rng.uniform(*self.gain_db))
        if coins[1] < self.pitch_p:
            params["pitch_semitones"] = float(rng.uniform(*self.pitch_semitones))
        if coins[2] < self.stretch_p:
            low, high = np.log(self.stretch_rate)
            params["stretch_rate"] = float(np.exp(rng.uniform(low, high)))
        if coins[3] < self.eq_p:
            n = int(rng.integers(self.eq_bands[0], self.eq_bands[1] + 1))
            params["eq_edges"] = sorted(float(e) for e in rng.uniform(0.0, 1.0, n - 1))
            params["eq_gains_db"] = [float(g) for g in rng.uniform(*self.eq_db, n)]
        if coins[4] < self.reverb_p:
            params["reverb_rt60"] = float(rng.uniform(*self.reverb_rt60))
            params["reverb_wet"] = float(rng.uniform(*self.reverb_wet))
            params["reverb_seed"] = int(rng.integers(2**31))
        return params


def _check_parts(spec: Any, prefix: str, parts: tuple[str, ...]) -> None:
    """Each ``<part>_p`` of ``spec`` a float in [0, 1] (the error names ``prefix.<part>_p``)."""
    for name in parts:
        p = float(getattr(spec, f"{name}_p"))
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{prefix}.{name}_p must be in [0, 1], got {p}")
        setattr(spec, f"{name}_p", p)


def _check_ranges(spec: Any, prefix: str, names: tuple[str, ...]) -> None:
    """Each named field of ``spec`` a ``(low, high)`` float pair with low <= high."""
    for name in names:
        low, high = (float(v) for v in getattr(spec, name))
        if low > high:
            raise ValueError(f"{prefix}.{name} must be (low, high), got {(low, high)}")
        setattr(spec, name, (low, high))


def apply_variation(audio: np.ndarray, params: dict[str, Any], sample_rate: int) -> np.ndarray:
    """Render a drawn variation (no randomness: the reverb's noise comes from its seed).

    The gain is not applied here: it is a level, applied by the mixer with the EBR.

    Shape:
        audio: ``(n,)``; returns ``(n,)``, or ``(round(n / stretch_rate),)`` when stretched.
    """
    out = np.asarray(audio, dtype=np.float32)
    if "stretch_rate" in params:
        out = time_stretch(out, params["stretch_rate"])
    if "pitch_semitones" in params:
        out = pitch_shift(out, params["pitch_semitones"])
    if "eq_gains_db" in params:
        out = equalise(out, params["eq_edges"], params["eq_gains_db"], sample_rate)
    if "reverb_rt60" in params:
        out = reverberate(
            out, params["reverb_rt60"], params["reverb_wet"], params["reverb_seed"], sample_rate
        )
    return out.astype(np.float32)


@dataclass
class BackgroundVariation:
    """Per-clip variation of the background, each part applied with its probability (0 = off).

    A detector trained over a few recordings learns their textures as "background" and
    takes an unseen recording's for events; each part makes the few recordings many.

    Attributes
    ----------
    rate_p, rate
        Playback rate (speed and pitch together, by resampling with soxr): 1.3 plays the
        recording 30 % faster and higher. Drawn on a log scale.
    eq_p, eq_bands, eq_db
        A random equaliser curve, as :class:`EventVariation`'s.
    reverse_p
        The piece played backwards.
    mix_p, mix_db
        A recorded background gets the generated background of the clip (its procedural
        stream) mixed under it, ``mix_db`` (uniform) relative to the recording's level.
        Not applied to generated backgrounds.

    The varied background keeps the unvaried one's RMS, so EBRs keep their meaning.

        >>> var = BackgroundVariation(rate_p=1.0, rate=(1.25, 1.25), reverse_p=1.0)
        >>> var.draw(np.random.default_rng(0), recorded=True)
        {'rate': 1.25, 'reverse': True}
    """

    rate_p: float = 0.0
    rate: tuple[float, float] = (0.7, 1.4)
    eq_p: float = 0.0
    eq_bands: tuple[int, int] = (3, 6)
    eq_db: tuple[float, float] = (-9.0, 9.0)
    reverse_p: float = 0.0
    mix_p: float = 0.0
    mix_db: tuple[float, float] = (-12.0, 0.0)

    def __post_init__(self) -> None:
        _check_parts(self, "background_variation", ("rate", "eq", "reverse", "mix"))
        _check_ranges(self, "background_variation", ("rate", "eq_db", "mix_db"))
        self.eq_bands = (int(self.eq_bands[0]), int(self.eq_bands[1]))
        if self.rate[0] <= 0:
            raise ValueError(f"background_variation.rate must be positive, got {self.rate}")
        if not 1 <= self.eq_bands[0] <= self.eq_bands[1]:
            raise ValueError(
                f"background_variation.eq_bands must be 1 <= low <= high, got {self.eq_bands}"
            )

    @property
    def active(self) -> bool:
        """Whether any part can apply (if not, :meth:`draw` uses no randomness)."""
        return any(getattr(self, f"{n}_p") > 0 for n in ("rate", "eq", "reverse", "mix"))

    def draw(self, rng: np.random.Generator, recorded: bool) -> dict[str, Any]:
        """Draw one clip's background variation: a JSON-safe dict of the parts that apply
        (``mix_db`` only for a ``recorded`` background). Every part's coin and values are
        drawn whether it applies or not, so switching one part (or the background's kind)
        does not change the others' draws."""
        if not self.active:
            return {}
        coins = rng.random(4)
        rate = float(np.exp(rng.uniform(*np.log(self.rate))))
        n_bands = int(rng.integers(self.eq_bands[0], self.eq_bands[1] + 1))
        edges = rng.uniform(0.0, 1.0, self.eq_bands[1] - 1)[: n_bands - 1]
        gains = rng.uniform(*self.eq_db, self.eq_bands[1])[:n_bands]
        mix_db = float(rng.uniform(*self.mix_db))
        params: dict[str, Any] = {}
        if coins[0] < self.rate_p:
            params["rate"] = rate
        if coins[1] < self.eq_p:
            params["eq_edges"] = sorted(float(e) for e in edges)
            params["eq_gains_db"] = [float(g) for g in gains]
        if coins[2] < self.reverse_p:
            params["reverse"] = True
        if recorded and coins[3] < self.mix_p:
            params["mix_db"] = mix_db
        return params


def apply_background_variation(
    piece: Callable[[int], np.ndarray],
    params: dict[str, Any],
    n_samples: int,
    sample_rate: int,
    generated: Callable[[], np.ndarray] | None = None,
) -> np.ndarray:
    """Render a drawn background variation (no randomness).

    Args:
        piece: ``piece(n)`` -> the background's first ``n`` samples from the clip's offset
            (a playback rate ``r`` reads ``ceil(n · r)`` samples).
        params: from :meth:`BackgroundVariation.draw`.
        n_samples: the clip's length.
        sample_rate: Hz.
        generated: the clip's generated background (called only for ``mix_db``).

    Shape:
        returns ``(n_samples,)``, ``float32``, at the RMS of the first ``n_samples``
        samples read (the unvaried level).
    """
    rate = float(params.get("rate", 1.0))
    n_in = int(np.ceil(n_samples * rate)) if rate != 1.0 else n_samples
    audio = np.asarray(piece(n_in), dtype=np.float32)
    target = np.sqrt(np.mean(np.square(audio[:n_samples], dtype=np.float64)))
    if rate != 1.0:  # read as if recorded at rate x the sample rate: faster and higher
        audio = _fit(soxr.resample(audio, rate * sample_rate, sample_rate), n_samples)
    if "eq_gains_db" in params:
        audio = equalise(audio, params["eq_edges"], params["eq_gains_db"], sample_rate)
    if params.get("reverse"):
        audio = audio[::-1]
    out = audio.astype(np.float64)
    if "mix_db" in params and generated is not None:
        under = np.asarray(generated(), dtype=np.float64)[:n_samples]
        rms_under = np.sqrt(np.mean(np.square(under)))
        rms_out = np.sqrt(np.mean(np.square(out)))
        if rms_under > 0:
            out = out + under * (rms_out / rms_under) * 10 ** (params["mix_db"] / 20)
    rms = np.sqrt(np.mean(np.square(out)))
    if rms > 0:
        out *= target / rms
    return out.astype(np.float32)


def time_stretch(audio: np.ndarray, rate: float) -> np.ndarray:
    """Phase-vocoder time stretch: ``rate`` > 1 is faster (shorter), pitch unchanged.

    Written here (about 25 lines) rather than taken from librosa, which the package does
    not depend on at run time (it pulls in numba).

    Shape:
        ``(n,)`` -> ``(round(n / rate),)``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    n_out = max(1, int(round(len(audio) / rate)))
    if rate == 1.0 or len(audio) < _N_FFT:
        return _fit(scipy.signal.resample(audio, n_out) if rate != 1.0 else audio, n_out)
    window = scipy.signal.get_window("hann", _N_FFT)
    padded = np.pad(audio, _N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP] * window
    spec = scipy.fft.rfft(frames, axis=1)  # (T, F)
    steps = np.arange(0, spec.shape[0] - 1, rate)
    idx, frac = steps.astype(int), (steps - steps.astype(int))[:, None]
    mag = (1 - frac) * np.abs(spec[idx]) + frac * np.abs(spec[idx + 1])
    omega = 2 * np.pi * _HOP * np.arange(spec.shape[1]) / _N_FFT
    delta = np.angle(spec[idx + 1]) - np.angle(spec[idx]) - omega
    advance = omega + delta - 2 * np.pi * np.round(delta / (2 * np.pi))
    phase = np.angle(spec[0]) + np.concatenate(
        [np.zeros((1, spec.shape[1])), np.cumsum(advance[:-1], axis=0)]
    )
    frames_out = scipy.fft.irfft(mag * np.exp(1j * phase), n=_N_FFT, axis=1) * window
    length = _N_FFT + _HOP * (len(steps) - 1)
    where = np.arange(len(steps))[:, None] * _HOP + np.arange(_N_FFT)[None, :]
    signal = np.bincount(where.ravel(), frames_out.ravel(), minlength=length)
    norm = np.bincount(where.ravel(), np.broadcast_to(window**2, where.shape).ravel(), length)
    signal = signal / np.maximum(norm, 1e-3)
    return _fit(signal[_N_FFT // 2 :], n_out)


def pitch_shift(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch by ``semitones`` keeping the duration: stretch, then resample (soxr).

    Shape:
        ``(n,)`` -> ``(n,)``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    factor = 2.0 ** (semitones / 12.0)
    stretched = time_stretch(audio, 1.0 / factor)  # factor times longer, same pitch
    shifted = soxr.resample(stretched.astype(np.float32), factor * 1000.0, 1000.0)
    return _fit(shifted, len(audio))


def equalise(
    audio: np.ndarray, edges: list[float], gains_db: list[float], sample_rate: int
) -> np.ndarray:
    """Apply a gain curve over frequency: ``gains_db[k]`` at band point ``k``.

    Band points sit at 0, ``edges`` (fractions of the log-frequency axis from 50 Hz to
    Nyquist) and 1; the gain is linear in dB between them (FilterAugment's linear mode).

    Shape:
        ``(n,)`` -> ``(n,)``.
    """
    n = len(audio)
    nyquist = sample_rate / 2
    points = np.array([0.0, *edges, 1.0])
    centres = (points[:-1] + points[1:]) / 2
    log_f = np.log(50.0) + centres * (np.log(nyquist) - np.log(50.0))
    freqs = scipy.fft.rfftfreq(n, 1 / sample_rate)
    curve_db = np.interp(np.log(np.maximum(freqs, 1.0)), log_f, np.asarray(gains_db))
    spectrum = scipy.fft.rfft(audio.astype(np.float64)) * 10 ** (curve_db / 20)
    return scipy.fft.irfft(spectrum, n=n).astype(np.float32)


def reverberate(
    audio: np.ndarray, rt60: float, wet: float, seed: int, sample_rate: int
) -> np.ndarray:
    """Convolve with an exponentially decaying noise impulse response (a simple room).

    The wet signal is scaled to the dry one's RMS before mixing ``(1 - wet)·dry +
    wet·reverberant``; the output keeps the input's length, with a 10 ms fade at the cut.

    Shape:
        ``(n,)`` -> ``(n,)``.
    """
    n = len(audio)
    rng = np.random.default_rng(seed)
    ir_len = max(1, int(min(rt60, 1.5) * sample_rate))
    t = np.arange(ir_len) / sample_rate
    ir = rng.standard_normal(ir_len) * np.exp(-6.908 * t / rt60)  # -60 dB at rt60
    ir[0] = 1.0
    reverberant = scipy.signal.fftconvolve(audio.astype(np.float64), ir)[:n]
    dry_rms = np.sqrt(np.mean(np.square(audio, dtype=np.float64)))
    wet_rms = np.sqrt(np.mean(np.square(reverberant)))
    if wet_rms > 0:
        reverberant *= dry_rms / wet_rms
    out = (1 - wet) * audio + wet * reverberant
    n_fade = min(n // 2, int(_TAIL_FADE * sample_rate))
    if n_fade:
        out[n - n_fade :] *= np.linspace(1.0, 0.0, n_fade)
    return out.astype(np.float32)


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad to ``n`` samples."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) >= n:
        return audio[:n]
    return np.pad(audio, (0, n - len(audio)))
