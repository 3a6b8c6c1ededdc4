"""Log-mel front end: waveform -> normalized log-mel spectrogram on ``torch.stft``."""

from __future__ import annotations

import math

import torch

from sed_lightning.features.base import FrontEnd


def hz_to_mel(freq: float) -> float:
    """HTK mel scale: ``2595 * log10(1 + f / 700)``.

    >>> round(hz_to_mel(1000.0))  # the HTK scale puts 1 kHz near 1000 mel
    1000
    """
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular mel filters on the HTK scale, unnormalized (peak 1), in float32.

    ``n_mels + 2`` points equally spaced on the mel scale between ``f_min`` and ``f_max``
    (default: Nyquist) give each filter its left edge, peak and right edge; the weight of a
    linear-frequency bin is the triangle's height there. The bins are ``n_fft // 2 + 1``
    frequencies evenly spaced from 0 to ``sample_rate // 2``.

    These are the filters of the front end that earlier checkpoints were trained with, and
    the same triangles as ``librosa.filters.mel(htk=True, norm=None)`` (a test compares the
    two). Written out rather than taken from librosa: librosa computes in float64 and rounds
    differently, and the features of existing checkpoints stay bit-identical this way;
    importing librosa (numba) would also add seconds to every start.

    Shape:
        output: ``(n_fft // 2 + 1, n_mels)``

    >>> fb = mel_filterbank(16000, n_fft=512, n_mels=40)
    >>> fb.shape, bool(fb.max() <= 1), bool((fb.sum(dim=0) > 0).all())
    (torch.Size([257, 40]), True, True)
    """
    f_max = float(sample_rate // 2) if f_max is None else float(f_max)
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(
            f"mel band edges must satisfy 0 <= f_min < f_max <= sample_rate / 2, "
            f"got f_min={f_min}, f_max={f_max}, sample_rate={sample_rate}"
        )
    bin_freqs = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    mel_pts = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    hz_pts = 700.0 * (10.0 ** (mel_pts / 2595.0) - 1.0)
    widths = hz_pts[1:] - hz_pts[:-1]  # (n_mels + 1,)
    slopes = hz_pts.unsqueeze(0) - bin_freqs.unsqueeze(1)  # (n_bins, n_mels + 2)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def power_to_db(power: torch.Tensor, top_db: float | None = 80.0) -> torch.Tensor:
    """``10 * log10(max(power, 1e-10))``, floored ``top_db`` below each item's maximum.

    The floor is taken per item of the first axis, so one clip's features never depend on
    the loudest clip of its batch.

    Shape:
        ``(batch, ...)`` -> same.

    >>> power_to_db(torch.tensor([[1.0, 1e-3, 1e-12]]), top_db=20.0)
    tensor([[  0., -20., -20.]])
    """
    db = 10.0 * torch.log10(torch.clamp(power, min=1e-10))
    if top_db is None:
        return db
    peak = db.amax(dim=tuple(range(1, db.dim())), keepdim=True)
    return torch.maximum(db, peak - top_db)


class LogMelFrontend(FrontEnd):
    """Waveform to log-mel features with per-frequency (per-clip) normalization.

    Power spectrogram (centered ``torch.stft``, periodic Hann window, reflect padding) ->
    HTK mel filterbank -> dB with a ``top_db`` floor per clip -> each mel bin standardized
    over time within each clip, so the features do not depend on the recording level nor
    on the other clips in the batch.

    Args:
        sample_rate: input sample rate (Hz).
        n_fft: FFT size (samples); also the window length.
        hop_length: hop between frames (samples).
        n_mels: number of mel bands.
        f_min: lowest mel frequency (Hz).
        f_max: highest mel frequency (Hz); ``None`` means Nyquist.
        top_db: dynamic range kept below each clip's maximum (dB).
        eps: added to the standard deviation in the normalization.

    The window and filterbank are derived from these settings and are not saved in
    checkpoints.

    Shape:
        - input: ``(batch, n_samples)``
        - output: ``(batch, n_mels, n_samples // hop_length + 1)``

    Example:
        >>> frontend = LogMelFrontend(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
        >>> frontend(torch.randn(2, 16000)).shape
        torch.Size([2, 64, 63])
    """

    image_label = "mel band"

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        top_db: float = 80.0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.n_features = n_mels
        self.top_db = top_db
        self.eps = eps
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer(
            "filterbank", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max), persistent=False
        )

    def n_frames(self, n_samples: int) -> int:
        """Number of feature frames for ``n_samples`` input samples (centered STFT)."""
        return n_samples // self.hop_length + 1

    @torch.no_grad()
    def image(self, waveform: torch.Tensor) -> torch.Tensor:
        """The log-mel in dB, before the per-clip standardization (plots)."""
        return self.log_mel(waveform.float())

    def power_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """``|STFT|^2``. Shape: ``(batch, n_samples)`` -> ``(batch, n_fft // 2 + 1, n_frames)``."""
        spec = torch.stft(
            waveform,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return spec.abs().pow(2.0)

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """Un-normalized log-mel (dB). Shape: ``(batch, n_samples)`` -> ``(batch, n_mels, n_frames)``."""
        mel = torch.matmul(self.power_spectrogram(waveform).transpose(-1, -2), self.filterbank)
        return power_to_db(mel.transpose(-1, -2), self.top_db)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        # The STFT runs in float32 even under autocast: its power spans many decades.
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            log_mel = self.log_mel(waveform.float())
            mean = log_mel.mean(dim=-1, keepdim=True)
            std = log_mel.std(dim=-1, keepdim=True)
            return (log_mel - mean) / (std + self.eps)
