"""Training-time augmentation: waveform parts on the batch, FilterAugment and SpecAugment
on the features.

:class:`Augmentation` chains five switchable parts (``None`` = off), in this order:

1. :class:`NoiseOverlay` - a background mixed into weak-only clips (the seed method).
2. :class:`TimeShift` - audio and strong labels rolled together by whole label frames.
3. :class:`Mixup` - clips mixed with clips of the same kind (strong / weak-only / unlabeled).
4. :class:`FilterAugment` - random step or piecewise-linear gain curves along frequency.
5. :class:`SpecAugment` - time and frequency masks on the front end's features.

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

from sed_lightning.data.audio import AUDIO_SUFFIXES, load_audio
from sed_lightning.data.batch import SEDBatch, clip_kind_masks
from sed_lightning.features.noise import EPS, coloured_noise, random_crop, rms

__all__ = [
    "Augmentation",
    "FilterAugment",
    "Mixup",
    "NoiseOverlay",
    "SpecAugment",
    "TimeShift",
    "kind_masks",
]


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
    """Masks of the strong, weak-only and unlabeled clips (they partition the batch; see
    :func:`~sed_lightning.data.batch.clip_kind_masks`).

    Shape:
        each ``(batch,)`` bool.
    """
    return list(clip_kind_masks(batch.has_weak, batch.has_strong).values())


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
            noise (:func:`~.noise.coloured_noise`) with exponent uniform in ``beta``.
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
        weak_only = clip_kind_masks(batch.has_weak, batch.has_strong)["weak"]
        apply = draw(self.p, len(batch), audio.device) & weak_only
        noise = self.backgrounds(len(batch), audio.shape[-1], audio.device).to(audio.dtype)
        ebr = uniform(*self.ebr_db, len(batch), audio.device)
        noise_rms = (rms(noise) * 10 ** (ebr / 20)).clamp_min(EPS)
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


class FilterAugment(nn.Module):
    """Random frequency-dependent gains on the features (FilterAugment, Nam et al. 2021,
    "FilterAugment: An Acoustic Environmental Data Augmentation Method").

    With probability ``p`` (per clip) the mel axis is cut into ``n`` bands (``n`` uniform in
    ``n_bands``, inclusive; random boundaries, each band at least ``min_bandwidth`` bins
    wide, fewer when the bins do not allow it) and a gain curve ``g(f)`` in dB, drawn
    per clip, is added to the features divided by ``unit_db``:

    * ``step``: one gain per band, uniform in ``db_range``;
    * ``linear``: gains uniform in ``db_range`` at the ``n + 1`` band edges, linearly
      interpolated inside each band (continuous along frequency).

    ``unit_db`` is the number of dB one feature unit stands for: 1 for log-mels in dB. Mind
    that :class:`~sed_lightning.features.frontend.LogMelFrontend` standardizes every mel bin
    of every clip over time, which removes any fixed per-bin gain: a filter applied to the
    waveform or to the log-mel before the normalization would be undone by it. Here the
    curve is added to the normalized features, where a unit is one standard deviation of
    the bin (on 80 synthesized clips of the office and default data a median 4.6 dB,
    2.3-9.0 dB from the 10th to the 90th percentile), so the augmented bins no longer have zero mean, which
    validation and test features always have.

    Args:
        p: per-clip probability.
        db_range: ``(low, high)`` gain range (dB).
        n_bands: ``(low, high)`` number of bands, both included.
        min_bandwidth: least band width (mel bins).
        mode: ``linear`` or ``step``.
        unit_db: dB per feature unit.

    Shape:
        ``(batch, n_mels, n_frames)`` -> same.

    >>> aug = FilterAugment(p=1.0, db_range=(-6.0, 6.0), mode="step")
    >>> x = torch.zeros(2, 64, 10)
    >>> y = aug(x)
    >>> y.shape, bool(y.abs().max() <= 6.0), bool((y == y[..., :1]).all())
    (torch.Size([2, 64, 10]), True, True)
    """

    MODES = ("linear", "step")

    def __init__(
        self,
        p: float = 0.5,
        db_range: Sequence[float] = (-6.0, 6.0),
        n_bands: Sequence[int] = (3, 5),
        min_bandwidth: int = 6,
        mode: str = "linear",
        unit_db: float = 1.0,
    ) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if not 1 <= int(n_bands[0]) <= int(n_bands[1]):
            raise ValueError(f"n_bands must be (low, high) with 1 <= low <= high, got {n_bands}")
        if float(unit_db) <= 0:
            raise ValueError(f"unit_db must be positive, got {unit_db}")
        self.p = float(p)
        self.db_range = (float(db_range[0]), float(db_range[1]))
        self.n_bands = (int(n_bands[0]), int(n_bands[1]))
        self.min_bandwidth = max(int(min_bandwidth), 1)
        self.mode = mode
        self.unit_db = float(unit_db)

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, db_range={self.db_range}, n_bands={self.n_bands}, "
            f"min_bandwidth={self.min_bandwidth}, mode={self.mode}, unit_db={self.unit_db}"
        )

    def band_edges(self, n_clips: int, n_bins: int, device: torch.device | str = "cpu"):
        """Random bands per clip.

        Returns:
            ``(edges, n)``: ``edges`` ``(n_clips, high + 1)`` long, the first bin of each
            band then ``n_bins`` (``edges[i, n[i]:]`` all equal ``n_bins``); ``n``
            ``(n_clips,)`` the number of bands of each clip.

        >>> edges, n = FilterAugment(n_bands=(4, 4), min_bandwidth=6).band_edges(3, 64)
        >>> n.tolist(), edges[:, 0].tolist(), edges[:, -1].tolist()
        ([4, 4, 4], [0, 0, 0], [64, 64, 64])
        >>> bool((edges.diff(dim=1) >= 6).all())
        True
        """
        low, high = self.n_bands
        n = torch.randint(low, high + 1, (n_clips,), device=device).clamp(max=n_bins)
        width = (n_bins // n).clamp(max=self.min_bandwidth)  # least width of a band
        # n - 1 inner edges: sorted draws in [0, n_bins - n * width] + j * width
        slack = (n_bins - n * width + 1).float()
        draws = (torch.rand(n_clips, high - 1, device=device) * slack[:, None]).long()
        j = torch.arange(1, high, device=device)
        inner = j[None, :] <= n[:, None] - 1
        draws = torch.where(inner, draws, torch.full_like(draws, n_bins)).sort(dim=1).values
        edges = torch.where(inner, draws + j * width[:, None], torch.full_like(draws, n_bins))
        zeros = torch.zeros(n_clips, 1, dtype=torch.long, device=device)
        return torch.cat([zeros, edges, torch.full_like(zeros, n_bins)], dim=1), n

    def curves(self, n_clips: int, n_bins: int, device: torch.device | str = "cpu"):
        """One random gain curve (dB) per clip, before the probability ``p``.

        Shape:
            returns ``(n_clips, n_bins)``.
        """
        edges, n = self.band_edges(n_clips, n_bins, device)
        low, high = self.db_range
        nodes = low + (high - low) * torch.rand(n_clips, edges.shape[1], device=device)
        bins = torch.arange(n_bins, device=device)
        # band of every bin: the number of inner edges at or below it
        band = (edges[:, 1:-1, None] <= bins).sum(dim=1)  # (n_clips, n_bins)
        if self.mode == "step":
            return nodes.gather(1, band)
        start, end = edges.gather(1, band), edges.gather(1, band + 1)
        # as linspace(node[band], node[band + 1], band width) over the bins of the band
        t = (bins - start).float() / (end - start - 1).clamp(min=1).float()
        first, last = nodes.gather(1, band), nodes.gather(1, band + 1)
        return first + t * (last - first)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n_clips, n_bins = features.shape[0], features.shape[-2]
        gains = self.curves(n_clips, n_bins, features.device) / self.unit_db
        gains = gains * draw(self.p, n_clips, features.device)[:, None]
        return features + gains.to(features.dtype).view(
            n_clips, *[1] * (features.dim() - 3), n_bins, 1
        )


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
    """Training-time augmentation: waveform parts, then FilterAugment and SpecAugment on the
    features.

    Used only by ``SEDModule.training_step``; validation, test and prediction never see it.

    Args:
        noise: :class:`NoiseOverlay` or ``None`` (off).
        shift: :class:`TimeShift` or ``None``.
        mixup: :class:`Mixup` or ``None``.
        specaugment: :class:`SpecAugment` or ``None``.
        filteraugment: :class:`FilterAugment` or ``None``; applied before SpecAugment (so
            masked regions stay 0).

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
        filteraugment: FilterAugment | None = None,
    ) -> None:
        super().__init__()
        self.noise = noise
        self.shift = shift
        self.mixup = mixup
        self.filteraugment = filteraugment
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
        """FilterAugment, then SpecAugment (each the identity when off).

        Shape:
            ``(batch, n_mels, n_frames)`` -> same.
        """
        if self.filteraugment is not None:
            x = self.filteraugment(x)
        return x if self.specaugment is None else self.specaugment(x)
