"""Convolutional blocks: conv -> batch-norm -> activation -> dropout -> pooling.

The convolution of a block is a plain ``nn.Conv2d`` (``standard``) or a
:class:`FrequencyDynamicConv2d` (``fdy``, Nam et al. 2022).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "glu": None}
_DROPOUTS = {"element": nn.Dropout, "channel": nn.Dropout2d}
CONVS = ("standard", "fdy")


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


class FrequencyAttention(nn.Module):
    """Per-frequency attention over ``n_kernels`` basis kernels, from the time-averaged input.

    The input is averaged over time; a 1-d convolution over frequency (``kernel_size``, no
    bias) -> batch norm -> ReLU -> a 1x1 convolution to ``n_kernels`` logits; the
    attention is ``softmax(logits / temperature)`` over the kernels, separately at every
    frequency bin. A high temperature keeps it near uniform early in training.

    Args:
        in_channels: input channels.
        n_kernels: number of basis kernels.
        kernel_size: frequency extent of the first 1-d convolution.
        temperature: softmax temperature.
        hidden: channels of the hidden layer; default ``max(in_channels // 4, 4)``.

    Shape:
        - input: ``(batch, in_channels, freq, time)``
        - output: ``(batch, n_kernels, freq)``, summing to 1 over ``n_kernels``
    """

    def __init__(
        self,
        in_channels: int,
        n_kernels: int = 4,
        kernel_size: int = 3,
        temperature: float = 31.0,
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        hidden = hidden or max(in_channels // 4, 4)
        self.temperature = float(temperature)
        self.conv = nn.Conv1d(
            in_channels, hidden, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.norm = nn.BatchNorm1d(hidden)
        self.logits = nn.Conv1d(hidden, n_kernels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.conv(x.mean(dim=-1))))  # (B, hidden, F)
        return torch.softmax(self.logits(h) / self.temperature, dim=1)


class FrequencyDynamicConv2d(nn.Module):
    """Frequency-dynamic convolution (FDY conv; Nam et al., "Frequency Dynamic Convolution:
    Frequency-Adaptive Pattern Recognition for Sound Event Detection", Interspeech 2022).

    ``n_kernels`` basis kernels are applied to the input and their outputs summed with
    weights that depend on the frequency bin and on the clip:
    ``y[:, :, f] = sum_k attn[:, k, f] * conv_k(x)[:, :, f]``, where ``attn`` comes from
    :class:`FrequencyAttention` on the time-averaged input: the kernel mix varies along
    frequency with the clip's spectrum around each bin (and, through the zero padding,
    near the band edges), where a plain convolution applies one kernel everywhere. Same
    padding, stride 1. Costs ``n_kernels`` times the multiply-adds of one convolution.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (odd).
        n_kernels: basis kernels ``K``.
        temperature: softmax temperature of the attention.
        bias: a bias per basis kernel (weighted like the kernels).

    Shape:
        - input: ``(batch, in_channels, freq, time)``
        - output: ``(batch, out_channels, freq, time)``

    Example:
        >>> conv = FrequencyDynamicConv2d(2, 8, kernel_size=3, n_kernels=4)
        >>> conv(torch.randn(3, 2, 16, 20)).shape, tuple(conv.kernel(0).shape)
        (torch.Size([3, 8, 16, 20]), (8, 2, 3, 3))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        n_kernels: int = 4,
        temperature: float = 31.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if n_kernels < 1:
            raise ValueError(f"n_kernels must be at least 1, got {n_kernels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.n_kernels = kernel_size, n_kernels
        self.attention = FrequencyAttention(in_channels, n_kernels, kernel_size, temperature)
        # the K basis kernels stacked along the output channels, 4-d like a Conv2d weight
        # (so it can be kept channels-last): rows k * out_channels ... are kernel k
        self.weight = nn.Parameter(
            torch.empty(n_kernels * out_channels, in_channels, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(n_kernels * out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # every basis kernel initialised as nn.Conv2d initialises its weight and bias
        fan_in = self.in_channels * self.kernel_size**2
        for kernel in self.weight.data.unflatten(0, (self.n_kernels, self.out_channels)):
            nn.init.kaiming_uniform_(kernel, a=math.sqrt(5))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"n_kernels={self.n_kernels}, temperature={self.attention.temperature}, "
            f"bias={self.bias is not None}"
        )

    def kernel(self, k: int) -> torch.Tensor:
        """Basis kernel ``k``. Shape: ``(out_channels, in_channels, kernel_size, kernel_size)``."""
        return self.weight[k * self.out_channels : (k + 1) * self.out_channels]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.attention(x)  # (B, K, F)
        # all K basis convolutions in one call: (B, K * out, F, T) -> (B, K, out, F, T)
        y = F.conv2d(x, self.weight, self.bias, padding=self.kernel_size // 2)
        y = y.unflatten(1, (self.n_kernels, self.out_channels))
        return (y * attn[:, :, None, :, None]).sum(dim=1)


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
        conv: ``standard`` (``nn.Conv2d``) or ``fdy`` (:class:`FrequencyDynamicConv2d`).
        fdy_kernels: basis kernels of an ``fdy`` convolution.
        fdy_temperature: attention temperature of an ``fdy`` convolution.

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
        conv: str = "standard",
        fdy_kernels: int = 4,
        fdy_temperature: float = 31.0,
    ) -> None:
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
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
        # block.0 keeps the name (and a standard conv its tensors) of earlier checkpoints
        convolution = (
            FrequencyDynamicConv2d(
                in_channels, out_channels, kernel_size, fdy_kernels, fdy_temperature
            )
            if conv == "fdy"
            else nn.Conv2d(
                in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
            )
        )
        self.block = nn.Sequential(
            convolution,
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
        conv: convolution of the blocks, ``standard`` or ``fdy`` (frequency-dynamic,
            :class:`FrequencyDynamicConv2d`): one for every block, or a list with one
            entry per block. FDY-CRNN (Nam et al. 2022) keeps the first block standard:
            ``[standard, fdy, fdy, ...]``.
        fdy_kernels: basis kernels of the ``fdy`` blocks (4 in the paper).
        fdy_temperature: attention softmax temperature of the ``fdy`` blocks (31 in the
            paper).

    Shape:
        - input: ``(batch, n_mels, time)``
        - output: ``(batch, time // time_pooling, out_features)``

    Example:
        >>> cnn = CNN(n_mels=64, channels=[8, 16], pooling=[[2, 4], [2, 4]])
        >>> cnn(torch.randn(3, 64, 101)).shape, cnn.time_pooling, cnn.out_features
        (torch.Size([3, 25, 64]), 4, 64)
        >>> fdy = CNN(n_mels=64, channels=[8, 16], pooling=[[2, 4], [2, 4]], conv=["standard", "fdy"])
        >>> fdy(torch.randn(3, 64, 101)).shape, type(fdy.blocks[1].block[0]).__name__
        (torch.Size([3, 25, 64]), 'FrequencyDynamicConv2d')
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
        conv: str | Sequence[str] = "standard",
        fdy_kernels: int = 4,
        fdy_temperature: float = 31.0,
    ) -> None:
        super().__init__()
        if len(channels) != len(pooling):
            raise ValueError(
                f"channels ({len(channels)}) and pooling ({len(pooling)}) need one entry per block"
            )
        convs = [conv] * len(channels) if isinstance(conv, str) else list(conv)
        if len(convs) != len(channels):
            raise ValueError(
                f"conv needs one entry per block ({len(channels)}), got {len(convs)}: {convs}"
            )
        blocks, in_ch, freq, time_pool = [], 1, n_mels, 1
        for out_ch, pool, kind in zip(channels, pooling, convs, strict=True):
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
                    conv=kind,
                    fdy_kernels=fdy_kernels,
                    fdy_temperature=fdy_temperature,
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
