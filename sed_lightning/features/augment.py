"""Training-time augmentation: waveform parts on the batch, SpecAugment on the features.

:class:`Augmentation` chains four switchable parts (``None`` = off), in this order:

1. :class:`NoiseOverlay` - a background mixed into weak-only clips (the seed method).
2. :class:`TimeShift` - audio and strong labels rolled together by whole label frames.
3. :class:`Mixup` - clips mixed with clips of the same kind (strong / weak-only / unlabeled).
4. :class:`SpecAugment` - time and frequency masks on the front end's features.

Every ``p`` is a per-clip probability. All randomness comes from torch's global generators,
which :class:`~sed_lightning.training.reproducibility.ReproducibleRNG` reseeds per batch.
Input batches are never modified: each part returns a new :class:`SEDBatch`. None of the
parts has parameters or buffers, so checkpoints are the same with or without augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from sed_lightning.data.audio import load_audio
from sed_lightning.data.batch import SEDBatch

__all__ = [
    "Augmentation",
    "Mixup",
    "NoiseOverlay",
    "SpecAugment",
    "TimeShift",
    "coloured_noise",
    "kind_masks",
    "rms",
]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
_EPS = 1e-12


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last axis.

    Shape:
        ``(..., n_samples)`` -> ``(...)``.

    >>> rms(torch.tensor([[3.0, -3.0], [0.0, 0.0]]))
    tensor([3., 0.])
    """
    return x.square().mean(dim=-1).sqrt()


def draw(p: float, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` independent Bernoulli(``p``) draws as a bool mask.

    Shape:
        returns ``(n,)``.
    """
    return torch.rand(n, device=device) < p


def uniform(low: float, high: float, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` draws uniform in ``[low, high)``. Shape: returns ``(n,)``."""
    return low + (high - low) * torch.rand(n, device=device)


def kind_masks(batch: SEDBatch) -> list[torch.Tensor]:
    """Masks of the strong, weak-only and unlabeled clips (they partition the batch).

    Shape:
        each ``(batch,)`` bool.
    """
    weak_only = batch.has_weak & ~batch.has_strong
    return [batch.has_strong, weak_only, ~batch.has_weak]


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
    return noise / rms(noise).clamp_min(_EPS)[:, None]


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


class NoiseOverlay(nn.Module):
    """Mixes a background into weak-only clips at a random event-to-background ratio.

    Each weak-only clip (``has_weak & ~has_strong``) is augmented with probability ``p``
    (per clip): ``clip + g * noise`` with ``g`` such that
    ``20 * log10(rms(clip) / rms(g * noise))`` is uniform in ``ebr_db``. Labels and length
    are unchanged; a silent clip stays silent (``g = 0``).

    Args:
        p: per-clip probability.
        ebr_db: ``(low, high)`` event-to-background ratio range (dB).
        noise_dir: folder of background recordings (``.wav/.flac/.ogg``, searched
            recursively, loaded once on first use at ``sample_rate``); each clip gets a
            random file, randomly cropped or tiled to the clip length. ``None``: coloured
            noise (:func:`coloured_noise`) with exponent uniform in ``beta``.
        beta: ``(low, high)`` range of the coloured-noise exponent.
        sample_rate: audio sample rate (Hz).

    Shape:
        ``batch.audio``: ``(batch, n_samples)``, unchanged.
    """

    def __init__(
        self,
        p: float = 0.5,
        ebr_db: Sequence[float] = (0.0, 20.0),
        noise_dir: str | PathLike | None = None,
        beta: Sequence[float] = (0.0, 2.0),
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        self.p = float(p)
        self.ebr_db = (float(ebr_db[0]), float(ebr_db[1]))
        self.noise_dir = Path(noise_dir) if noise_dir is not None else None
        self.beta = (float(beta[0]), float(beta[1]))
        self.sample_rate = int(sample_rate)
        self._bank: list[torch.Tensor] | None = None

    def extra_repr(self) -> str:
        source = self.noise_dir or f"coloured beta={self.beta}"
        return f"p={self.p}, ebr_db={self.ebr_db}, noise={source}"

    def noise_bank(self) -> list[torch.Tensor]:
        """The recordings of ``noise_dir`` (loaded on first call). Each ``(length,)``."""
        if self._bank is None:
            files = sorted(
                f for f in self.noise_dir.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES
            )
            if not files:
                raise FileNotFoundError(f"no {AUDIO_SUFFIXES} audio files in {self.noise_dir}")
            self._bank = [torch.from_numpy(load_audio(f, self.sample_rate)) for f in files]
        return self._bank

    def backgrounds(self, n_clips: int, n_samples: int, device: torch.device) -> torch.Tensor:
        """One background per clip. Shape: returns ``(n_clips, n_samples)``."""
        if self.noise_dir is None:
            return coloured_noise(uniform(*self.beta, n_clips, device), n_samples, self.sample_rate)
        bank = self.noise_bank()
        picks = torch.randint(len(bank), (n_clips,)).tolist()
        return torch.stack([random_crop(bank[i], n_samples) for i in picks]).to(device)

    def forward(self, batch: SEDBatch) -> SEDBatch:
        audio = batch.audio
        apply = draw(self.p, len(batch), audio.device) & batch.has_weak & ~batch.has_strong
        noise = self.backgrounds(len(batch), audio.shape[-1], audio.device).to(audio.dtype)
        ebr = uniform(*self.ebr_db, len(batch), audio.device)
        noise_rms = (rms(noise) * 10 ** (ebr / 20)).clamp_min(_EPS)
        gain = rms(audio) / noise_rms
        mixed = torch.where(apply[:, None], audio + gain[:, None] * noise, audio)
        return replace(batch, audio=mixed)


class TimeShift(nn.Module):
    """Rolls audio and strong labels together by a random whole number of label frames.

    With probability ``p`` (per clip) a clip is shifted by ``k`` frames, ``k`` uniform in
    ``[-K, K]`` with ``K = round(max_shift * sample_rate / frame_samples)``: the audio is
    rolled by ``k * frame_samples`` samples, the strong labels by ``k`` frames
    (:func:`torch.roll`, circular: what leaves one end comes back at the other). Weak labels
    are unchanged. The audio and label grids wrap at slightly different places when
    ``n_samples != n_frames * frame_samples`` (a fraction of a frame at the clip end).

    Args:
        p: per-clip probability.
        max_shift: largest shift (seconds).
        sample_rate: audio sample rate (Hz).

    Shape:
        ``batch.audio``: ``(batch, n_samples)``, ``batch.strong_labels``:
        ``(batch, n_classes, n_frames)``, both unchanged in shape.
    """

    def __init__(self, p: float = 0.5, max_shift: float = 1.0, sample_rate: int = 16000) -> None:
        super().__init__()
        self.p = float(p)
        self.max_shift = float(max_shift)
        self.sample_rate = int(sample_rate)

    def extra_repr(self) -> str:
        return f"p={self.p}, max_shift={self.max_shift}"

    def max_frames(self, frame_samples: int) -> int:
        """``K``: the largest shift in label frames.

        >>> TimeShift(max_shift=1.0, sample_rate=16000).max_frames(1024)
        16
        """
        return round(self.max_shift * self.sample_rate / frame_samples)

    def draw_shifts(self, n_clips: int, frame_samples: int) -> list[int]:
        """Per-clip shifts in label frames (0 where not applied)."""
        k_max = self.max_frames(frame_samples)
        shifts = torch.randint(-k_max, k_max + 1, (n_clips,)) * draw(self.p, n_clips)
        return shifts.tolist()

    def forward(self, batch: SEDBatch, frame_samples: int) -> SEDBatch:
        shifts = self.draw_shifts(len(batch), frame_samples)
        pairs = zip(batch.audio, batch.strong_labels, shifts, strict=True)
        rolled = [(torch.roll(a, k * frame_samples, -1), torch.roll(s, k, -1)) for a, s, k in pairs]
        audio, strong = (torch.stack(parts) for parts in zip(*rolled, strict=True))
        return replace(batch, audio=audio, strong_labels=strong)


def partners_within_kinds(batch: SEDBatch) -> torch.Tensor:
    """A random partner for every clip, of the same kind (a permutation inside each kind).

    Shape:
        returns ``(batch,)`` indices.
    """
    device = batch.audio.device
    partner = torch.arange(len(batch), device=device)
    for mask in kind_masks(batch):
        idx = mask.nonzero().squeeze(1)
        partner[idx] = idx[torch.randperm(idx.numel(), device=device)]
    return partner


class Mixup(nn.Module):
    """Mixes each clip with a random clip of the same kind.

    Kinds: strong, weak-only and unlabeled (a weak-only clip is never mixed with a strong
    one). With probability ``p`` (per clip) clip ``a`` becomes ``lam * a + (1 - lam) * b``
    with ``lam ~ Beta(alpha, alpha)`` (per clip) and ``b`` its partner. Labels:

    * ``hard``: element-wise maximum of both clips' weak tags and strong frames, so for
      strong clips ``weak == strong.amax(-1)`` still holds;
    * ``soft``: ``lam * labels_a + (1 - lam) * labels_b`` for weak and strong labels.

    The masks are unchanged.

    Args:
        p: per-clip probability.
        alpha: Beta distribution parameter.
        label_mode: ``hard`` or ``soft``.

    Shape:
        every tensor of the batch keeps its shape.
    """

    MODES = ("hard", "soft")

    def __init__(self, p: float = 0.5, alpha: float = 0.2, label_mode: str = "hard") -> None:
        super().__init__()
        if label_mode not in self.MODES:
            raise ValueError(f"label_mode must be one of {self.MODES}, got {label_mode!r}")
        self.p = float(p)
        self.alpha = float(alpha)
        self.label_mode = label_mode

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, label_mode={self.label_mode}"

    def draw_lam(self, n_clips: int, device: torch.device) -> torch.Tensor:
        """Per-clip mixing weights: Beta(alpha, alpha) where applied, 1 elsewhere.

        Shape:
            returns ``(n_clips,)``.
        """
        alpha = torch.full((n_clips,), self.alpha, device=device)
        lam = torch.distributions.Beta(alpha, alpha).sample()
        return torch.where(draw(self.p, n_clips, device), lam, torch.ones_like(lam))

    def mix_labels(self, labels: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor):
        """Mixed labels. Shape: ``labels`` ``(batch, ...)`` -> same; ``lam`` ``(batch,)``."""
        lam = lam.view(-1, *[1] * (labels.dim() - 1)).to(labels.dtype)
        if self.label_mode == "soft":
            return lam * labels + (1 - lam) * labels[partner]
        return torch.where(lam < 1, torch.maximum(labels, labels[partner]), labels)

    def forward(self, batch: SEDBatch) -> SEDBatch:
        partner = partners_within_kinds(batch)
        lam = self.draw_lam(len(batch), batch.audio.device)
        audio = lam[:, None] * batch.audio + (1 - lam[:, None]) * batch.audio[partner]
        return replace(
            batch,
            audio=audio.to(batch.audio.dtype),
            weak_labels=self.mix_labels(batch.weak_labels, partner, lam),
            strong_labels=self.mix_labels(batch.strong_labels, partner, lam),
        )


def mask_along_axis(features: torch.Tensor, axis: int, max_width: int) -> torch.Tensor:
    """Zero one random band along ``axis`` (-1 time, -2 frequency), drawn per clip.

    As SpecAugment (Park et al., 2019): a width ``w ~ U[0, max_width)`` and a start
    ``s ~ U[0, size - w)``, both floored; entries ``s <= i < s + w`` are set to 0. A few
    lines of tensor code: the maintained audio libraries offer no batched per-clip masks
    on torch tensors (the one that did is end of life).

    Shape:
        ``(batch, ..., n_mels, n_frames)`` -> same.

    >>> x = torch.ones(3, 4, 50)
    >>> widths = mask_along_axis(x, -1, max_width=10).eq(0).all(dim=1).sum(dim=-1)
    >>> bool((widths < 10).all())
    True
    """
    if axis not in (-1, -2):
        raise ValueError(f"axis must be -1 (time) or -2 (frequency), got {axis}")
    size = features.shape[axis]
    max_width = min(int(max_width), size)
    if max_width < 1:
        return features
    lead = features.shape[:-2]
    width = torch.rand(lead, device=features.device) * max_width
    start = torch.rand(lead, device=features.device) * (size - width)
    first, last = start.long(), start.long() + width.long()
    index = torch.arange(size, device=features.device)
    mask = (index >= first[..., None]) & (index < last[..., None])  # (..., size)
    mask = mask.unsqueeze(-1) if axis == -2 else mask.unsqueeze(-2)
    return features.masked_fill(mask, 0.0)


class SpecAugment(nn.Module):
    """Time and frequency masks on the features, different for every clip
    (:func:`mask_along_axis`).

    With probability ``p`` (per clip) a clip gets ``time_masks`` masks of up to
    ``time_mask_param`` frames and ``freq_masks`` masks of up to ``freq_mask_param`` bins.
    Masked values are set to 0, the mean of each bin of the normalized log-mel front end
    (:class:`~sed_lightning.features.frontend.LogMelFrontend`).

    Args:
        p: per-clip probability.
        time_masks: number of time masks.
        time_mask_param: maximum width of a time mask (feature frames).
        freq_masks: number of frequency masks.
        freq_mask_param: maximum width of a frequency mask (mel bins).

    Shape:
        ``(batch, n_mels, n_frames)`` (the front end's output) or ``(batch, ..., n_mels,
        n_frames)`` -> same.

    >>> aug = SpecAugment(p=1.0, time_masks=1, time_mask_param=5, freq_masks=0)
    >>> aug(torch.ones(2, 8, 50)).eq(0).any(dim=1).sum(dim=-1).le(5).all().item()
    True
    """

    def __init__(
        self,
        p: float = 0.5,
        time_masks: int = 2,
        time_mask_param: int = 20,
        freq_masks: int = 2,
        freq_mask_param: int = 8,
    ) -> None:
        super().__init__()
        self.p = float(p)
        self.masks = [(-1, int(time_mask_param))] * int(time_masks) + [
            (-2, int(freq_mask_param))
        ] * int(freq_masks)

    def extra_repr(self) -> str:
        return f"p={self.p}, masks={self.masks}"

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        masked = features
        for axis, max_width in self.masks:
            masked = mask_along_axis(masked, axis, max_width)
        apply = draw(self.p, features.shape[0], features.device)
        apply = apply.view(-1, *[1] * (features.dim() - 1))
        return torch.where(apply, masked, features)


class Augmentation(nn.Module):
    """Training-time augmentation: waveform parts, then SpecAugment on the features.

    Used only by ``SEDModule.training_step``; validation, test and prediction never see it.

    Args:
        noise: :class:`NoiseOverlay` or ``None`` (off).
        shift: :class:`TimeShift` or ``None``.
        mixup: :class:`Mixup` or ``None``.
        specaugment: :class:`SpecAugment` or ``None``.

    Example:
        >>> batch = SEDBatch(
        ...     audio=torch.randn(4, 4096),
        ...     weak_labels=torch.zeros(4, 3),
        ...     strong_labels=torch.zeros(4, 3, 4),
        ...     has_weak=torch.tensor([True, True, True, False]),
        ...     has_strong=torch.tensor([True, True, False, False]),
        ... )
        >>> aug = Augmentation(shift=TimeShift(p=1.0), mixup=Mixup(p=1.0))
        >>> aug(batch, frame_samples=1024).audio.shape
        torch.Size([4, 4096])
    """

    def __init__(
        self,
        noise: NoiseOverlay | None = None,
        shift: TimeShift | None = None,
        mixup: Mixup | None = None,
        specaugment: SpecAugment | None = None,
    ) -> None:
        super().__init__()
        self.noise = noise
        self.shift = shift
        self.mixup = mixup
        self.specaugment = specaugment

    def forward(self, batch: SEDBatch, frame_samples: int) -> SEDBatch:
        """Noise overlay, time shift, then mixup; returns a new batch.

        Args:
            batch: the training batch (not modified).
            frame_samples: audio samples per label frame (hop length x time pooling).
        """
        batch = replace(batch, filenames=list(batch.filenames))
        if self.noise is not None:
            batch = self.noise(batch)
        if self.shift is not None:
            batch = self.shift(batch, frame_samples)
        if self.mixup is not None:
            batch = self.mixup(batch)
        return batch

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """SpecAugment (identity when off).

        Shape:
            ``(batch, n_mels, n_frames)`` -> same.
        """
        return x if self.specaugment is None else self.specaugment(x)
