"""Conformer blocks (Gulati et al., 2020) on ``scaled_dot_product_attention``.

Written here because the audio library whose Conformer the project used is end of life;
the block is the same: half-step feed-forward, multi-head self-attention, convolution
module, half-step feed-forward, final LayerNorm. Checkpoints saved with that layout are
converted by :func:`sed_lightning.training.checkpoints.upgrade_state_dict`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeedForward(nn.Module):
    """LayerNorm -> Linear -> SiLU -> Dropout -> Linear -> Dropout.

    Shape:
        ``(batch, time, dim)`` -> same.
    """

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.silu(self.linear1(self.norm(x))))
        return self.dropout(self.linear2(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention with :func:`torch.nn.functional.scaled_dot_product_attention`
    (fused kernels where the device has them). ``in_proj`` packs the query, key and value
    projections in that order, as :class:`torch.nn.MultiheadAttention` does.

    Shape:
        ``(batch, time, dim)`` -> same.

    >>> attn = SelfAttention(dim=8, num_heads=2)
    >>> attn(torch.randn(3, 5, 8)).shape
    torch.Size([3, 5, 8])
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"d_model={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, dim = x.shape
        qkv = self.in_proj(x).view(batch, time, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (batch, heads, time, head_dim)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(batch, time, dim))


class ConvModule(nn.Module):
    """LayerNorm -> pointwise conv (x2 channels) -> GLU -> depthwise conv -> BatchNorm ->
    SiLU -> pointwise conv -> Dropout.

    Shape:
        ``(batch, time, dim)`` -> same.
    """

    def __init__(self, dim: int, kernel_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-length output), got {kernel_size}")
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.batch_norm = nn.BatchNorm1d(dim)
        self.pointwise_out = nn.Conv1d(dim, dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.glu(self.pointwise_in(self.norm(x).transpose(1, 2)), dim=1)
        x = F.silu(self.batch_norm(self.depthwise(x)))
        return self.dropout(self.pointwise_out(x)).transpose(1, 2)


class ConformerBlock(nn.Module):
    """``x + FFN/2 -> x + MHSA -> x + Conv -> x + FFN/2 -> LayerNorm``.

    Shape:
        ``(batch, time, dim)`` -> same.

    >>> block = ConformerBlock(dim=16, num_heads=4, ffn_dim=32, kernel_size=7)
    >>> block(torch.randn(2, 9, 16)).shape
    torch.Size([2, 9, 16])
    """

    def __init__(
        self, dim: int, num_heads: int, ffn_dim: int, kernel_size: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.ffn1 = FeedForward(dim, ffn_dim, dropout)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, dropout)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvModule(dim, kernel_size, dropout)
        self.ffn2 = FeedForward(dim, ffn_dim, dropout)
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        x = x + self.attn_dropout(self.attn(self.attn_norm(x)))
        x = x + self.conv(x)
        x = x + 0.5 * self.ffn2(x)
        return self.final_norm(x)
