"""Batch sampler yielding a fixed count of each kind (strong / weak / unlabeled) per batch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler


class MixedKindBatchSampler(Sampler[list[int]]):
    """Each batch holds ``batch_sizes[kind]`` clips of every kind.

    Each kind walks through its own reshuffled permutation and starts a new one when it
    runs out, so small sets cycle while the largest one is seen once per epoch (the
    epoch length is set by the kind needing the most batches, or by ``n_batches``).
    Under DDP every rank takes a disjoint share of each permutation.

    Args:
        groups: dataset indices of each kind.
        batch_sizes: clips of each kind per batch (per rank); 0 leaves a kind out.
        seed: base seed; the order also depends on the epoch (:meth:`set_epoch`).
        n_batches: batches per epoch; default one pass over the largest kind.
        num_replicas, rank: DDP layout; default from ``torch.distributed`` if initialized.

    Example:
        >>> s = MixedKindBatchSampler({"strong": [0, 1, 2, 3], "weak": [4, 5]},
        ...                           {"strong": 2, "weak": 1}, seed=0)
        >>> batches = list(s)
        >>> len(batches), [sum(i < 4 for i in b) for b in batches]
        (2, [2, 2])
    """

    def __init__(
        self,
        groups: Mapping[str, Sequence[int]],
        batch_sizes: Mapping[str, int],
        seed: int = 0,
        n_batches: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        self.num_replicas = num_replicas or (dist.get_world_size() if distributed else 1)
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self.batch_sizes = {k: int(n) for k, n in batch_sizes.items() if int(n) > 0}
        if not self.batch_sizes:
            raise ValueError(f"batch_sizes has no kind with a positive size: {dict(batch_sizes)}")
        for kind in self.batch_sizes:
            if len(groups.get(kind, ())) < self.num_replicas:
                raise ValueError(
                    f"batch_sizes asks for {kind!r} clips but the training sets hold "
                    f"{len(groups.get(kind, ()))} of that kind"
                )
        self.groups = {k: np.asarray(groups[k]) for k in self.batch_sizes}
        self.seed = seed
        self.epoch = 0
        self.n_batches = n_batches or max(
            math.ceil(len(self.groups[k]) / (n * self.num_replicas))
            for k, n in self.batch_sizes.items()
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _stream(self, kind: str, rng: np.random.Generator) -> Iterator[int]:
        indices = self.groups[kind]
        while True:
            yield from rng.permutation(indices)[self.rank :: self.num_replicas].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        streams = {
            k: self._stream(k, np.random.default_rng(rng.integers(2**63))) for k in self.groups
        }
        for _ in range(self.n_batches):
            yield [next(streams[k]) for k, n in self.batch_sizes.items() for _ in range(n)]

    def __len__(self) -> int:
        return self.n_batches
