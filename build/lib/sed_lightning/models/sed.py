"""The SED model: features -> CNN -> encoder -> strong head; weak from a pooling module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sed_lightning.models.cnn import CNN
from sed_lightning.models.pooling import WeakPooling


@dataclass
class SEDOutput:
    """What the model predicts for a batch.

    Shape:
        - strong: ``(batch, n_classes, n_frames)`` frame probabilities
        - weak: ``(batch, n_classes)`` clip probabilities
        - embeddings: ``(batch, n_frames, d_model)`` encoder output
        - strong_logits: ``(batch, n_classes, n_frames)``
    """

    strong: torch.Tensor
    weak: torch.Tensor
    embeddings: torch.Tensor
    strong_logits: torch.Tensor


class SEDModel(nn.Module):
    """CNN blocks + sequence encoder + linear/sigmoid frame head + weak pooling.

    The sub-modules are passed as factories (Hydra ``_partial_: true``) because their
    sizes chain: the encoder needs the CNN's output width, the head and the pooling need
    the encoder's width and the number of classes.

    Args:
        n_classes: number of event classes.
        n_mels: mel bands of the input features.
        cnn: factory ``cnn(n_mels=...) -> CNN``.
        encoder: factory ``encoder(in_features=...) -> module`` with ``out_features``.
        pooling: factory ``pooling(in_features=..., n_classes=...) -> WeakPooling``.

    Shape:
        - input: ``(batch, n_mels, time)`` log-mel features
        - output: :class:`SEDOutput` with ``n_frames = time // cnn.time_pooling``
    """

    def __init__(
        self,
        n_classes: int,
        n_mels: int,
        cnn: Callable[..., CNN],
        encoder: Callable[..., nn.Module],
        pooling: Callable[..., WeakPooling],
    ) -> None:
        super().__init__()
        self.cnn = cnn(n_mels=n_mels)
        self.encoder = encoder(in_features=self.cnn.out_features)
        width = self.encoder.out_features
        self.head = nn.Linear(width, n_classes)
        self.pooling = pooling(in_features=width, n_classes=n_classes)
        self.n_classes = n_classes

    @property
    def time_pooling(self) -> int:
        return self.cnn.time_pooling

    def forward(self, features: torch.Tensor) -> SEDOutput:
        embeddings = self.encoder(self.cnn(features))
        logits = self.head(embeddings).transpose(1, 2)
        strong = torch.sigmoid(logits)
        weak = self.pooling(strong, embeddings)
        return SEDOutput(strong=strong, weak=weak, embeddings=embeddings, strong_logits=logits)
