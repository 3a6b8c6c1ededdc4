"""What a synthesised set is made of: the mixing config and the set spec, both validated.

:class:`SoundscapeConfig` says how clips are mixed; :class:`SetSpec` names one set (its
kind, source split(s), size, seed) and the config fields it changes. Both normalise their
fields when made, so equal settings hash equally in the set cache (:mod:`~.set_cache`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from sed_lightning.common import plain
from sed_lightning.data.batch import KINDS
from sed_lightning.data.distractors import Distractors
from sed_lightning.data.procedural import (
    generate_ambience,
    generate_background,
    generate_textures,
)
from sed_lightning.data.sources import SPLITS, EventBank, EventSource, per_class_subset
from sed_lightning.data.variation import BackgroundVariation, EventVariation

__all__ = ["PROCEDURAL_BACKGROUNDS", "BackgroundFn", "SetSpec", "SoundscapeConfig"]

BackgroundFn = Callable[[float, np.random.Generator, int], np.ndarray]
#: ``SoundscapeConfig.procedural_background`` -> generator.
PROCEDURAL_BACKGROUNDS: dict[str, BackgroundFn] = {
    "coloured": generate_background,
    "ambience": generate_ambience,
    "textures": generate_textures,
}


@dataclass
class SoundscapeConfig:
    """How clips are mixed.

    Attributes
    ----------
    clip_duration
        Seconds per clip.
    sample_rate
        Hz; must equal the event bank's.
    min_events, max_events
        Number of events per clip, drawn uniformly in ``[min_events, max_events]``.
    ebr_db
        Event-to-background ratio range (dB), drawn uniformly per event: event RMS
        over its extent vs background RMS over the same extent.
    allow_overlap
        Whether events may overlap in time.
    max_event_duration
        Seconds; sources longer than this (or than the clip) are cut into equal pieces
        that fit, each piece being a candidate event. ``None``: the clip length.
    ebr_levels
        If given, each clip draws one of these EBRs (dB) for all its events instead of
        ``ebr_db`` per event: DCASE 2016 Task 2 mixed at -6, 0 and +6 dB.
    procedural_background
        Generated background: ``coloured`` (coloured noise with a slow wander),
        ``ambience`` (plus hum, ventilation, distant babble, level drift) or ``textures``
        (ambience plus gusts, crackle and bubbles: non-stationary, outdoor-like); see
        :data:`PROCEDURAL_BACKGROUNDS`.
    recorded_share
        Share of clips (0..1) over a piece of a recorded background of the set's split
        instead of a generated one (needs recorded backgrounds).
    variation
        Per-event gain, pitch shift, time stretch, EQ and reverb
        (:class:`~.variation.EventVariation`; a dict of its fields is accepted).
    background_variation
        Per-clip playback rate, EQ and reversal of the background, and a generated
        ambience under a recorded one (:class:`~.variation.BackgroundVariation`; a dict
        of its fields is accepted).
    distractors
        Per-clip non-target events mixed in without a label
        (:class:`~.distractors.Distractors`; a dict of its fields is accepted).
    """

    clip_duration: float = 10.0
    sample_rate: int = 16000
    min_events: int = 1
    max_events: int = 3
    ebr_db: tuple[float, float] = (6.0, 15.0)
    allow_overlap: bool = True
    max_event_duration: float | None = None
    ebr_levels: tuple[float, ...] | None = None
    procedural_background: str = "coloured"
    recorded_share: float = 0.0
    variation: EventVariation = dataclasses.field(default_factory=EventVariation)
    background_variation: BackgroundVariation = dataclasses.field(
        default_factory=BackgroundVariation
    )
    distractors: Distractors = dataclasses.field(default_factory=Distractors)

    def __post_init__(self) -> None:
        # Normalise types (e.g. Hydra lists, ints for floats) so manifests hash stably.
        self.clip_duration = float(self.clip_duration)
        self.sample_rate, self.min_events = int(self.sample_rate), int(self.min_events)
        self.max_events, self.allow_overlap = int(self.max_events), bool(self.allow_overlap)
        self.ebr_db = (float(self.ebr_db[0]), float(self.ebr_db[1]))
        if self.max_event_duration is not None:
            self.max_event_duration = float(self.max_event_duration)
        if self.clip_duration <= 0 or self.sample_rate <= 0:
            raise ValueError("clip_duration and sample_rate must be positive")
        if not 0 <= self.min_events <= self.max_events:
            raise ValueError(f"need 0 <= min_events <= max_events, got {self}")
        if self.ebr_db[0] > self.ebr_db[1]:
            raise ValueError(f"ebr_db must be (low, high), got {self.ebr_db}")
        if self.max_event_duration is not None and self.max_event_duration <= 0:
            raise ValueError(f"max_event_duration must be positive, got {self.max_event_duration}")
        if self.ebr_levels is not None:
            self.ebr_levels = tuple(float(v) for v in self.ebr_levels)
            if not self.ebr_levels:
                raise ValueError("ebr_levels must list at least one level (or be null)")
        if self.procedural_background not in PROCEDURAL_BACKGROUNDS:
            raise ValueError(
                f"procedural_background {self.procedural_background!r} not in"
                f" {list(PROCEDURAL_BACKGROUNDS)}"
            )
        self.recorded_share = float(self.recorded_share)
        if not 0.0 <= self.recorded_share <= 1.0:
            raise ValueError(f"recorded_share must be in [0, 1], got {self.recorded_share}")
        if isinstance(self.variation, Mapping):
            self.variation = EventVariation(**dict(self.variation))
        if isinstance(self.background_variation, Mapping):
            self.background_variation = BackgroundVariation(**dict(self.background_variation))
        if isinstance(self.distractors, Mapping):
            self.distractors = Distractors(**dict(self.distractors))

    @property
    def n_samples(self) -> int:
        """Samples per clip."""
        return int(round(self.clip_duration * self.sample_rate))

    @property
    def max_piece_samples(self) -> int:
        """Longest candidate event, in samples."""
        if self.max_event_duration is None:
            return self.n_samples
        return min(self.n_samples, int(round(self.max_event_duration * self.sample_rate)))


@dataclass
class SetSpec:
    """One synthesised set.

    Attributes
    ----------
    name
        Folder name and clip-name prefix, e.g. ``"train_strong"``.
    kind
        Label file the set exposes: ``"strong"``, ``"weak"`` or ``"unlabeled"``.
    source_split
        Event-bank split(s) feeding it. ``"test"`` cannot be combined with other
        splits, so test sources never mix into training or validation sets.
    n_clips
        Number of clips.
    seed
        Clip ``k`` depends only on ``(seed, k)``, the sources and the config.
    soundscape
        :class:`SoundscapeConfig` fields this set changes (e.g. test sets at fixed
        ``ebr_levels`` while training draws a range); ``None``: the shared config.
    sources_per_class
        Use only this many ``train`` sources of each class, drawn with
        ``sources_seed`` (:func:`~.sources.per_class_subset`): learning curves over the
        number of recordings a class has. ``None``: every source of the split(s).
    sources_seed
        Seed of that draw.
    """

    name: str
    kind: str
    source_split: str | list[str]
    n_clips: int
    seed: int
    soundscape: dict | None = None
    sources_per_class: int | None = None
    sources_seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"set {self.name!r}: kind {self.kind!r} not in {list(KINDS)}")
        self.n_clips, self.seed = int(self.n_clips), int(self.seed)
        if not isinstance(self.source_split, str):
            self.source_split = [str(s) for s in self.source_split]
        splits = [self.source_split] if isinstance(self.source_split, str) else self.source_split
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown or not splits:
            raise ValueError(f"set {self.name!r}: bad source split(s) {splits}; known {SPLITS}")
        if "test" in splits and len(set(splits)) > 1:
            raise ValueError(f"set {self.name!r}: test sources cannot be mixed with {splits}")
        if self.n_clips < 0:
            raise ValueError(f"set {self.name!r}: n_clips must be >= 0")
        if self.sources_per_class is not None:
            self.sources_per_class = int(self.sources_per_class)
            if self.sources_per_class < 1:
                raise ValueError(f"set {self.name!r}: sources_per_class must be >= 1 or null")
        self.sources_seed = int(self.sources_seed)
        if self.soundscape is not None:
            self.soundscape = plain(self.soundscape)
            unknown = set(self.soundscape) - {f.name for f in dataclasses.fields(SoundscapeConfig)}
            if unknown:
                raise ValueError(f"set {self.name!r}: unknown soundscape key(s) {sorted(unknown)}")

    def config(self, base: SoundscapeConfig) -> SoundscapeConfig:
        """``base`` with this set's soundscape changes (variation dicts are merged)."""
        if not self.soundscape:
            return base
        changes = dict(self.soundscape)
        for key in ("variation", "background_variation", "distractors"):
            if key in changes:
                changes[key] = {**dataclasses.asdict(getattr(base, key)), **changes[key]}
        return dataclasses.replace(base, **changes)

    def sources(self, bank: EventBank) -> list[EventSource]:
        """The sources feeding this set: its split(s) of ``bank``, per-class subset applied."""
        sources = bank.sources(self.splits)
        if self.sources_per_class is None:
            return sources
        try:
            return per_class_subset(sources, self.sources_per_class, self.sources_seed)
        except ValueError as err:
            raise ValueError(f"set {self.name!r}: {err}") from None

    @property
    def splits(self) -> list[str]:
        """``source_split`` as a list of unique split names, in train/validation/test order."""
        splits = [self.source_split] if isinstance(self.source_split, str) else self.source_split
        return sorted(set(splits), key=SPLITS.index)
