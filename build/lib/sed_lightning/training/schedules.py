"""Learning-rate schedules that need the run's length (``scheduler=cosine``).

torch's :class:`~torch.optim.lr_scheduler.LambdaLR` does the stepping and the
checkpointing; this module only supplies the factor. A schedule that wants the number of
optimizer steps of the whole run declares a ``total_steps`` argument: the training module
fills it in from the trainer (:func:`make_scheduler`), so the config need not repeat
``max_epochs`` x batches per epoch. (torch's ``OneCycleLR`` would do a similar curve, but
it also cycles Adam's beta1 and its warm-up is a cosine, not the linear warm-up of the
other schedules here.)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from sed_lightning.training.preflight import ConfigError


class WarmupCosineFactor:
    """The factor on the base rate at optimizer step ``step``: a linear warm-up from
    ``start_factor`` to 1 over ``warmup_steps``, then a half cosine from 1 down to
    ``min_factor`` at ``total_steps`` (held there after).

    A callable object rather than a lambda, so :class:`LambdaLR` keeps it in its
    ``state_dict`` (a resumed run continues the same curve).

    >>> f = WarmupCosineFactor(warmup_steps=10, total_steps=110, min_factor=0.0)
    >>> [round(f(s), 3) for s in (0, 10, 60, 110, 200)]
    [0.01, 1.0, 0.5, 0.0, 0.0]
    """

    def __init__(
        self,
        warmup_steps: int,
        total_steps: int,
        min_factor: float = 0.0,
        start_factor: float = 0.01,
    ) -> None:
        if total_steps <= warmup_steps:
            raise ValueError(
                f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps}): "
                "lower warmup_steps or train longer"
            )
        if not 0.0 <= min_factor <= 1.0:
            raise ValueError(f"min_factor must be in [0, 1], got {min_factor}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_factor = float(min_factor)
        self.start_factor = float(start_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (
            1.0 + math.cos(math.pi * progress)
        )


class WarmupCosineLR(LambdaLR):
    """Linear warm-up, then cosine decay to ``min_factor`` x the base rate at the run's end.

    Args:
        optimizer: the optimizer whose rates it sets.
        warmup_steps: optimizer steps of the linear warm-up from ``start_factor``.
        total_steps: optimizer steps of the whole run; ``None`` in a config, filled in from
            the trainer (``trainer.estimated_stepping_batches``) by :func:`make_scheduler`.
        min_factor: the factor reached at ``total_steps``.
        start_factor: the factor at step 0.

    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = WarmupCosineLR(opt, warmup_steps=2, total_steps=6)
    >>> lrs = []
    >>> for _ in range(7):
    ...     lrs.append(round(opt.param_groups[0]["lr"], 3)); opt.step(); sched.step()
    >>> lrs
    [0.01, 0.505, 1.0, 0.854, 0.5, 0.146, 0.0]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: int = 100,
        total_steps: int | None = None,
        min_factor: float = 0.0,
        start_factor: float = 0.01,
    ) -> None:
        if total_steps is None:
            raise ValueError(
                "WarmupCosineLR needs total_steps (the training module fills it in from the "
                "trainer; set scheduler.total_steps when building it by hand)"
            )
        factor = WarmupCosineFactor(warmup_steps, total_steps, min_factor, start_factor)
        super().__init__(optimizer, lr_lambda=factor)


def wants_total_steps(factory: Callable[..., Any]) -> bool:
    """Whether a (partial) scheduler factory takes ``total_steps`` not yet given.

    >>> from functools import partial
    >>> wants_total_steps(partial(WarmupCosineLR, warmup_steps=5))
    True
    >>> wants_total_steps(partial(WarmupCosineLR, total_steps=50))
    False
    >>> wants_total_steps(partial(torch.optim.lr_scheduler.LinearLR, total_iters=5))
    False
    """
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    if "total_steps" not in parameters:
        return False
    given = getattr(factory, "keywords", None) or {}
    return given.get("total_steps") is None


def make_scheduler(
    factory: Callable[..., Any],
    optimizer: torch.optim.Optimizer,
    total_steps: Callable[[], int],
) -> Any:
    """``factory(optimizer)``, with ``total_steps=total_steps()`` added when the factory
    wants it. ``total_steps`` is called only then: the trainer's estimate sets up the
    training DataLoader, which a schedule that does not need it must not disturb (a
    mid-epoch resume restores the loader's position)."""
    if wants_total_steps(factory):
        steps = int(total_steps())
        try:
            return factory(optimizer=optimizer, total_steps=steps)
        except ValueError as err:  # e.g. a warm-up longer than a short run
            # The schedule's own message names its setting; this adds where the step
            # count came from, which only the trainer knows.
            raise ConfigError(
                f"scheduler: {err}; the run has {steps} optimizer steps (trainer.max_epochs "
                "x batches an epoch)"
            ) from err
    return factory(optimizer=optimizer)
