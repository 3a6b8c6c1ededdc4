"""Random-number state that makes a resumed run continue exactly like an uninterrupted one."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def step_seed(seed: int, epoch: int, batch_idx: int, rank: int) -> int:
    """A 32-bit seed that depends only on ``(seed, epoch, batch_idx, rank)``.

    >>> step_seed(42, 0, 3, 0) == step_seed(42, 0, 3, 0) != step_seed(42, 0, 4, 0)
    True
    """
    return int(np.random.SeedSequence([seed, epoch, batch_idx, rank]).generate_state(1)[0])


def seed_all(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU + CUDA) generator states, as tensors and plain types
    (loadable with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


class ReproducibleRNG(L.Callback):
    """Makes training randomness a function of the position in training, not of history.

    * Before every training batch, python ``random``, numpy and torch are seeded from
      ``(seed, epoch, batch_idx, rank)`` (:func:`step_seed`): dropout masks (and anything
      else drawn in a step) are the same whether the run went straight through or was
      resumed from a checkpoint, wherever that checkpoint was taken (end of epoch or
      mid-epoch) and whatever else drew random numbers in between (validation, DataLoader
      iterators, ...).
    * The generator states are also saved in every checkpoint and restored on resume, so
      code running outside training steps continues from where it was.

    Args:
        seed: base seed (the run's ``seed``).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        seed_all(step_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank))

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rng": get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "rng" in state_dict:
            set_rng_state(state_dict["rng"])
