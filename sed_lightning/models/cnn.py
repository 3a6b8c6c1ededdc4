"""Convolutional blocks: conv -> batch-norm -> activation -> dropout -> pooling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "glu": None}
_DROPOUTS = {"element": nn.Dropout, "channel": nn.Dropout2d}


class GLU2d(nn.Module):
    """Gated linear unit over channels, as in the DCASE Task 4 baseline CNN.

    Shape:
        - input: ``(batch, channels, freq, time)``
        - output: same shape
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.gate(x))


class ConvBlock(nn.Module):
    """One CNN block of the seed method: conv, batch norm, activation, dropout, pooling.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        pool: ``(time, freq)`` average-pooling factors.
        activation: ``relu``, ``silu`` or ``glu``.
        dropout: dropout probability after the activation.
        kernel_size: square convolution kernel size.
        dropout_kind: ``element`` (``nn.Dropout``) or ``channel`` (``nn.Dropout2d``: whole
            feature maps; on CPU far cheaper, as it draws one random number per channel).
        dropout_after_pool: apply the dropout to the pooled map (up to 4x fewer random
            draws and mask multiplies) instead of before the pooling.

    Shape:
        - input: ``(batch, in_channels, freq, time)``
        - output: ``(batch, out_channels, freq // pool[1], time // pool[0])``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        pool: Sequence[int] = (2, 2),
        activation: str = "relu",
        dropout: float = 0.0,
        kernel_size: int = 3,
        dropout_kind: str = "element",
        dropout_after_pool: bool = False,
    ) -> None:
        super().__init__()
        if dropout_kind not in _DROPOUTS:
            raise ValueError(
                f"dropout_kind must be one of {sorted(_DROPOUTS)}, got {dropout_kind!r}"
            )
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        act = GLU2d(out_channels) if activation == "glu" else _ACTIVATIONS[activation]()
        t_pool, f_pool = pool
        drop = _DROPOUTS[dropout_kind](dropout)
        pooling = (
            nn.AvgPool2d(kernel_size=(f_pool, t_pool))
            if (t_pool, f_pool) != (1, 1)
            else nn.Identity()
        )
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            act,
            *((pooling, drop) if dropout_after_pool else (drop, pooling)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class CNN(nn.Module):
    """A stack of :class:`ConvBlock` mapping log-mel features to frame embeddings.

    Args:
        n_mels: mel bands of the input features.
        channels: output channels of each block.
        pooling: ``(time, freq)`` pooling of each block (same length as ``channels``).
        activation: activation of every block.
        dropout: dropout of every block.
        kernel_size: convolution kernel size.
        dropout_kind: ``element`` or ``channel`` (see :class:`ConvBlock`).
        dropout_after_pool: dropout on the pooled maps (see :class:`ConvBlock`).
        channels_last: run the convolutions in the channels-last memory layout (oneDNN's
            native layout on CPU; the weights are stored the same way in checkpoints).

    Shape:
        - input: ``(batch, n_mels, time)``
        - output: ``(batch, time // time_pooling, out_features)``

    Example:
        >>> cnn = CNN(n_mels=64, channels=[8, 16], pooling=[[2, 4], [2, 4]])
        >>> cnn(torch.randn(3, 64, 101)).shape, cnn.time_pooling, cnn.out_features
        (torch.Size([3, 25, 64]), 4, 64)
    """

    def __init__(
        self,
        n_mels: int,
        channels: Sequence[int] = (16, 32, 64, 64, 64),
        pooling: Sequence[Sequence[int]] = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2)),
        activation: str = "relu",
        dropout: float = 0.1,
        kernel_size: int = 3,
        dropout_kind: str = "element",
        dropout_after_pool: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) != len(pooling):
            raise ValueError(
                f"channels ({len(channels)}) and pooling ({len(pooling)}) need one entry per block"
            )
        blocks, in_ch, freq, time_pool = [], 1, n_mels, 1
        for out_ch, pool in zip(channels, pooling, strict=True):
            blocks.append(
                ConvBlock(
                    in_ch,
                    out_ch,
                    pool,
                    activation,
                    dropout,
                    kernel_size,
                    dropout_kind,
                    dropout_after_pool,
                )
            )
            in_ch, freq, time_pool = out_ch, freq // pool[1], time_pool * pool[0]
        if freq < 1:
            raise ValueError(f"frequency pooling reduces {n_mels} mel bands to nothing")
        self.blocks = nn.Sequential(*blocks)
        self.time_pooling = time_pool
        self.out_features = in_ch * freq
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.blocks.to(memory_format=torch.channels_last)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.unsqueeze(1).contiguous(memory_format=self.memory_format)
        x = self.blocks(x)  # (B, C, F', T')
        return x.flatten(1, 2).transpose(1, 2)  # (B, T', C*F')
