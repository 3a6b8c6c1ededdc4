"""Per-channel energy normalization (PCEN) front end: waveform -> PCEN mel features.

PCEN (Wang et al., ICASSP 2017; Lostanlen et al., IEEE SPL 2019) replaces the log of a
mel spectrogram by an automatic gain control and a root compression::

    M[t] = (1 - b) M[t - 1] + b E[t]                 (a smoother over time, per band)
    PCEN[t] = (E[t] / (eps + M[t]) ** gain + bias) ** power - bias ** power

so each band is divided by its own recent level: a stationary background (a running tap,
wind, a fan) is flattened whatever its spectrum, and onsets stand out. Lostanlen et al. found
it made bird-call detection hold across recording sites it had not heard; here it is the
switch ``features=pcen`` against the log-mel front end.

Parameters follow ``librosa.pcen``'s defaults (gain 0.98, bias 2, power 0.5, time constant
0.4 s, eps 1e-6) on a magnitude mel spectrogram scaled by 2**31, as librosa recommends for
audio in [-1, 1]. Written here rather than calling librosa: the smoother runs as a
convolution in torch (on the batch's device) and librosa would add numba at run time.

    >>> import torch
    >>> frontend = PCENFrontend(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
    >>> frontend(torch.randn(2, 16000)).shape
    torch.Size([2, 64, 63])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sed_lightning.features.frontend import LogMelFrontend

__all__ = ["PCENFrontend", "smoothing_coefficient"]

#: librosa's scaling of float audio in [-1, 1] before PCEN
INPUT_SCALE = 2.0**31


def smoothing_coefficient(time_constant: float, sample_rate: int, hop_length: int) -> float:
    """The smoother's ``b`` for a time constant in seconds (librosa's formula).

    >>> round(smoothing_coefficient(0.4, 16000, 256), 4)
    0.0392
    """
    t_frames = time_constant * sample_rate / hop_length
    return (math.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)


class PCENFrontend(LogMelFrontend):
    """Waveform to PCEN mel features, each band then standardized over the clip (as the
    log-mel front end's).

    Args:
        sample_rate, n_fft, hop_length, n_mels, f_min, f_max, eps: as
            :class:`~sed_lightning.features.frontend.LogMelFrontend` (``eps`` of the
            standardization).
        time_constant: seconds of the smoother.
        gain, bias, power: PCEN's ``alpha``, ``delta``, ``r``.
        pcen_eps: PCEN's ``eps`` (keeps the gain finite in silence).
        standardize: each band standardized over time within the clip (``False``: raw
            PCEN).

    The smoother is a causal convolution with the filter's impulse response cut where it
    falls under 1e-3 of its peak (and renormalized to sum 1); the first frame stands for
    the time before the clip (librosa starts the filter in that steady state too).

    Shape:
        - input: ``(batch, n_samples)``
        - output: ``(batch, n_mels, n_samples // hop_length + 1)``
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        eps: float = 1e-5,
        time_constant: float = 0.4,
        gain: float = 0.98,
        bias: float = 2.0,
        power: float = 0.5,
        pcen_eps: float = 1e-6,
        standardize: bool = True,
    ) -> None:
        super().__init__(sample_rate, n_fft, hop_length, n_mels, f_min, f_max, eps=eps)
        if time_constant <= 0 or power <= 0 or bias < 0 or not 0 <= gain <= 1:
            raise ValueError(
                "PCEN needs time_constant > 0, power > 0, bias >= 0 and 0 <= gain <= 1, got "
                f"{time_constant=}, {power=}, {bias=}, {gain=}"
            )
        self.gain, self.bias, self.power, self.pcen_eps = gain, bias, power, pcen_eps
        self.standardize = standardize
        b = smoothing_coefficient(time_constant, sample_rate, hop_length)
        length = max(1, math.ceil(math.log(1e-3) / math.log(1 - b)))
        taps = b * (1 - b) ** torch.arange(length, dtype=torch.float64)
        # flipped for conv1d (a correlation): the newest frame meets the largest tap
        kernel = (taps / taps.sum()).flip(0).to(torch.float32).view(1, 1, -1)
        self.register_buffer("smoother", kernel, persistent=False)

    def mel_magnitude(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mel filterbank over the STFT magnitude, scaled by :data:`INPUT_SCALE`.

        Shape: ``(batch, n_samples)`` -> ``(batch, n_mels, n_frames)``."""
        magnitude = self.power_spectrogram(waveform).sqrt()
        mel = torch.matmul(magnitude.transpose(-1, -2), self.filterbank).transpose(-1, -2)
        return mel * INPUT_SCALE

    def smooth(self, energy: torch.Tensor) -> torch.Tensor:
        """``M``: the smoother run over time, per band. Shape: ``(batch, bands, frames)``."""
        batch, bands, frames = energy.shape
        flat = energy.reshape(batch * bands, 1, frames)
        padded = F.pad(flat, (self.smoother.shape[-1] - 1, 0), mode="replicate")
        return F.conv1d(padded, self.smoother).reshape(batch, bands, frames)

    def pcen(self, waveform: torch.Tensor) -> torch.Tensor:
        """Raw PCEN. Shape: ``(batch, n_samples)`` -> ``(batch, n_mels, n_frames)``."""
        energy = self.mel_magnitude(waveform.float())
        smooth = self.smooth(energy)
        gained = energy * torch.exp(-self.gain * torch.log(self.pcen_eps + smooth))
        return (gained + self.bias) ** self.power - self.bias**self.power

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            features = self.pcen(waveform.float())
            if not self.standardize:
                return features
            mean = features.mean(dim=-1, keepdim=True)
            std = features.std(dim=-1, keepdim=True)
            return (features - mean) / (std + self.eps)
