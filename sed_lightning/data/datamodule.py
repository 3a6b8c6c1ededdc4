"""LightningDataModule mixing strong, weak and unlabeled clips in every training batch."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import ConcatDataset, DataLoader

from sed_lightning.data.bad_files import ON_BAD_FILE, enforce, write_skipped
from sed_lightning.data.batch import SEDBatch
from sed_lightning.data.builders import SoundscapeBuilder
from sed_lightning.data.datasets import SEDDataset, SetSource, kind_groups
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.data.online import BUILDER_FILE, OnlineSoundscapes
from sed_lightning.data.sampler import (
    EvalShardSampler,
    MixedKindBatchSampler,
    ResumableDataLoader,
)
from sed_lightning.data.validation import ValidationReport, validate_set

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
        pin_memory: page-locked batches (faster copies to a GPU).
        seed: sampler seed.
        n_batches: training batches per epoch (default: one pass over the largest kind).
        on_bad_file: what a clip with a problem (unreadable/empty/NaN audio, missing
            file, bad label row, onset past the audio's end) does: ``raise`` — one
            :class:`~sed_lightning.data.validation.DataValidationError` listing every
            problem of every set; ``skip`` — the clip is left out and listed in
            ``output_dir/skipped.tsv``. Problems of a whole set always raise.
        output_dir: the run dir, for ``skipped.tsv`` / ``validation_errors.tsv``
            (``None``: nothing written).

    Every set a stage uses is validated (labels and a full decode of its audio, see
    :mod:`sed_lightning.data.validation`) in :meth:`setup`, before any DataLoader
    exists; ``fit`` also validates the test set, so its problems show before training.
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
        pin_memory: bool = False,
        seed: int = 0,
        n_batches: int | None = None,
        on_bad_file: str = "raise",
        output_dir: str | None = None,
    ) -> None:
        super().__init__()
        if on_bad_file not in ON_BAD_FILE:
            raise ValueError(f"on_bad_file must be one of {ON_BAD_FILE}, got {on_bad_file!r}")
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
        unknown = [n for n in needed if n not in self.sources and not self._online(n)]
        if unknown:
            raise ValueError(
                f"data sets {unknown} are not defined; defined: {sorted(self.sources)}"
            )
        self.sample_rate = sample_rate
        self.clip_duration = clip_duration
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.n_batches = n_batches
        self.on_bad_file = on_bad_file
        self.output_dir = output_dir
        self.reports: dict[str, ValidationReport] = {}
        self.skipped: list[dict] = []
        self.datasets: dict[str, SEDDataset] = {}

    def _online(self, name: str) -> bool:
        """Whether set ``name`` is rendered on the fly by the synthesis builder."""
        return (
            self.synthesis is not None
            and name not in self.sources
            and name in {s.name for s in self.synthesis.specs}
            and self.synthesis.is_online(name)
        )

    def prepare_data(self) -> None:
        if self.synthesis is not None:
            self.synthesis.build()

    def validate(self, names: Sequence[str]) -> None:
        """Validate the sets ``names`` not validated yet, then apply ``on_bad_file``.

        Raises
        ------
        DataValidationError
            Every problem of these sets (``raise``), or those ``skip`` cannot skip.
        """
        todo = [n for n in dict.fromkeys(names) if n not in self.reports and not self._online(n)]
        if not todo:
            return
        reports = {
            name: validate_set(
                self.sources[name], self.class_names, self.sample_rate, self.clip_duration, name
            )
            for name in todo
        }
        write = self.output_dir is not None and rank_zero_only.rank == 0
        skipped = enforce(reports, self.on_bad_file, self.output_dir, write=write)
        self.reports.update(reports)
        if self.on_bad_file != "skip":
            return
        self.skipped.extend(skipped)
        where = ""
        if write:
            where = f"; listed in {write_skipped(self.skipped, self.output_dir)}"
        counts = ", ".join(f"{n}: {len(reports[n].bad_clips)}" for n in todo)
        level = logging.WARNING if skipped else logging.INFO
        log.log(level, "on_bad_file=skip: %d clip(s) skipped (%s)%s", len(skipped), counts, where)
        if not write:  # no skipped.tsv: say which in the log
            for row in skipped[:10]:
                log.warning("skipped %s/%s: %s", row["set"], row["filename"], row["reason"])
            if len(skipped) > 10:
                log.warning("... and %d more skipped clip(s)", len(skipped) - 10)

    def dataset(self, name: str) -> SEDDataset:
        """The dataset called ``name`` (validated and built on first use)."""
        if name not in self.datasets and self._online(name):
            recipe_dir = None
            if self.output_dir is not None:
                recipe_dir = Path(self.output_dir) / "recipes"
                if rank_zero_only.rank == 0:
                    recipe_dir.mkdir(parents=True, exist_ok=True)
                    (recipe_dir / BUILDER_FILE).write_text(
                        json.dumps(self.synthesis.settings, indent=2) + "\n"
                    )
            self.datasets[name] = OnlineSoundscapes.from_builder(
                self.synthesis, name, self.encoder, recipe_dir
            )
            log.info("%s: %d clips rendered anew every epoch", name, len(self.datasets[name]))
        if name not in self.datasets:
            self.validate([name])
            self.datasets[name] = SEDDataset(
                self.sources[name],
                self.encoder,
                self.sample_rate,
                self.clip_duration,
                report=self.reports[name],
            )
            log.info("%s: %d %s clips", name, len(self.datasets[name]), self.datasets[name].kind)
        return self.datasets[name]

    def setup(self, stage: str | None = None) -> None:
        names = {
            "fit": [*self.train_sets, self.val_set, self.test_set],
            "validate": [self.val_set],
            "test": [self.test_set],
            None: [*self.train_sets, self.val_set, self.test_set],
        }.get(stage, [])
        self.validate(names)  # every set of the stage at once: one error lists all problems
        for name in names:
            self.dataset(name)
        self.write_set_summary()

    def set_summary(self) -> dict[str, dict[str, Any]]:
        """``name -> {kind, n_clips, training}`` of the sets built so far."""
        return {
            name: {"kind": ds.kind, "n_clips": len(ds), "training": name in self.train_sets}
            for name, ds in self.datasets.items()
        }

    def write_set_summary(self) -> None:
        """``<output_dir>/data_sets.json``: what this run trained and evaluated on."""
        if self.output_dir is None or rank_zero_only.rank != 0:
            return
        path = Path(self.output_dir) / "data_sets.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.set_summary(), indent=2) + "\n")

    def _loader(self, dataset, loader_cls: type[DataLoader] = DataLoader, **kwargs) -> DataLoader:
        return loader_cls(
            dataset,
            collate_fn=SEDBatch.collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        parts = [self.dataset(name) for name in self.train_sets]
        sampler = MixedKindBatchSampler(
            kind_groups(parts), self.batch_sizes, seed=self.seed, n_batches=self.n_batches
        )
        # online soundscapes render the epoch the sampler is on
        sampler.epoch_listeners = [p.set_epoch for p in parts if hasattr(p, "set_epoch")]
        # ResumableDataLoader: Lightning saves/restores its position (mid-epoch resume)
        return self._loader(
            ConcatDataset(parts), loader_cls=ResumableDataLoader, batch_sampler=sampler
        )

    def _eval_loader(self, name: str) -> DataLoader:
        """Under DDP each process scores its own share of the clips, every clip once."""
        dataset = self.dataset(name)
        return self._loader(
            dataset, batch_size=self.eval_batch_size, sampler=EvalShardSampler(len(dataset))
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
