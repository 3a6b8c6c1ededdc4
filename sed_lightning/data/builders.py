"""Build the synthetic soundscape sets a data module reads (the seed method's strong data)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sed_lightning.common import plain
from sed_lightning.data.backgrounds import BackgroundBank
from sed_lightning.data.datasets import SetSource
from sed_lightning.data.procedural_bank import build_event_bank
from sed_lightning.data.recipes import ClipMaker
from sed_lightning.data.set_spec import PROCEDURAL_BACKGROUNDS, SetSpec, SoundscapeConfig
from sed_lightning.data.sources import EventBank
from sed_lightning.data.synthesis import synthesize_dataset

log = logging.getLogger(__name__)

LABEL_FILE = {"strong": "strong.tsv", "weak": "weak.tsv", "unlabeled": None}


class SoundscapeBuilder:
    """Synthesizes soundscape sets from event sources (cached) and says where they are.

    Args:
        out_dir: where the sets are written (one folder each).
        class_names: the classes the experiment expects; the event bank must match.
        sets: per set name: ``kind``, ``source_split``, ``n_clips``, ``seed``.
        soundscape: :class:`~sed_lightning.data.set_spec.SoundscapeConfig` fields.
        events_dir: folder of real isolated events with a ``metadata.csv``; ``None``
            generates the built-in procedural bank into ``bank_dir``.
        bank_dir: where the procedural bank goes.
        bank_per_class: procedural sources per class.
        bank_seed: seed of the procedural bank.
        backgrounds_dir: folder of recorded backgrounds with a per-file split in its
            ``metadata.csv`` (:class:`~sed_lightning.data.backgrounds.BackgroundBank`);
            ``soundscape.recorded_share`` of the clips use it. ``None``: generated only.
        online: render the sets fed by ``train`` sources anew every epoch
            (:meth:`~sed_lightning.data.online.OnlineSoundscapes.from_builder`) instead of writing
            them once; validation and test sets stay fixed files.
        sources_per_class: every set fed by ``train`` sources uses only this many of
            each class's train sources, drawn with ``sources_seed`` (a learning curve over
            the number of recordings a class has; a set's own ``sources_per_class``
            wins). ``None``: all of them. Validation and test sets are never subset.
        sources_seed: seed of that draw.
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
        backgrounds_dir: str | None = None,
        online: bool = False,
        sources_per_class: int | None = None,
        sources_seed: int = 0,
    ) -> None:
        self.settings = {
            "out_dir": str(out_dir),
            "class_names": list(class_names),
            "sets": plain(sets),
            "soundscape": plain(soundscape),
            "events_dir": events_dir,
            "bank_dir": bank_dir,
            "bank_per_class": bank_per_class,
            "bank_seed": bank_seed,
            "backgrounds_dir": backgrounds_dir,
            "online": bool(online),
            "sources_per_class": sources_per_class,
            "sources_seed": sources_seed,
        }  # JSON-safe: how to build this builder again (see sed_lightning.data.online)
        self.out_dir = Path(out_dir)
        self.class_names = list(class_names)
        self.specs = [
            _with_subset(SetSpec(name=name, **dict(spec)), sources_per_class, sources_seed)
            for name, spec in sets.items()
        ]
        self.soundscape = SoundscapeConfig(**{k: _plain(v) for k, v in soundscape.items()})
        self.events_dir = events_dir
        self.bank_dir = bank_dir
        self.bank_per_class = bank_per_class
        self.bank_seed = bank_seed
        self.backgrounds_dir = backgrounds_dir
        self.online = bool(online)
        shares = [spec.config(self.soundscape).recorded_share for spec in self.specs]
        if max(shares, default=self.soundscape.recorded_share) > 0 and backgrounds_dir is None:
            raise ValueError("soundscape.recorded_share > 0 needs synthesis.backgrounds_dir")
        self._bank: EventBank | None = None

    def spec(self, name: str) -> SetSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError(f"no synthesized set {name!r}; sets: {[s.name for s in self.specs]}")

    def is_online(self, name: str) -> bool:
        """Whether set ``name`` is rendered on the fly (online and fed by train sources)."""
        return self.online and self.spec(name).splits == ["train"]

    def backgrounds(self) -> BackgroundBank | None:
        if self.backgrounds_dir is None:
            return None
        return BackgroundBank(self.backgrounds_dir, sample_rate=self.soundscape.sample_rate)

    def maker(self, name: str) -> ClipMaker:
        """The clip maker of set ``name`` (its sources and background split only)."""
        spec, bank = self.spec(name), self.bank()
        cfg = spec.config(self.soundscape)
        return ClipMaker(
            spec.sources(bank),
            bank,
            cfg,
            PROCEDURAL_BACKGROUNDS[cfg.procedural_background],
            self.backgrounds(),
            spec.splits,
        )

    def bank(self) -> EventBank:
        if self._bank is None:
            self._bank = self._make_bank()
        return self._bank

    def _make_bank(self) -> EventBank:
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
        """Synthesize every fixed set (reusing cached ones) and return where they are;
        online sets are only checked (their sources exist)."""
        for spec in self.specs:
            if self.is_online(spec.name) and not spec.sources(self.bank()):
                raise ValueError(f"set {spec.name!r}: no sources in split(s) {spec.splits}")
        fixed = [s for s in self.specs if not self.is_online(s.name)]
        synthesize_dataset(
            self.out_dir, self.bank(), fixed, self.soundscape, backgrounds=self.backgrounds()
        )
        log.info("soundscape sets in %s", self.out_dir)
        return self.sources()

    def sources(self) -> dict[str, SetSource]:
        """Where each set is (whether or not it has been built yet)."""
        out = {}
        for spec in self.specs:
            if self.is_online(spec.name):
                continue
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


def _with_subset(spec: SetSpec, sources_per_class: int | None, seed: int) -> SetSpec:
    """``spec`` with the builder-wide per-class subset, if it is fed by train sources and
    sets none of its own."""
    if sources_per_class is None or spec.sources_per_class is not None:
        return spec
    if "train" not in spec.splits:
        return spec
    return dataclasses.replace(spec, sources_per_class=sources_per_class, sources_seed=seed)
