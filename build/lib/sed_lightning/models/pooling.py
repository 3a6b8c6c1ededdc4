"""Weak (clip-level) predictions derived from strong (frame-level) ones.

Every pooling module is built with the same two arguments (the encoder width and the
number of classes; modes that do not learn ignore them) so that the model can build
whichever one the config group ``model/pooling`` selects, and is called with the frame
probabilities and the encoder's frame embeddings.

Shape (all modes):
    - strong: ``(batch, n_classes, n_frames)`` frame probabilities in [0, 1]
    - embeddings: ``(batch, n_frames, in_features)``
    - output: ``(batch, n_classes)`` clip probabilities in [0, 1]

Example:
    >>> strong = torch.tensor([[[0.2, 0.2, 0.8, 0.9, 0.2]]])
    >>> emb = torch.zeros(1, 5, 4)
    >>> MeanPooling()(strong, emb)
    tensor([[0.4600]])
    >>> ThresholdPooling(threshold=0.5)(strong, emb)
    tensor([[0.8500]])
    >>> attention = AttentionPooling(in_features=4, n_classes=1)
    >>> torch.allclose(attention(strong, emb), MeanPooling()(strong, emb))  # equal logits
    True
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["MeanPooling", "ThresholdPooling", "AttentionPooling", "WeakPooling"]


class WeakPooling(nn.Module):
    """Base class: maps frame probabilities (and embeddings) to clip probabilities."""

    def __init__(self, in_features: int | None = None, n_classes: int | None = None) -> None:
        super().__init__()

    def forward(self, strong: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class MeanPooling(WeakPooling):
    """Weak prediction = mean of the frame probabilities over time."""

    def forward(self, strong: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return strong.mean(dim=-1)


class ThresholdPooling(WeakPooling):
    """Weak prediction from the runs of frames above a threshold (the seed method).

    For each class, the frames that lie in runs of at least ``min_frames`` consecutive
    frames above ``threshold`` are summarized by their mean (or median). A class with no
    such run falls back to its maximum frame probability, which is below the threshold,
    so a clip without any confident frame stays negative and still gets a gradient.

    Args:
        in_features: unused (uniform constructor).
        n_classes: unused (uniform constructor).
        threshold: frame probability a frame must exceed (strictly).
        statistic: ``"mean"`` or ``"median"`` of the selected frames.
        min_frames: shortest run of consecutive frames that counts.
    """

    def __init__(
        self,
        in_features: int | None = None,
        n_classes: int | None = None,
        threshold: float = 0.5,
        statistic: Literal["mean", "median"] = "mean",
        min_frames: int = 1,
    ) -> None:
        super().__init__()
        if statistic not in ("mean", "median"):
            raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
        if min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        self.threshold = threshold
        self.statistic = statistic
        self.min_frames = min_frames

    def _run_mask(self, above: torch.Tensor) -> torch.Tensor:
        """Keep only the frames lying in runs of >= ``min_frames`` active frames."""
        if self.min_frames == 1:
            return above
        k = self.min_frames
        x = above.float().flatten(0, -2).unsqueeze(1)  # (B*C, 1, T)
        # A window of k frames fully active marks the start of a valid stretch ...
        full = nn.functional.conv1d(x, torch.ones(1, 1, k, device=x.device)) >= k - 0.5
        # ... and every frame covered by such a window belongs to a long enough run.
        covered = nn.functional.conv1d(
            nn.functional.pad(full.float(), (k - 1, k - 1)), torch.ones(1, 1, k, device=x.device)
        )
        return (covered.squeeze(1) > 0.5).reshape(above.shape)

    def forward(self, strong: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        selected = self._run_mask(strong > self.threshold)
        count = selected.sum(dim=-1)
        if self.statistic == "mean":
            pooled = (strong * selected).sum(dim=-1) / count.clamp(min=1)
        else:
            masked = strong.masked_fill(~selected, float("nan"))
            pooled = torch.nanmedian(masked, dim=-1).values
        fallback = strong.amax(dim=-1)
        return torch.where(count > 0, pooled, fallback)


class AttentionPooling(WeakPooling):
    """Attention pooling: a linear layer + softmax over time gives frame weights.

    The weak prediction is the weighted sum of the frame probabilities, per class.
    With equal attention logits it equals mean pooling.

    Args:
        in_features: width of the encoder's frame embeddings.
        n_classes: number of classes.
    """

    def __init__(self, in_features: int | None = None, n_classes: int | None = None) -> None:
        super().__init__()
        if in_features is None or n_classes is None:
            raise ValueError("AttentionPooling needs in_features and n_classes")
        self.attention = nn.Linear(in_features, n_classes)

    def weights(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Frame weights ``(batch, n_classes, n_frames)``, summing to 1 over frames."""
        return torch.softmax(self.attention(embeddings).transpose(1, 2), dim=-1)

    def forward(self, strong: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return (self.weights(embeddings) * strong).sum(dim=-1).clamp(0.0, 1.0)
