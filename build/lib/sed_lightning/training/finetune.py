"""Fine-tuning a pretrained part: learning-rate factors per parameter and the per-epoch
freezing schedule, asked of whichever sub-modules offer them (e.g.
:class:`~sed_lightning.models.efficientat.EfficientATCNN`), so the training module holds
no model-specific branch.

A sub-module takes part by defining any of:

- ``lr_groups()``: ``(parameters, factor)`` pairs; those parameters train at ``factor``
  times the optimizer's learning rate;
- ``set_epoch(epoch)``: called at the start of every training epoch (freezing, unfreezing);
- ``load_pretrained()``: reads its pretrained weights, once, when a run starts from them
  (never on resume, ``init_from``, predict or evaluate: the checkpoint carries them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def lr_factor_groups(module: nn.Module) -> list[tuple[float, list[nn.Parameter]]]:
    """``module``'s parameters grouped by learning-rate factor (1 for those no sub-module
    scales), in first-seen order.

    >>> class Scaled(nn.Linear):
    ...     def lr_groups(self):
    ...         yield [self.weight], 0.1
    >>> net = nn.Sequential(Scaled(2, 2), nn.Linear(2, 1))
    >>> [(f, len(p)) for f, p in lr_factor_groups(net)]
    [(0.1, 1), (1.0, 3)]
    """
    factors: dict[int, float] = {}
    for sub in module.modules():
        if hasattr(sub, "lr_groups"):
            for params, factor in sub.lr_groups():
                factors.update({id(p): float(factor) for p in params})
    groups: dict[float, list[nn.Parameter]] = {}
    for p in module.parameters():
        groups.setdefault(factors.get(id(p), 1.0), []).append(p)
    return list(groups.items())


def make_optimizer(
    factory: Callable[..., torch.optim.Optimizer], module: nn.Module
) -> torch.optim.Optimizer:
    """``factory(params=...)`` with one parameter group per learning-rate factor, each
    group's rate scaled by its factor (before any scheduler reads it). Without factors:
    ``factory(params=module.parameters())``, exactly as before."""
    groups = lr_factor_groups(module)
    if [f for f, _ in groups] == [1.0]:
        return factory(params=module.parameters())
    optimizer = factory(params=[{"params": params} for _, params in groups])
    for group, (factor, _) in zip(optimizer.param_groups, groups, strict=True):
        group["lr"] = group["lr"] * factor
    return optimizer


def set_epoch(module: nn.Module, epoch: int) -> None:
    """Every sub-module's ``set_epoch(epoch)``."""
    for sub in module.modules():
        if sub is not module and hasattr(sub, "set_epoch"):
            sub.set_epoch(epoch)


def load_pretrained(module: nn.Module) -> list[Any]:
    """Every sub-module's ``load_pretrained()``; returns the sub-modules that have one."""
    loaded = [sub for sub in module.modules() if hasattr(sub, "load_pretrained")]
    for sub in loaded:
        sub.load_pretrained()
    return loaded
