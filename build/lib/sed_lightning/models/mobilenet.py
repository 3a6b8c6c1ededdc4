"""EfficientAT's MobileNetV3 (Schmid et al., ICASSP 2023), built from torchvision's
MobileNetV3 blocks so that the AudioSet-pretrained weights load strictly.

torchvision's ``mobilenet_v3_large(width_mult=...)`` has every tensor of the right shape;
three things differ and are changed here: the stem takes 1 channel (a log-mel image), the
squeeze-and-excitation layers are ``Linear`` layers with a *sigmoid* gate stored under
``conc_se_layers.0`` (:class:`ConcurrentSE`), and the head is stored as ``classifier.2`` /
``classifier.5`` around global average pooling.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large
from torchvision.ops.misc import SqueezeExcitation


class LinearSE(nn.Module):
    """Squeeze-and-excitation over channels: the mean over frequency and time, ``Linear``
    -> ReLU -> ``Linear`` -> sigmoid, the map scaled by the gate.

    Shape:
        ``(batch, channels, freq, time)`` -> same.

    >>> se = LinearSE(8, 4)
    >>> se(torch.randn(2, 8, 5, 7)).shape
    torch.Size([2, 8, 5, 7])
    """

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None].to(x.dtype)


class ConcurrentSE(nn.Module):
    """EfficientAT's container of SE layers (one here: over channels), for its key names."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([LinearSE(channels, squeeze)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class MobileNetV3(nn.Module):
    """EfficientAT's AudioSet tagger: ``features`` (16 blocks + the last 1x1 conv) and
    ``classifier`` (pooling, Linear, Hardswish, Dropout, Linear).

    Args:
        width_mult: channel width multiplier (0.4 for ``mn04``).
        n_classes: output classes (527 AudioSet classes).

    Shape:
        - input: ``(batch, 1, n_mels, time)``
        - output: ``(batch, n_classes)`` logits

    Example:
        >>> net = MobileNetV3(width_mult=0.4)
        >>> net(torch.randn(1, 1, 128, 100)).shape, sum(p.numel() for p in net.parameters())
        (torch.Size([1, 527]), 983599)
    """

    def __init__(self, width_mult: float = 0.4, n_classes: int = 527) -> None:
        super().__init__()
        base = mobilenet_v3_large(width_mult=width_mult, num_classes=n_classes)
        stem = base.features[0][0]
        base.features[0][0] = nn.Conv2d(
            1, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False
        )
        for block in base.features[1:-1]:
            layers = block.block
            for i, layer in enumerate(layers):
                if isinstance(layer, SqueezeExcitation):
                    layers[i] = ConcurrentSE(layer.fc1.in_channels, layer.fc1.out_channels)
        self.features = base.features
        first, last = base.classifier[0], base.classifier[3]
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(first.in_features, first.out_features),
            nn.Hardswish(),
            nn.Dropout(0.2),
            nn.Linear(last.in_features, last.out_features),
        )

    @property
    def out_channels(self) -> int:
        """Channels of the last feature map."""
        return self.features[-1].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
