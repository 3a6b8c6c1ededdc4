"""Build the synthetic soundscape sets a data module reads (the seed method's strong data)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sed_lightning.data.datasets import SetSource
from sed_lightning.data.procedural import build_event_bank
from sed_lightning.data.sources import EventBank
from sed_lightning.data.synthesis import SetSpec, SoundscapeConfig, synthesize_dataset

log = logging.getLogger(__name__)

LABEL_FILE = {"strong": "strong.tsv", "weak": "weak.tsv", "unlabeled": None}


class SoundscapeBuilder:
    """Synthesizes soundscape sets from event sources (cached) and says where they are.

    Args:
        out_dir: where the sets are written (one folder each).
        class_names: the classes the experiment expects; the event bank must match.
        sets: per set name: ``kind``, ``source_split``, ``n_clips``, ``seed``.
        soundscape: :class:`~sed_lightning.data.synthesis.SoundscapeConfig` fields.
        events_dir: folder of real isolated events with a ``metadata.csv``; ``None``
            generates the built-in procedural bank into ``bank_dir``.
        bank_dir: where the procedural bank goes.
        bank_per_class: procedural sources per class.
        bank_seed: seed of the procedural bank.
    """

    def __init__(
        self,
        out_dir: str,
        class_names: Sequence[str],
        sets: Mapping[str, Mapping[str, Any]],
        soundscape: Mapping[str, Any],
        events_dir: str | None = None,
        bank_dir: str | None = None,
        bank_per_class: int = 40,
        bank_seed: int = 0,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.class_names = list(class_names)
        self.specs = [SetSpec(name=name, **dict(spec)) for name, spec in sets.items()]
        self.soundscape = SoundscapeConfig(**{k: _plain(v) for k, v in soundscape.items()})
        self.events_dir = events_dir
        self.bank_dir = bank_dir
        self.bank_per_class = bank_per_class
        self.bank_seed = bank_seed

    def bank(self) -> EventBank:
        if self.events_dir is None:
            if self.bank_dir is None:
                raise ValueError("SoundscapeBuilder needs events_dir or bank_dir")
            root = build_event_bank(
                self.bank_dir,
                class_names=self.class_names,
                n_per_class=self.bank_per_class,
                seed=self.bank_seed,
                sample_rate=self.soundscape.sample_rate,
            )
        else:
            root = Path(self.events_dir)
            if not (root / "metadata.csv").is_file():
                raise FileNotFoundError(f"no metadata.csv in events_dir {root}")
        bank = EventBank(root, sample_rate=self.soundscape.sample_rate)
        if sorted(bank.class_names) != sorted(self.class_names):
            raise ValueError(
                f"event bank {root} has classes {bank.class_names}, "
                f"but data.class_names is {self.class_names}"
            )
        return bank

    def build(self) -> dict[str, SetSource]:
        """Synthesize every set (reusing cached ones) and return where they are."""
        synthesize_dataset(self.out_dir, self.bank(), self.specs, self.soundscape)
        log.info("soundscape sets in %s", self.out_dir)
        return self.sources()

    def sources(self) -> dict[str, SetSource]:
        """Where each set is (whether or not it has been built yet)."""
        out = {}
        for spec in self.specs:
            folder = self.out_dir / spec.name
            label_file = LABEL_FILE[spec.kind]
            out[spec.name] = SetSource(
                kind=spec.kind,
                audio_dir=str(folder / "audio"),
                labels=str(folder / label_file) if label_file else None,
                durations=str(folder / "durations.tsv"),
            )
        return out


def _plain(value: Any) -> Any:
    """OmegaConf lists -> tuples (dataclass fields typed as tuples)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(value)
    return value
