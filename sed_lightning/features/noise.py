"""Noise for training-time augmentation: coloured noise and excerpts of recordings, as
batched torch tensors (:class:`~.augment.NoiseOverlay` mixes them into clips).
"""

from __future__ import annotations

import torch

__all__ = ["EPS", "coloured_noise", "random_crop", "rms"]

#: Floor of an RMS that divides (silent clips and noises stay finite).
EPS = 1e-12


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last axis.

    Shape:
        ``(..., n_samples)`` -> ``(...)``.

    >>> rms(torch.tensor([[3.0, -3.0], [0.0, 0.0]]))
    tensor([3., 0.])
    """
    return x.square().mean(dim=-1).sqrt()


def coloured_noise(
    beta: torch.Tensor, n_samples: int, sample_rate: int = 16000, f_floor: float = 20.0
) -> torch.Tensor:
    """Gaussian noise with power spectrum ``1 / f**beta``, unit RMS, one clip per ``beta``.

    ``beta`` = 0 white, 1 pink, 2 brown. White noise is shaped in the FFT domain (as in
    :func:`~sed_lightning.data.procedural.generate_background`, but batched in torch);
    frequencies below ``f_floor`` Hz get the gain of ``f_floor`` and DC is removed.

    Shape:
        beta: ``(n_clips,)`` -> ``(n_clips, n_samples)`` on ``beta``'s device.

    >>> noise = coloured_noise(torch.tensor([0.0, 1.0, 2.0]), 16000)
    >>> noise.shape, torch.allclose(rms(noise), torch.ones(3))
    (torch.Size([3, 16000]), True)
    """
    device = beta.device
    white = torch.randn(beta.shape[0], n_samples, device=device)
    freqs = torch.fft.rfftfreq(n_samples, d=1.0 / sample_rate, device=device)
    gain = freqs.clamp_min(f_floor)[None, :] ** (-beta[:, None] / 2)
    gain[:, 0] = 0.0
    noise = torch.fft.irfft(torch.fft.rfft(white) * gain, n=n_samples)
    return noise / rms(noise).clamp_min(EPS)[:, None]


def random_crop(noise: torch.Tensor, n_samples: int) -> torch.Tensor:
    """A random ``n_samples`` excerpt; a shorter ``noise`` is tiled from a random start.

    Shape:
        ``(length,)`` -> ``(n_samples,)``.

    >>> random_crop(torch.tensor([1.0, 2.0]), 5).tolist() in ([1, 2, 1, 2, 1], [2, 1, 2, 1, 2])
    True
    """
    length = noise.shape[0]
    high = length - n_samples + 1 if length >= n_samples else length
    start = int(torch.randint(high, ()))
    return noise[(start + torch.arange(n_samples)) % length]
