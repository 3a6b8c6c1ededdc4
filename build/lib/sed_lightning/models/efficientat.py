"""The AudioSet-pretrained EfficientAT MobileNetV3 as the CNN stage of
:class:`~sed_lightning.models.sed.SEDModel`: a frame-level trunk with a finer time
resolution than the tagger's, fine-tuning controls (frozen first blocks, unfreezing after
some epochs, learning-rate scales per block) and the weights read once, when training
starts from them (:meth:`EfficientATCNN.load_pretrained`); a checkpoint carries them after.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from sed_lightning.models.mobilenet import MobileNetV3
from sed_lightning.models.weights import load_strict, read_state_dict, resolve_weights

log = logging.getLogger(__name__)


def strided_convs(features: nn.Module) -> list[nn.Conv2d]:
    """The convolutions of ``features`` that stride by 2, in order (the stem's first)."""
    return [m for m in features.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]


class EfficientATCNN(nn.Module):
    """EfficientAT's MobileNetV3 trunk (without its tagging head) for frame-level SED.

    The tagger strides 32x in time (0.32 s a step at a 10 ms hop); ``time_stride`` keeps
    only the first ``log2(time_stride)`` of its five stride-2 layers strided in time (the
    others stride in frequency only; convolution weights do not depend on the stride), so
    ``time_stride=8`` gives 0.08 s steps. The last map (384 channels at width 0.4) is
    averaged over its frequency rows (``freq_pool="mean"``) or its rows are concatenated
    (``"flatten"``).

    Args:
        n_mels: mel bands of the input (the weights were trained on 128).
        weights: the pretrained file: a local path or a URL (fetched once into
            ``cache_dir``), read by :meth:`load_pretrained` only; ``None``: random
            initialization.
        sha256: the file's sha256; the file is refused if it differs. ``None``: unchecked.
        cache_dir: where a URL's file goes (``None``: ``$SED_LIGHTNING_CACHE`` or
            ``~/.cache/sed_lightning``).
        width_mult: the network's width (0.4: ``mn04``).
        time_stride: 1, 2, 4, 8, 16 or 32.
        freq_pool: ``"mean"`` or ``"flatten"``.
        freeze_blocks: the first N of the 17 feature blocks (stem, 15 inverted residual
            blocks, last 1x1 conv) get no gradient, and their BatchNorm statistics stay
            as loaded.
        unfreeze_epoch: from this training epoch on every block trains (``None``: never).
        lr_scale: the trunk's learning rate relative to the optimizer's (the head's).
        layer_decay: each block's rate is ``layer_decay`` times the next one's (1: none).
        dropout: dropout on the output features.
        fine_branch: factory ``fine_branch(n_mels=...)`` of a from-scratch CNN at a finer
            time resolution (e.g. :class:`~sed_lightning.models.cnn.CNN`), or ``None``.
            With one, the trunk's embedding is interpolated (linearly in time) to the
            branch's frames and joined to its output, as the DCASE 2024 Task 4 baseline
            joins BEATs frames to its CNN; the branch sets the frame rate.

    Shape:
        - input: ``(batch, n_mels, time)`` (:class:`~sed_lightning.features.efficientat.EfficientATFrontend`)
        - output: ``(batch, time // time_pooling, out_features)``

    Example:
        >>> cnn = EfficientATCNN(n_mels=128, time_stride=8)
        >>> cnn(torch.randn(2, 128, 1000)).shape, cnn.time_pooling, cnn.out_features
        (torch.Size([2, 125, 384]), 8, 384)
    """

    def __init__(
        self,
        n_mels: int = 128,
        weights: str | None = None,
        sha256: str | None = None,
        cache_dir: str | None = None,
        width_mult: float = 0.4,
        time_stride: int = 8,
        freq_pool: str = "mean",
        freeze_blocks: int = 0,
        unfreeze_epoch: int | None = None,
        lr_scale: float = 1.0,
        layer_decay: float = 1.0,
        dropout: float = 0.0,
        fine_branch: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.net_width = width_mult
        self.features = MobileNetV3(width_mult=width_mult).features
        convs = strided_convs(self.features)
        if time_stride not in [2**k for k in range(len(convs) + 1)]:
            raise ValueError(f"time_stride must be a power of 2 up to {2 ** len(convs)}")
        for conv in convs[int(math.log2(time_stride)) :]:
            conv.stride = (2, 1)
        if freq_pool not in ("mean", "flatten"):
            raise ValueError(f"freq_pool must be 'mean' or 'flatten', got {freq_pool!r}")
        if not 0 <= freeze_blocks <= len(self.features):
            raise ValueError(f"freeze_blocks must be in 0..{len(self.features)}")
        self.weights, self.sha256, self.cache_dir = weights, sha256, cache_dir
        self.trunk_stride = time_stride
        self.freq_pool = freq_pool
        rows = math.ceil(n_mels / 2 ** len(convs))
        channels = self.features[-1].out_channels
        self.out_features = channels * (rows if freq_pool == "flatten" else 1)
        self.fine_branch = fine_branch(n_mels=n_mels) if fine_branch is not None else None
        self.time_pooling = time_stride
        if self.fine_branch is not None:
            self.time_pooling = self.fine_branch.time_pooling
            self.out_features += self.fine_branch.out_features
        self.freeze_blocks = freeze_blocks
        self.unfreeze_epoch = unfreeze_epoch
        self.lr_scale, self.layer_decay = lr_scale, layer_decay
        self.dropout = nn.Dropout(dropout)
        self.frozen = 0
        self.set_epoch(0)

    def load_pretrained(self) -> None:
        """Read ``weights`` (checked against ``sha256``) into the trunk, strictly: every
        tensor of the full tagger must be there with its shape.

        Raises:
            WeightsError: one line naming the file and what does not fit.
        """
        if self.weights is None:
            return
        path = resolve_weights(self.weights, self.sha256, self.cache_dir)
        tagger = MobileNetV3(width_mult=self.net_width)
        load_strict(tagger, read_state_dict(path), str(path))
        self.features.load_state_dict(tagger.features.state_dict())
        log.info("pretrained trunk loaded from %s", path)

    def set_epoch(self, epoch: int) -> None:
        """Freeze the first ``freeze_blocks`` blocks, or none from ``unfreeze_epoch`` on."""
        thawed = self.unfreeze_epoch is not None and epoch >= self.unfreeze_epoch
        self.frozen = 0 if thawed else self.freeze_blocks
        for i, block in enumerate(self.features):
            block.requires_grad_(i >= self.frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> EfficientATCNN:
        super().train(mode)
        for block in self.features[: self.frozen]:
            block.eval()  # frozen blocks keep their BatchNorm statistics
        return self

    def lr_groups(self) -> Iterator[tuple[list[nn.Parameter], float]]:
        """``(parameters, learning-rate factor)`` of each trunk block: ``lr_scale`` times
        ``layer_decay`` per block below the last."""
        last = len(self.features) - 1
        for i, block in enumerate(self.features):
            yield list(block.parameters()), self.lr_scale * self.layer_decay ** (last - i)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_frames = x.shape[-1] // self.time_pooling
        maps = self.features(x.unsqueeze(1))  # (batch, channels, rows, time')
        out = maps.mean(dim=2) if self.freq_pool == "mean" else maps.flatten(1, 2)
        if self.fine_branch is None:
            return self.dropout(out[..., :n_frames].transpose(1, 2))
        coarse = F.interpolate(out, size=n_frames, mode="linear", align_corners=False)
        fine = self.fine_branch(x)[:, :n_frames]  # (batch, n_frames, branch features)
        return torch.cat([self.dropout(coarse.transpose(1, 2)), fine], dim=-1)
