"""Sequence encoders over CNN frame embeddings: Conformer (the method) and BiGRU (CRNN)."""

from __future__ import annotations

import torch
from torch import nn

from sed_lightning.models.conformer import ConformerBlock


class ConformerEncoder(nn.Module):
    """Linear projection to ``d_model`` followed by :class:`ConformerBlock` s.

    Args:
        in_features: width of the CNN frame embeddings.
        d_model: Conformer width.
        num_heads: attention heads.
        ffn_dim: feed-forward hidden size.
        num_layers: Conformer blocks.
        kernel_size: depthwise convolution kernel size.
        dropout: dropout inside the blocks.

    Shape:
        - input: ``(batch, time, in_features)``
        - output: ``(batch, time, d_model)``

    >>> ConformerEncoder(in_features=32, d_model=16, ffn_dim=32, num_layers=2)(
    ...     torch.randn(2, 25, 32)).shape
    torch.Size([2, 25, 16])
    """

    def __init__(
        self,
        in_features: int,
        d_model: int = 144,
        num_heads: int = 4,
        ffn_dim: int = 576,
        num_layers: int = 3,
        kernel_size: int = 7,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.out_features = d_model
        self.proj = nn.Linear(in_features, d_model)
        self.blocks = nn.ModuleList(
            ConformerBlock(d_model, num_heads, ffn_dim, kernel_size, dropout)
            for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        for block in self.blocks:
            x = block(x)
        return x


class GRUEncoder(nn.Module):
    """Bidirectional GRU, the recurrent part of the DCASE Task 4 CRNN baseline.

    Shape:
        - input: ``(batch, time, in_features)``
        - output: ``(batch, time, 2 * hidden_size)``
    """

    def __init__(
        self, in_features: int, hidden_size: int = 128, num_layers: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.out_features = 2 * hidden_size
        self.gru = nn.GRU(
            in_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]
