"""The front end EfficientAT's AudioSet models were trained with (32 kHz, 128 Kaldi-scale
mel bands, 10 ms hop), reproduced from the weights' README so that their features, and so
their known-answer logits, come out the same."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sed_lightning.features.base import FrontEnd


def kaldi_mel(freq: torch.Tensor) -> torch.Tensor:
    """Kaldi's mel scale ``1127 * ln(1 + f / 700)``.

    >>> round(float(kaldi_mel(torch.tensor(1000.0))))
    1000
    """
    return 1127.0 * torch.log1p(freq / 700.0)


def kaldi_mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float
) -> torch.Tensor:
    """Kaldi's triangular mel filters: edges equally spaced in mel between ``f_min`` and
    ``f_max``, each triangle linear *in mel*, evaluated at the first ``n_fft // 2`` FFT bin
    frequencies; the Nyquist bin gets weight 0 (as in Kaldi and EfficientAT).

    Written out rather than imported: the only maintained implementation is in torchaudio,
    which this project does not use (end of life); librosa's triangles are linear in Hz.

    Shape:
        output: ``(n_fft // 2 + 1, n_mels)``

    >>> fb = kaldi_mel_filterbank(32000, 1024, 128, 0.0, 15000.0)
    >>> fb.shape, float(fb[-1].abs().sum()), bool(fb.max() <= 1)
    (torch.Size([513, 128]), 0.0, True)
    """
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= {sample_rate / 2}, got {f_min}, {f_max}")
    bins = torch.arange(n_fft // 2, dtype=torch.float64) * sample_rate / n_fft
    mel = kaldi_mel(bins).unsqueeze(1)  # (n_bins, 1)
    lo, hi = (float(kaldi_mel(torch.tensor(f, dtype=torch.float64))) for f in (f_min, f_max))
    delta = (hi - lo) / (n_mels + 1)
    left = lo + delta * torch.arange(n_mels, dtype=torch.float64)
    centre, right = left + delta, left + 2 * delta
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0).float()
    return F.pad(banks, (0, 0, 0, 1))  # the Nyquist bin: weight 0


class EfficientATFrontend(FrontEnd):
    """Waveform at 32 kHz -> EfficientAT's log-mel features.

    Pre-emphasis ``x[n] - 0.97 x[n-1]`` (one sample shorter), power STFT (``n_fft`` 1024, a
    symmetric Hann window of ``win_length`` 800 centred in it, hop 320, centred, reflect
    padding), Kaldi mel filters from 0 to 15 kHz, ``(log(mel + 1e-5) + 4.5) / 5``. No
    per-clip normalization: the pretrained network saw these absolute values.

    Args:
        sample_rate: input rate; the pretrained weights need 32000.
        n_fft, win_length, hop_length, n_mels, f_min, f_max: as above.
        preemphasis: the pre-emphasis coefficient.

    Shape:
        - input: ``(batch, n_samples)``
        - output: ``(batch, n_mels, (n_samples - 1) // hop_length + 1)``

    Example:
        >>> frontend = EfficientATFrontend()
        >>> frontend(torch.randn(2, 32000)).shape, frontend.n_frames(32000)
        (torch.Size([2, 128, 100]), 100)
    """

    image_label = "mel band"

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        win_length: int = 800,
        hop_length: int = 320,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float = 15000.0,
        preemphasis: float = 0.97,
    ) -> None:
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} > n_fft {n_fft}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = self.n_features = n_mels
        self.preemphasis = preemphasis
        window = torch.hann_window(win_length, periodic=False)
        pad = (n_fft - win_length) // 2  # torch.stft centres a shorter window the same way
        self.register_buffer(
            "window", F.pad(window, (pad, n_fft - win_length - pad)), persistent=False
        )
        self.register_buffer(
            "filterbank",
            kaldi_mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max),
            persistent=False,
        )

    def n_frames(self, n_samples: int) -> int:
        return (n_samples - 1) // self.hop_length + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        # float32 even under autocast: the power spans many decades
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            x = waveform.float()
            x = x[..., 1:] - self.preemphasis * x[..., :-1]
            spec = torch.stft(
                x,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=self.window,
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )
            power = spec.real.square() + spec.imag.square()
            mel = torch.matmul(power.transpose(-1, -2), self.filterbank).transpose(-1, -2)
            return (torch.log(mel + 1e-5) + 4.5) / 5.0
