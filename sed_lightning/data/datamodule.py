"""LightningDataModule mixing strong, weak and unlabeled clips in every training batch."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
from torch.utils.data import ConcatDataset, DataLoader

from sed_lightning.data.batch import SEDBatch
from sed_lightning.data.builders import SoundscapeBuilder
from sed_lightning.data.datasets import SEDDataset, SetSource, kind_groups
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.data.sampler import MixedKindBatchSampler

log = logging.getLogger(__name__)


class SEDDataModule(L.LightningDataModule):
    """Training batches with a fixed count of each kind; validation/test clip by clip.

    Args:
        class_names: ordered event classes.
        label_encoder: frame grid of the model (built by the entry point from the model).
        batch_sizes: clips of each kind per training batch, e.g.
            ``{"strong": 12, "weak": 12, "unlabeled": 0}``.
        train_sets: names of the sets mixed for training.
        val_set: name of the validation set (strong labels).
        test_set: name of the test set (strong labels).
        sets: ``name -> {kind, audio_dir, labels, durations}`` for user (DESED) data;
            merged over the sets the ``synthesis`` builder makes.
        synthesis: builder that synthesizes sets in :meth:`prepare_data` (``None`` for
            user data that already exists).
        events_dir: the isolated event recordings the builder synthesizes from (``None``:
            the built-in procedural bank); the builder reads it, it is kept for the record.
        sample_rate: audio is resampled to this rate.
        clip_duration: clip length in seconds (pad/crop).
        eval_batch_size: batch size of validation/test/predict loaders.
        num_workers: DataLoader workers.
        seed: sampler seed.
        n_batches: training batches per epoch (default: one pass over the largest kind).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        label_encoder: LabelEncoder,
        batch_sizes: Mapping[str, int],
        train_sets: Sequence[str] = ("train_strong", "train_weak"),
        val_set: str = "validation",
        test_set: str = "test",
        sets: Mapping[str, Mapping[str, Any]] | None = None,
        synthesis: SoundscapeBuilder | None = None,
        events_dir: str | None = None,
        sample_rate: int = 16000,
        clip_duration: float = 10.0,
        eval_batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        n_batches: int | None = None,
    ) -> None:
        super().__init__()
        if list(label_encoder.class_names) != list(class_names):
            raise ValueError("label_encoder.class_names differ from data.class_names")
        self.class_names = list(class_names)
        self.encoder = label_encoder
        self.batch_sizes = dict(batch_sizes)
        self.train_sets = list(train_sets)
        self.val_set = val_set
        self.test_set = test_set
        self.synthesis = synthesis
        self.events_dir = events_dir
        self.sources: dict[str, SetSource] = synthesis.sources() if synthesis else {}
        self.sources.update({k: SetSource(**dict(v)) for k, v in (sets or {}).items()})
        needed = [*self.train_sets, val_set, test_set]
        unknown = [name for name in needed if name not in self.sources]
        if unknown:
            raise ValueError(
                f"data sets {unknown} are not defined; defined: {sorted(self.sources)}"
            )
        self.sample_rate = sample_rate
        self.clip_duration = clip_duration
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.n_batches = n_batches
        self.datasets: dict[str, SEDDataset] = {}

    def prepare_data(self) -> None:
        if self.synthesis is not None:
            self.synthesis.build()

    def dataset(self, name: str) -> SEDDataset:
        """The dataset called ``name`` (built on first use)."""
        if name not in self.datasets:
            self.datasets[name] = SEDDataset(
                self.sources[name], self.encoder, self.sample_rate, self.clip_duration
            )
            log.info("%s: %d %s clips", name, len(self.datasets[name]), self.datasets[name].kind)
        return self.datasets[name]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            for name in [*self.train_sets, self.val_set]:
                self.dataset(name)
        if stage in (None, "fit", "validate"):
            self.dataset(self.val_set)
        if stage in (None, "test"):
            self.dataset(self.test_set)

    def _loader(self, dataset, **kwargs) -> DataLoader:
        return DataLoader(
            dataset,
            collate_fn=SEDBatch.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        parts = [self.dataset(name) for name in self.train_sets]
        sampler = MixedKindBatchSampler(
            kind_groups(parts), self.batch_sizes, seed=self.seed, n_batches=self.n_batches
        )
        return self._loader(ConcatDataset(parts), batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.val_set), batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.test_set), batch_size=self.eval_batch_size)
