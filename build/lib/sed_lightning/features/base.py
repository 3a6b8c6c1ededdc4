"""The front-end interface: what the rest of the code may ask of a waveform -> features
module (label grid, frame rate, predict windows, plots), so that no caller assumes the
log-mel front end's formulas."""

from __future__ import annotations

import torch
from torch import nn


class FrontEnd(nn.Module):
    """Waveform -> features ``(batch, n_features, n_frames)``, one frame per ``hop_length``
    input samples at ``sample_rate``.

    Subclasses set ``sample_rate``, ``hop_length`` and ``n_features`` and implement
    :meth:`n_frames` and ``forward``; :meth:`image` is what plots draw (the forward
    features unless a subclass has something more readable).

    Shape:
        - input: ``(batch, n_samples)``
        - output: ``(batch, n_features, n_frames(n_samples))``
    """

    sample_rate: int
    hop_length: int
    n_features: int
    #: the y-axis label of :meth:`image`
    image_label: str = "feature band"

    def n_frames(self, n_samples: int) -> int:
        """Frames of the features of ``n_samples`` input samples."""
        raise NotImplementedError

    @torch.no_grad()
    def image(self, waveform: torch.Tensor) -> torch.Tensor:
        """What a plot draws of ``waveform``. Shape: ``(batch, n_samples)`` ->
        ``(batch, bands, n_frames)``."""
        return self(waveform)
