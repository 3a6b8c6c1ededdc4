"""Samplers: the mixed-kind training batch sampler (resumable mid-epoch) and a non-padding
evaluation sampler for DDP."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Sampler


def _dist_layout(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``(num_replicas, rank)``: the given values, else ``torch.distributed``'s, else ``(1, 0)``."""
    distributed = dist.is_available() and dist.is_initialized()
    num_replicas = num_replicas or (dist.get_world_size() if distributed else 1)
    rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
    return num_replicas, rank


class MixedKindBatchSampler(Sampler[list[int]]):
    """Each batch holds ``batch_sizes[kind]`` clips of every kind.

    Each kind walks through its own reshuffled permutation and starts a new one when it
    runs out, so small sets cycle while the largest one is seen once per epoch (the
    epoch length is set by the kind needing the most batches, or by ``n_batches``).
    Under DDP every rank takes a disjoint share of each permutation.

    The order depends only on ``(seed, epoch)``. Lightning calls :meth:`set_epoch` every
    epoch (it looks for ``loader.batch_sampler.sampler``, which is this sampler itself).
    :meth:`state_dict` / :meth:`load_state_dict` carry the epoch and the batches already
    consumed in it: after loading, the next iteration skips those batches (without loading
    them), so a run resumed from a mid-epoch checkpoint sees exactly the batches it had
    left (see :class:`ResumableDataLoader`, which tracks the consumed count).

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
        >>> s.load_state_dict({"epoch": 0, "batches_done": 1})  # resume after batch 0
        >>> list(s) == batches[1:]
        True
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
        self.num_replicas, self.rank = _dist_layout(num_replicas, rank)
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
        # called with the epoch when its iteration starts (online soundscapes' set_epoch)
        self.epoch_listeners: list[Callable[[int], None]] = []
        # batches of `epoch` to skip at the next iteration (set by load_state_dict)
        self.start_batch = 0
        self.n_batches = n_batches or max(
            math.ceil(len(self.groups[k]) / (n * self.num_replicas))
            for k, n in self.batch_sizes.items()
        )

    @property
    def sampler(self) -> MixedKindBatchSampler:
        """This sampler: Lightning calls ``set_epoch`` on ``loader.batch_sampler.sampler``."""
        return self

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start_batch = 0  # a pending resume position belongs to the loaded epoch only
        self.epoch = epoch

    def state_dict(self, batches_done: int = 0) -> dict[str, int]:
        """The position ``{"epoch", "batches_done"}`` (``batches_done`` from the loader)."""
        return {"epoch": int(self.epoch), "batches_done": int(batches_done)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at ``state``: a finished epoch resumes at the start of the next one."""
        epoch, done = int(state["epoch"]), int(state.get("batches_done", 0))
        if done >= self.n_batches:
            epoch, done = epoch + 1, 0
        self.epoch, self.start_batch = epoch, done

    def _stream(self, kind: str, rng: np.random.Generator) -> Iterator[int]:
        indices = self.groups[kind]
        while True:
            yield from rng.permutation(indices)[self.rank :: self.num_replicas].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        start, self.start_batch = self.start_batch, 0
        for listener in self.epoch_listeners:
            listener(self.epoch)
        rng = np.random.default_rng([self.seed, self.epoch])
        streams = {
            k: self._stream(k, np.random.default_rng(rng.integers(2**63))) for k in self.groups
        }
        for i in range(self.n_batches):
            batch = [next(streams[k]) for k, n in self.batch_sizes.items() for _ in range(n)]
            if i >= start:
                yield batch

    def __len__(self) -> int:
        return self.n_batches


class _CountingIterator:
    """Wraps a DataLoader iterator and counts the batches it hands out."""

    def __init__(self, iterator: Iterator, loader: ResumableDataLoader) -> None:
        self.iterator = iterator
        self.loader = loader

    def __iter__(self) -> _CountingIterator:
        return self

    def __next__(self) -> Any:
        batch = next(self.iterator)
        self.loader._batches_done += 1
        return batch

    def __len__(self) -> int:
        return len(self.iterator)


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position inside the epoch is saved in Lightning checkpoints.

    Lightning stores ``state_dict()`` of every training DataLoader that has one (in the
    fit loop's state) and calls ``load_state_dict()`` on resume, after the loader is built
    and before it is iterated. The state is the batch sampler's epoch plus the number of
    batches this loader has handed out in it, so a mid-epoch checkpoint resumes at the next
    batch and an end-of-epoch one at the start of the next epoch, with any number of
    workers (workers prefetch indices, so the sampler cannot count consumed batches itself).
    The batch sampler must have ``epoch``, ``start_batch`` and ``load_state_dict`` like
    :class:`MixedKindBatchSampler`.

    Why not torchdata's ``StatefulDataLoader`` (which Lightning also resumes): tried with
    torchdata 0.11.0, its last release (Feb 2025), under torch 2.14 — it does not capture
    this batch sampler's position (a loader restored after 2 of 10 batches handed out all
    10 again, with 0 and 2 workers), it warns that ``torch.set_vital`` is deprecated, and
    making the sampler fit its snapshot protocol would tie resumes to a package in
    maintenance. This class is ~40 lines and the resume tests (kill -9 mid-epoch, with
    workers) pin its behaviour.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches_done = 0
        self._epoch = int(getattr(self.batch_sampler, "epoch", 0))

    def __iter__(self) -> _CountingIterator:
        # The batches a pending resume skips count as done; the epoch is the one iterated.
        self._epoch = int(getattr(self.batch_sampler, "epoch", 0))
        self._batches_done = int(getattr(self.batch_sampler, "start_batch", 0))
        return _CountingIterator(super().__iter__(), self)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches_done": self._batches_done}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.batch_sampler.load_state_dict(state)
        self._epoch = int(self.batch_sampler.epoch)
        self._batches_done = int(self.batch_sampler.start_batch)


class EvalShardSampler(DistributedSampler):
    """Rank ``r`` of ``n`` takes items ``r, r + n, r + 2n, ...``: every item exactly once.

    Unlike ``DistributedSampler`` it never pads (no item is repeated to even out the
    ranks), so the ranks' shares are disjoint and their union is the whole set; shares
    differ by at most one item. Every rank must get at least one item (a rank with an empty
    loader would skip the evaluation loop and the others would wait for it forever).
    It is a ``DistributedSampler`` subclass so that Lightning, when it injects distributed
    samplers (``use_distributed_sampler=True``), leaves it as it is.

    Args:
        n_items: dataset length.
        num_replicas, rank: DDP layout; default from ``torch.distributed`` if initialized.

    Example:
        >>> [list(EvalShardSampler(5, num_replicas=2, rank=r)) for r in range(2)]
        [[0, 2, 4], [1, 3]]
    """

    def __init__(
        self, n_items: int, num_replicas: int | None = None, rank: int | None = None
    ) -> None:
        # DistributedSampler.__init__ is not called: it needs a dataset and pads
        self.num_replicas, self.rank = _dist_layout(num_replicas, rank)
        if n_items < self.num_replicas:
            raise ValueError(
                f"an evaluation set of {n_items} clip(s) cannot be shared by "
                f"{self.num_replicas} processes: every process needs at least one clip"
            )
        self.n_items = n_items
        self.epoch = 0
        self.shuffle = False
        self.drop_last = False
        self.num_samples = len(range(self.rank, n_items, self.num_replicas))
        self.total_size = n_items

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n_items, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples
