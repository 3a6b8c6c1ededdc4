"""Log-mel front end: waveform -> normalized log-mel spectrogram."""

from __future__ import annotations

import torch
from torch import nn
from torchaudio.transforms import AmplitudeToDB, MelSpectrogram


class LogMelFrontend(nn.Module):
    """Waveform to log-mel features with per-frequency (per-clip) normalization.

    Each mel bin is standardized over time within each clip, so the features do not
    depend on the recording level nor on the other clips in the batch.

    Args:
        sample_rate: input sample rate (Hz).
        n_fft: FFT size (samples); also the window length.
        hop_length: hop between frames (samples).
        n_mels: number of mel bands.
        f_min: lowest mel frequency (Hz).
        f_max: highest mel frequency (Hz); ``None`` means Nyquist.
        top_db: dynamic range kept below each clip's maximum (dB).
        eps: added to the standard deviation in the normalization.

    Shape:
        - input: ``(batch, n_samples)``
        - output: ``(batch, n_mels, n_samples // hop_length + 1)``

    Example:
        >>> frontend = LogMelFrontend(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
        >>> frontend(torch.randn(2, 16000)).shape
        torch.Size([2, 64, 63])
    """

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
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.eps = eps
        self.mel = MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            power=2.0,
        )
        self.to_db = AmplitudeToDB(stype="power", top_db=top_db)

    def n_frames(self, n_samples: int) -> int:
        """Number of feature frames for ``n_samples`` input samples (centered STFT)."""
        return n_samples // self.hop_length + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        # The STFT runs in float32 even under autocast: its power spans many decades.
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            mel = self.mel(waveform.float())
            # (B, 1, F, T): AmplitudeToDB applies its top_db floor per leading item, so a
            # clip's features never depend on the loudest clip of its batch.
            log_mel = self.to_db(mel.unsqueeze(1)).squeeze(1)
            mean = log_mel.mean(dim=-1, keepdim=True)
            std = log_mel.std(dim=-1, keepdim=True)
            return (log_mel - mean) / (std + self.eps)
