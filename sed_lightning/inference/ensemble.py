"""Several trained detectors scored as one: the mean of their frame probabilities.

The members run on the same audio windows (same sample rate, clip length, frame grid and
classes: the same experiment with other seeds); the probabilities are averaged, the decoder
runs once on the mean. Tune that decoder on the ensemble's validation scores
(``sed-tools ensemble``), not a member's: the mean scores are smoother.

>>> import torch
>>> from types import SimpleNamespace
>>> class Const(torch.nn.Module):
...     def __init__(self, p):
...         super().__init__()
...         self.p = p
...     def forward(self, audio):
...         strong = torch.full((audio.shape[0], 1, 2), self.p)
...         return SimpleNamespace(strong=strong, weak=strong[..., 0], embeddings=None)
>>> MeanOfModules([Const(0.2), Const(0.6)])(torch.zeros(1, 8)).strong
tensor([[[0.4000, 0.4000]]])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sed_lightning.models.sed import SEDOutput


class MeanOfModules(nn.Module):
    """The members' strong and weak probabilities averaged.

    Shape:
        - audio: ``(batch, samples)``
        - output ``strong``: ``(batch, n_classes, n_frames)``; ``weak``: ``(batch,
          n_classes)``; ``embeddings``: the first member's; ``strong_logits``: the logit of
          the mean ``strong``
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    @property
    def frontend(self) -> nn.Module:
        """The first member's front end (what the prediction plots show)."""
        return self.members[0].frontend

    def forward(self, audio: torch.Tensor) -> SEDOutput:
        outputs = [m(audio) for m in self.members]
        strong = torch.stack([o.strong.float() for o in outputs]).mean(0)
        weak = torch.stack([o.weak.float() for o in outputs]).mean(0)
        eps = torch.finfo(strong.dtype).eps
        logits = torch.logit(strong.clamp(eps, 1 - eps))
        return SEDOutput(strong, weak, outputs[0].embeddings, logits)


__all__ = ["MeanOfModules"]
