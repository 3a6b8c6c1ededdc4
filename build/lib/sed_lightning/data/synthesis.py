"""Synthetic soundscapes: isolated event sources placed over a background.

A clip is a background (e.g. :func:`~.procedural.generate_background`) plus a few
events drawn from an :class:`~.sources.EventBank` split, each scaled to a random
event-to-background ratio (EBR). Because the placement is known, the clip comes with
exact strong labels; dropping the times gives weak labels, dropping everything gives
unlabeled data.

Layout of one synthesised set (``out_root/<name>/``)::

    audio/<name>_<k:05d>.wav   16-bit PCM mono clips
    durations.tsv              filename, duration (every clip)
    truth.tsv                  full strong labels + source provenance; for analysis and
                               tests only, never read by training
    strong.tsv, weak.tsv       kind "strong": both (weak derived from strong)
    weak.tsv                   kind "weak": labels without times
                               kind "unlabeled": no label file
    recipes.jsonl              every random choice of each clip (re-renders it bit for bit)
    manifest.json              spec, config, bank, classes, hash; written last

TSV filenames are relative to ``audio/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from tqdm import tqdm

try:  # POSIX: shared "reading" locks guard a set in use against being rewritten
    import fcntl
except ImportError:  # pragma: no cover - Windows: no guard
    fcntl = None

from sed_lightning.common import plain
from sed_lightning.data.audio import save_audio
from sed_lightning.data.backgrounds import BackgroundBank
from sed_lightning.data.batch import KINDS
from sed_lightning.data.distractors import Distractors, render_distractors
from sed_lightning.data.procedural import (
    FADE_SECONDS,
    at_ebr,
    generate_ambience,
    generate_background,
    generate_textures,
)
from sed_lightning.data.sources import SPLITS, EventBank, EventSource, per_class_subset
from sed_lightning.data.tsv import (
    STRONG_COLUMNS,
    strong_to_weak,
    write_durations_tsv,
    write_strong_tsv,
    write_weak_tsv,
)
from sed_lightning.data.variation import (
    BackgroundVariation,
    EventVariation,
    apply_background_variation,
    apply_variation,
)

__all__ = [
    "KINDS",
    "PROCEDURAL_BACKGROUNDS",
    "ClipMaker",
    "clip_streams",
    "TRUTH_COLUMNS",
    "SetInUseError",
    "SetSpec",
    "SoundscapeConfig",
    "candidate_pieces",
    "synthesize_clip",
    "synthesize_dataset",
    "synthesize_set",
]

log = logging.getLogger(__name__)

#: truth.tsv columns: strong labels, then where each event came from.
TRUTH_COLUMNS = (*STRONG_COLUMNS, "source", "source_onset", "source_offset", "ebr_db")
LABEL_FILES = {"strong": ("strong.tsv", "weak.tsv"), "weak": ("weak.tsv",), "unlabeled": ()}
PEAK_LIMIT = 0.99
#: Bump when the synthesis changes, so cached sets are regenerated.
SYNTHESIS_VERSION = 3
_MAX_TRIES = 20  # candidate draws per event before giving up on a non-overlapping slot
# Events of the same class never overlap nor touch, even with allow_overlap: two overlapping
# "speech" labels are one ambiguous event (sed_eval and sed_scores_eval reject them). They
# stay at least this far apart (seconds).
SAME_CLASS_GAP = 0.2

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


@dataclass(frozen=True)
class _Piece:
    """A candidate event: (part of) source ``source`` starting at sample ``start``."""

    audio: np.ndarray
    label: str
    source: int
    start: int


@dataclass(frozen=True)
class _Placed:
    """An event placed in a clip (sample indices, end exclusive)."""

    piece: int
    start: int
    stop: int
    ebr_db: float


# ------------------------------------------------------------------------- pieces


def _fade(audio: np.ndarray, n_fade: int, head: bool, tail: bool) -> np.ndarray:
    """Copy of ``audio`` with raised-cosine fades on the chosen ends. Shape kept."""
    out = np.array(audio, dtype=np.float32)
    n_fade = min(n_fade, len(out) // 2)
    ramp = np.sin(np.linspace(0, np.pi / 2, n_fade)) ** 2
    if head and n_fade:
        out[:n_fade] *= ramp
    if tail and n_fade:
        out[len(out) - n_fade :] *= ramp[::-1]
    return out


def _cut_pieces(sources: Sequence[tuple[np.ndarray, str]], cfg: SoundscapeConfig) -> list[_Piece]:
    """Cut sources longer than ``cfg.max_piece_samples`` into equal consecutive pieces.

    Cut edges get ~5 ms fades; sources that fit are used whole (not copied).
    """
    max_len = cfg.max_piece_samples
    n_fade = int(FADE_SECONDS * cfg.sample_rate)
    pieces = []
    for index, (audio, label) in enumerate(sources):
        length = len(audio)
        if length <= max_len:
            pieces.append(_Piece(audio, label, index, 0))
            continue
        bounds = np.linspace(0, length, -(-length // max_len) + 1).round().astype(int)
        for j, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            piece = _fade(audio[lo:hi], n_fade, head=j > 0, tail=hi < length)
            pieces.append(_Piece(piece, label, index, int(lo)))
    return pieces


def candidate_pieces(
    sources: Sequence[tuple[np.ndarray, str]], cfg: SoundscapeConfig
) -> list[tuple[np.ndarray, str]]:
    """The candidate events :func:`synthesize_clip` draws from, in order.

    Equal to ``sources`` when every source fits in ``cfg.max_piece_samples``; longer
    sources are replaced by their pieces. Indices in ``placements`` refer to this list.
    """
    return [(p.audio, p.label) for p in _cut_pieces(sources, cfg)]


# ---------------------------------------------------------------------- placement


def _free_starts(occupied: list[tuple[int, int]], length: int, n: int) -> list[tuple[int, int]]:
    """Start ranges ``[lo, hi)`` where ``length`` samples fit in ``n`` without overlap."""
    last_start = n - length + 1  # exclusive bound
    free, lo = [], 0
    for start, stop in sorted(occupied):
        hi = min(start - length + 1, last_start)
        if hi > lo:
            free.append((lo, hi))
        lo = max(lo, stop)
    if last_start > lo:
        free.append((lo, last_start))
    return free


def _draw_start(free: list[tuple[int, int]], rng: np.random.Generator) -> int:
    """Uniform start sample over the union of ``free`` ranges."""
    sizes = np.array([hi - lo for lo, hi in free])
    r = int(rng.integers(sizes.sum()))
    which = int(np.searchsorted(np.cumsum(sizes), r, side="right"))
    return free[which][0] + r - int(sizes[:which].sum())


@dataclass
class _Planned:
    """An event chosen for a clip: candidate ``piece`` (varied) starting at ``start``."""

    piece: int
    start: int
    audio: np.ndarray  # the piece after its variation
    variation: dict


def _occupied(
    plan: list[_Planned], pieces: list[_Piece], label: str, cfg: SoundscapeConfig
) -> list[tuple[int, int]]:
    """Sample spans a new ``label`` event may not overlap: same-class events (with the
    gap) always, every event when ``allow_overlap`` is false."""
    gap = int(round(SAME_CLASS_GAP * cfg.sample_rate))
    spans = []
    for p in plan:
        stop = p.start + len(p.audio)
        if pieces[p.piece].label == label:
            spans.append((max(0, p.start - gap), stop + gap))
        elif not cfg.allow_overlap:
            spans.append((p.start, stop))
    return spans


def _random_plan(
    pieces: list[_Piece], cfg: SoundscapeConfig, rng: np.random.Generator
) -> list[_Planned]:
    """Draw events: class first (uniform), then a piece, its variation, a start.

    Without overlap, a candidate that cannot fit anywhere is redrawn (up to
    ``_MAX_TRIES`` times) and the event is dropped if none fits. With variation off
    no extra randomness is drawn, so clips equal those of earlier versions.
    """
    n = cfg.n_samples
    n_events = int(rng.integers(cfg.min_events, cfg.max_events + 1))
    if not pieces:
        if n_events:
            raise ValueError("no candidate events to place")
        return []
    labels = sorted({p.label for p in pieces})
    by_label = {lab: [i for i, p in enumerate(pieces) if p.label == lab] for lab in labels}
    plan: list[_Planned] = []
    for _ in range(n_events):
        for _try in range(_MAX_TRIES):
            options = by_label[labels[int(rng.integers(len(labels)))]]
            index = options[int(rng.integers(len(options)))]
            variation = cfg.variation.draw(rng)
            audio = _varied(pieces[index].audio, variation, cfg)
            free = _free_starts(_occupied(plan, pieces, pieces[index].label, cfg), len(audio), n)
            if free:
                plan.append(_Planned(index, _draw_start(free, rng), audio, variation))
                break
        else:
            log.debug("no room for another non-overlapping event; clip keeps %d", len(plan))
    return plan


def _varied(audio: np.ndarray, variation: dict, cfg: SoundscapeConfig) -> np.ndarray:
    """The piece after its variation, cut to the clip length."""
    if not variation:
        return audio
    return apply_variation(audio, variation, cfg.sample_rate)[: cfg.n_samples]


def _given_plan(
    pieces: list[_Piece], placements: Sequence[tuple[int, float]], cfg: SoundscapeConfig
) -> list[_Planned]:
    """Validate explicit ``(piece index, onset seconds)`` placements (no variation)."""
    n = cfg.n_samples
    plan: list[_Planned] = []
    for index, onset in placements:
        if not 0 <= index < len(pieces):
            raise ValueError(f"placement index {index} out of range ({len(pieces)} candidates)")
        start = int(round(onset * cfg.sample_rate))
        if not 0 <= start < n:
            raise ValueError(f"placement onset {onset} s outside the clip [0, {cfg.clip_duration})")
        stop = min(start + len(pieces[index].audio), n)
        if any(
            start < e and s < stop for s, e in _occupied(plan, pieces, pieces[index].label, cfg)
        ):
            raise ValueError(
                f"placement ({index}, {onset}) overlaps another event"
                f" (same-class events stay {SAME_CLASS_GAP} s apart)"
            )
        plan.append(_Planned(index, start, pieces[index].audio, {}))
    return plan


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ------------------------------------------------------------------------- mixing


def _draw_events(
    pieces: list[_Piece],
    cfg: SoundscapeConfig,
    rng: np.random.Generator,
    placements: Sequence[tuple[int, float]] | None,
) -> list[dict]:
    """Every random choice of a clip's events, as recipe entries (JSON-safe).

    Each entry: ``piece`` (candidate index), ``start`` (sample), ``ebr_db`` (the event's
    level over the background, gain variation included) and ``variation`` (drawn
    parameters). Silent candidates are dropped here.
    """
    n = cfg.n_samples
    plan = (
        _random_plan(pieces, cfg, rng)
        if placements is None
        else _given_plan(pieces, placements, cfg)
    )
    level = None
    if cfg.ebr_levels is not None and plan:
        level = float(cfg.ebr_levels[int(rng.integers(len(cfg.ebr_levels)))])
    events = []
    for p in plan:
        stop = min(p.start + len(p.audio), n)
        if _rms(p.audio[: stop - p.start]) == 0:
            log.debug("skipping silent candidate %d", p.piece)
            continue
        ebr = level if level is not None else float(rng.uniform(*cfg.ebr_db))
        ebr += p.variation.get("gain_db", 0.0)
        events.append(
            {
                "piece": p.piece,
                "start": p.start,
                "ebr_db": ebr,
                "variation": p.variation,
                "_audio": p.audio,  # the varied piece (not part of the recipe)
            }
        )
    return events


def _render_events(
    pieces: list[_Piece],
    events: list[dict],
    background: np.ndarray,
    cfg: SoundscapeConfig,
    varied: list[np.ndarray] | None = None,
    unlabelled: np.ndarray | None = None,
) -> tuple[np.ndarray, list[_Placed]]:
    """Mix recipe events into the background (deterministic: no randomness).

    Each event is scaled so its RMS over its extent is ``ebr_db`` above the background's
    RMS over the same extent (DCASE 2016's event-to-background ratio);
    :data:`~.procedural.BACKGROUND_RMS` stands in where the background is digital
    silence. ``unlabelled`` (the non-target layer, same shape) is added to the mixture
    but not to the reference of the ratios. A mixture peaking above :data:`PEAK_LIMIT`
    is scaled down as a whole, which keeps every ratio.
    """
    n = cfg.n_samples
    if background.shape != (n,):
        raise ValueError(f"background has shape {background.shape}, expected ({n},)")
    mixture = background.astype(np.float64)
    if unlabelled is not None:
        mixture += unlabelled
    placed = []
    for j, event in enumerate(events):
        index, start = int(event["piece"]), int(event["start"])
        audio = (
            varied[j]
            if varied is not None
            else _varied(pieces[index].audio, event["variation"], cfg)
        )
        stop = min(start + len(audio), n)
        segment = audio[: stop - start]
        mixture[start:stop] += at_ebr(segment, background[start:stop], event["ebr_db"])
        placed.append(_Placed(index, start, stop, float(event["ebr_db"])))
    peak = np.max(np.abs(mixture))
    if peak > PEAK_LIMIT:
        mixture *= PEAK_LIMIT / peak
    placed.sort(key=lambda p: (p.start, p.stop))
    return mixture.astype(np.float32), placed


def _mix(
    pieces: list[_Piece],
    background: np.ndarray,
    cfg: SoundscapeConfig,
    rng: np.random.Generator,
    placements: Sequence[tuple[int, float]] | None,
) -> tuple[np.ndarray, list[_Placed]]:
    """Draw the events and mix them; see :func:`synthesize_clip`."""
    events = _draw_events(pieces, cfg, rng, placements)
    varied = [e.pop("_audio") for e in events]
    return _render_events(pieces, events, background, cfg, varied)


def synthesize_clip(
    sources: list[tuple[np.ndarray, str]],
    background: np.ndarray,
    cfg: SoundscapeConfig,
    rng: np.random.Generator,
    placements: list[tuple[int, float]] | None = None,
) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Mix events into a background and return the clip with its strong labels.

    Sources longer than ``cfg.max_piece_samples`` are first cut into pieces (see
    :func:`candidate_pieces`). Random mode draws the number of events in
    ``[min_events, max_events]``, for each a class uniformly then one of its pieces, its
    variation (``cfg.variation``) and a uniform start where the whole piece fits (not
    overlapping earlier events when ``allow_overlap`` is false; pieces that cannot fit
    are redrawn, then dropped). Each event is scaled to an EBR drawn uniformly from
    ``cfg.ebr_db`` (or one of ``cfg.ebr_levels`` per clip) relative to the background
    RMS over the event's extent (:data:`BACKGROUND_RMS` where the background is digital
    silence). If the mixture's peak exceeds 0.99 the whole clip is scaled down; labels
    are unaffected.

    Parameters
    ----------
    sources
        ``(audio, label)`` pairs at ``cfg.sample_rate``.
    background
        The clip's background.
    cfg
        Mixing configuration.
    rng
        Source of all randomness.
    placements
        Explicit ``(candidate index, onset seconds)`` pairs used instead of random
        draws; a piece running past the clip end is cropped (label clipped too).

    Returns
    -------
    mixture
        ``float32`` clip.
    events
        ``(onset, offset, label)`` in seconds, the placed pieces' exact extents,
        sorted by onset.

    Shape:
        background, mixture: ``(cfg.n_samples,)``; each source audio ``(n_i,)``.

    Raises
    ------
    ValueError
        Wrong background length; placements out of range or overlapping while
        ``allow_overlap`` is false.
    """
    pieces = _cut_pieces(sources, cfg)
    mixture, placed = _mix(pieces, background, cfg, rng, placements)
    sr = cfg.sample_rate
    return mixture, [(p.start / sr, p.stop / sr, pieces[p.piece].label) for p in placed]


# ------------------------------------------------------------------------ recipes


def clip_streams(entropy: Sequence[int]) -> tuple[np.random.Generator, ...]:
    """The five random streams of a clip: background, events, background choice,
    background variation, non-target events.

    ``clip_streams([seed, k])[:2]`` equal ``default_rng([seed, k]).spawn(2)`` (the
    streams of earlier versions), so sets without recorded backgrounds are unchanged; each
    stream is the same whatever number of streams follows it.
    """
    children = np.random.SeedSequence([int(e) for e in entropy]).spawn(5)
    return tuple(np.random.default_rng(c) for c in children)


class ClipMaker:
    """Draws a clip's recipe and renders recipes: the one place a soundscape is made.

    A recipe is a JSON-safe dict holding every random choice of one clip::

        {"entropy": [...], "background": {"kind": "procedural"} |
                                          {"kind": "recorded", "file": ..., "offset": ...},
         "events": [{"piece", "source", "source_onset", "start", "ebr_db", "variation"}],
         "distractors": [{"label", "start", "n", "ebr_db", "seed"}]}  # only when drawn

    :meth:`render` uses no randomness beyond what the recipe names (the procedural
    background is regenerated from the recipe's ``entropy``), so a recipe re-renders
    its clip bit for bit.

    Args:
        sources: the event sources the clips draw from, with their bank (for names).
        bank: the event bank.
        cfg: mixing configuration.
        background_fn: procedural background generator.
        backgrounds: recorded backgrounds (``None``: procedural only).
        background_split: split(s) of ``backgrounds`` this maker draws from.
    """

    def __init__(
        self,
        sources: Sequence[EventSource],
        bank: EventBank,
        cfg: SoundscapeConfig,
        background_fn: BackgroundFn,
        backgrounds: BackgroundBank | None = None,
        background_split: str | Sequence[str] = "train",
    ) -> None:
        if cfg.recorded_share > 0 and backgrounds is None:
            raise ValueError("recorded_share > 0 needs recorded backgrounds (backgrounds_dir)")
        self.sources, self.bank, self.cfg = list(sources), bank, cfg
        self.background_fn, self.backgrounds = background_fn, backgrounds
        self.background_split = background_split
        cfg.distractors.check_targets(bank.class_names)
        self.pieces = _cut_pieces([(bank.load(s), s.label) for s in self.sources], cfg)
        # the varied pieces of the recipe drawn last (varying is the costly part; drawing
        # needs their lengths, so rendering that recipe next reuses them)
        self._drawn: tuple[list[dict], list[np.ndarray]] | None = None

    def draw(self, entropy: Sequence[int]) -> dict:
        """The recipe of the clip seeded by ``entropy`` (e.g. ``[seed, k]``)."""
        cfg = self.cfg
        _, event_rng, choice_rng, variation_rng, distractor_rng = clip_streams(entropy)
        background: dict = {"kind": "procedural"}
        if cfg.recorded_share > 0 and choice_rng.random() < cfg.recorded_share:
            name, offset = self.backgrounds.draw(self.background_split, cfg.n_samples, choice_rng)
            background = {"kind": "recorded", "file": name, "offset": offset}
        variation = cfg.background_variation.draw(
            variation_rng, recorded=background["kind"] == "recorded"
        )
        if variation:  # absent when off: recipes (and sets) without it are unchanged
            background["variation"] = variation
        events = _draw_events(self.pieces, cfg, event_rng, None)
        self._drawn = (events, [e.pop("_audio") for e in events])  # reused by render
        sr = cfg.sample_rate
        for event in events:
            piece = self.pieces[event["piece"]]
            event["source"] = str(self.sources[piece.source].path.relative_to(self.bank.root))
            event["source_onset"] = piece.start / sr
        recipe = {"entropy": [int(e) for e in entropy], "background": background, "events": events}
        distractors = cfg.distractors.draw(distractor_rng, cfg.n_samples, cfg.sample_rate)
        if distractors:  # absent when none: recipes (and sets) without them are unchanged
            recipe["distractors"] = distractors
        return recipe

    def background(self, recipe: dict) -> np.ndarray:
        """The recipe's background. Shape: ``(cfg.n_samples,)``, ``float32``."""
        spec, n, sr = recipe["background"], self.cfg.n_samples, self.cfg.sample_rate

        def generated(n_samples: int = n) -> np.ndarray:
            bg_rng = clip_streams(recipe["entropy"])[0]
            audio = self.background_fn(n_samples / sr, bg_rng, sr)
            return np.asarray(audio, dtype=np.float32)[:n_samples]

        if spec["kind"] == "recorded":

            def piece(n_samples: int) -> np.ndarray:
                return self.backgrounds.piece(spec["file"], int(spec["offset"]), n_samples)

        else:
            piece = generated
        if not spec.get("variation"):
            return piece(n)
        return apply_background_variation(piece, spec["variation"], n, sr, generated)

    def render(self, recipe: dict) -> tuple[np.ndarray, list[tuple]]:
        """Render a recipe: the mixture and its truth rows.

        Returns:
            mixture ``(n_samples,)`` float32; rows ``(onset, offset, label, source,
            source_onset, source_offset, ebr_db)`` sorted by onset.
        """
        for event in recipe["events"]:
            if not 0 <= int(event["piece"]) < len(self.pieces):
                raise ValueError(f"recipe event {event} names a piece this bank does not have")
        drawn, self._drawn = self._drawn, None
        varied = drawn[1] if drawn is not None and drawn[0] is recipe["events"] else None
        background = self.background(recipe)
        unlabelled = None
        if recipe.get("distractors"):
            unlabelled = render_distractors(recipe["distractors"], background, self.cfg.sample_rate)
        mixture, placed = _render_events(
            self.pieces, recipe["events"], background, self.cfg, varied, unlabelled
        )
        sr = self.cfg.sample_rate
        rows = []
        for p in placed:
            piece = self.pieces[p.piece]
            source = str(self.sources[piece.source].path.relative_to(self.bank.root))
            src_onset = piece.start / sr
            rows.append(
                (
                    p.start / sr,
                    p.stop / sr,
                    piece.label,
                    source,
                    src_onset,
                    src_onset + (p.stop - p.start) / sr,
                    round(p.ebr_db, 3),
                )
            )
        return mixture, rows


# --------------------------------------------------------------------------- sets


def _fingerprint(sources: Sequence[EventSource], root: Path) -> str:
    listing = [(str(s.path.relative_to(root)), s.label, s.duration, s.split) for s in sources]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def _manifest(
    bank: EventBank,
    spec: SetSpec,
    cfg: SoundscapeConfig,
    sources: Sequence[EventSource],
    background_fn: BackgroundFn,
    backgrounds: BackgroundBank | None = None,
) -> dict:
    """Everything that determines the set's content, plus its hash."""
    spec_content = dataclasses.asdict(spec)
    if spec.soundscape and "distractors" in spec.soundscape and not cfg.distractors.active:
        # a set that spells distractors off hashes as before the option existed
        rest = {k: v for k, v in spec.soundscape.items() if k != "distractors"}
        spec_content["soundscape"] = rest or None
    if spec.sources_per_class is None:
        # a set of every source hashes as before the subset option existed
        del spec_content["sources_per_class"], spec_content["sources_seed"]
    content = {
        "synthesis_version": SYNTHESIS_VERSION,
        "spec": spec_content,
        "config": _config_content(cfg),
        "bank_root": str(bank.root),
        "class_names": list(bank.class_names),
        "source_splits": spec.splits,
        "n_sources": len(sources),
        "sources_sha256": _fingerprint(sources, bank.root),
        "background_fn": _callable_name(background_fn),
        "label_files": list(LABEL_FILES[spec.kind]),
    }
    if backgrounds is not None and cfg.recorded_share > 0:
        content["backgrounds_root"] = str(backgrounds.root)
        content["backgrounds_sha256"] = backgrounds.fingerprint()
        content["background_files"] = backgrounds.files(spec.splits)
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return {**content, "hash": digest}


def _config_content(cfg: SoundscapeConfig) -> dict:
    """The config as hashed: ``background_variation`` and ``distractors`` only when on, so
    a config that does not switch them on hashes as it did before the options existed (no
    set is synthesized again for them). Settings that shape nothing are hashed at their
    defaults: ``ebr_db`` when ``ebr_levels`` sets the EBRs, and the ranges of a variation
    part whose probability is 0 (:meth:`~.variation.EventVariation.content`), so a fixed
    evaluation set is not made again when only the training sets' ranges change."""
    content = dataclasses.asdict(cfg)
    content["variation"] = cfg.variation.content()
    if cfg.ebr_levels is not None:
        content["ebr_db"] = SoundscapeConfig.__dataclass_fields__["ebr_db"].default
    if not cfg.background_variation.active:
        del content["background_variation"]
    if not cfg.distractors.active:
        del content["distractors"]
    return content


def _callable_name(fn: Callable) -> str:
    """Stable description of a callable: ``module.qualname``, partials with their args."""
    if isinstance(fn, functools.partial):
        return (
            f"partial({_callable_name(fn.func)}, *{fn.args!r}, **{sorted(fn.keywords.items())!r})"
        )
    if hasattr(fn, "__qualname__"):
        return f"{fn.__module__}.{fn.__qualname__}"
    return repr(fn)


def _is_cached(out_dir: Path, manifest: dict, n_clips: int) -> bool:
    """True if a complete set with the same hash is already in ``out_dir``."""
    path = out_dir / "manifest.json"
    if not path.is_file():
        return False
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError:
        return False
    expected = ["durations.tsv", "truth.tsv", *manifest["label_files"]]
    audio_dir = out_dir / "audio"
    n_audio = len(list(audio_dir.glob("*.wav"))) if audio_dir.is_dir() else 0
    return (
        stored.get("hash") == manifest["hash"]
        and all((out_dir / f).is_file() for f in expected)
        and n_audio == n_clips
    )


def _clear(out_dir: Path) -> None:
    """Remove outputs of a previous (different or interrupted) run, manifest first."""
    (out_dir / "manifest.json").unlink(missing_ok=True)
    if (out_dir / "audio").is_dir():
        shutil.rmtree(out_dir / "audio")
    for name in ("durations.tsv", "truth.tsv", "strong.tsv", "weak.tsv", "recipes.jsonl"):
        (out_dir / name).unlink(missing_ok=True)


def _write_labels(
    out_dir: Path, truth: pd.DataFrame, durations: dict[str, float], kind: str
) -> None:
    """Write durations.tsv, truth.tsv and the label files of ``kind``.

    Clips without events have no rows in truth.tsv / strong.tsv and an empty label
    list in weak.tsv.
    """
    write_durations_tsv(durations, out_dir / "durations.tsv")
    write_strong_tsv(truth, out_dir / "truth.tsv")
    strong = truth[list(STRONG_COLUMNS)]
    if kind == "strong":
        write_strong_tsv(strong, out_dir / "strong.tsv")
    if kind in ("strong", "weak"):
        weak = strong.copy()
        weak.attrs["empty_files"] = sorted(set(durations) - set(strong["filename"]))
        write_weak_tsv(strong_to_weak(weak), out_dir / "weak.tsv")


def synthesize_set(
    out_dir: str | PathLike,
    bank: EventBank,
    spec: SetSpec,
    cfg: SoundscapeConfig,
    background_fn: BackgroundFn | None = None,
    backgrounds: BackgroundBank | None = None,
) -> Path:
    """Synthesise one set into ``out_dir`` (layout in the module docstring).

    Clip ``k`` is drawn from the streams :func:`clip_streams` ``([spec.seed, k])``, so
    the set is deterministic; its recipe goes to ``recipes.jsonl`` (one line per clip).
    Sources come only from ``spec.source_split`` of ``bank``, recorded backgrounds only
    from the same split(s) of ``backgrounds``. ``manifest.json`` is written last; if it
    exists with the same hash and the outputs are complete, nothing is regenerated.
    Several processes may share the cache: one writes a set while the others wait
    (``.<set>.lock``), and a process that uses a set holds a shared lock on it
    (``.<set>.readers``) until it exits, so a run with other settings for that set gets
    :class:`SetInUseError` instead of rewriting it under a run that reads it.

    Parameters
    ----------
    out_dir
        The set's folder (usually ``out_root / spec.name``).
    bank
        Event sources; its sample rate must equal ``cfg.sample_rate``.
    spec
        Which set to make.
    cfg
        Mixing configuration.
    background_fn
        ``(duration, rng, sample_rate) -> background``, like
        :func:`~.procedural.generate_background`; ``None``: ``cfg.procedural_background``.
    backgrounds
        Recorded backgrounds, used for ``cfg.recorded_share`` of the clips.

    Returns
    -------
    Path
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    cfg = spec.config(cfg)
    if bank.sample_rate != cfg.sample_rate:
        raise ValueError(f"bank sample rate {bank.sample_rate} != config {cfg.sample_rate}")
    sources = spec.sources(bank)
    if not sources:
        raise ValueError(f"set {spec.name!r}: no sources in split(s) {spec.splits} of {bank}")
    background_fn = background_fn or PROCEDURAL_BACKGROUNDS[cfg.procedural_background]
    manifest = _manifest(bank, spec, cfg, sources, background_fn, backgrounds)
    # Runs started together (two sweeps, a parallel launcher) share the data cache: the
    # first to take the set's lock writes it, the others wait and then reuse it.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out_dir.parent / f".{out_dir.name}.lock")
    try:
        lock.acquire(blocking=False)
    except Timeout:
        log.info("waiting for another process synthesizing %s", out_dir)
        lock.acquire()
    try:
        if _is_cached(out_dir, manifest, spec.n_clips):
            log.info("reusing %s", out_dir)
        else:
            with _sole_reader(out_dir):
                _write_set(out_dir, bank, spec, cfg, sources, background_fn, backgrounds, manifest)
        _hold_as_reader(out_dir)
    finally:
        lock.release()
    return out_dir


class SetInUseError(RuntimeError):
    """A set must be rewritten (other settings) while another process reads it."""


#: The sets this process reads -> the open ``.<set>.readers`` file on which it holds a shared
#: lock until it exits (DataLoader workers inherit it), so that no other run rewrites them.
_READING: dict[Path, object] = {}


def _readers_file(out_dir: Path):
    return (out_dir.parent / f".{out_dir.name}.readers").open("a")


def _hold_as_reader(out_dir: Path) -> None:
    """Mark ``out_dir`` as read by this process (a shared lock, held until exit)."""
    key = out_dir.resolve()
    if fcntl is None or key in _READING:
        return
    handle = _readers_file(out_dir)
    fcntl.flock(handle, fcntl.LOCK_SH)
    _READING[key] = handle


@contextlib.contextmanager
def _sole_reader(out_dir: Path) -> Iterator[None]:
    """Exclusive hold of ``out_dir``'s readers lock while the set is (re)written, or
    :class:`SetInUseError` when another process reads the set: rewriting it in place would
    pull its files from under that run (it would crash on "audio file not found", or score
    other clips than it started with). This process's own hold is given up first."""
    own = _READING.pop(out_dir.resolve(), None)
    if own is not None:
        own.close()
    if fcntl is None:
        yield
        return
    with _readers_file(out_dir) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SetInUseError(
                f"{out_dir}: this run's settings for the set differ from those it was made "
                "with, and another run that is still going reads it; rewriting it would pull "
                "its files from under that run. Wait for that run to end, or give this one "
                "its own cache (paths.data_dir=...)."
            ) from None
        yield  # closing the file releases the lock


def _write_set(
    out_dir: Path,
    bank: EventBank,
    spec: SetSpec,
    cfg: SoundscapeConfig,
    sources: list[EventSource],
    background_fn: BackgroundFn,
    backgrounds: BackgroundBank | None,
    manifest: dict,
) -> None:
    """Render every clip of ``spec`` into ``out_dir`` (under the set's lock)."""
    _clear(out_dir)
    (out_dir / "audio").mkdir(parents=True)

    maker = ClipMaker(sources, bank, cfg, background_fn, backgrounds, spec.splits)
    sr = cfg.sample_rate
    rows, names = [], []
    with (out_dir / "recipes.jsonl").open("w") as recipes:
        for k in tqdm(range(spec.n_clips), desc=f"synth {spec.name}", unit="clip"):
            recipe = maker.draw([spec.seed, k])
            mixture, truth_rows = maker.render(recipe)
            name = f"{spec.name}_{k:05d}.wav"
            save_audio(out_dir / "audio" / name, mixture, sr)
            names.append(name)
            rows.extend((name, *row) for row in truth_rows)
            recipes.write(json.dumps({"filename": name, **recipe}) + "\n")
    truth = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
    _write_labels(out_dir, truth, dict.fromkeys(names, cfg.n_samples / sr), spec.kind)
    _write_json_atomic(out_dir / "manifest.json", manifest)
    log.info("wrote %d %s clips (%d events) to %s", len(names), spec.kind, len(truth), out_dir)


def _write_json_atomic(path: Path, content: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, indent=2, sort_keys=True))
    os.replace(tmp, path)


def synthesize_dataset(
    out_root: str | PathLike,
    bank: EventBank,
    specs: Sequence[SetSpec],
    cfg: SoundscapeConfig,
    background_fn: BackgroundFn | None = None,
    backgrounds: BackgroundBank | None = None,
) -> dict[str, Path]:
    """Synthesise every set of ``specs`` into ``out_root/<spec.name>/``.

    Returns
    -------
    dict[str, Path]
        Set name -> set folder, in ``specs`` order.

    Raises
    ------
    ValueError
        Two specs share a name.
    """
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate set name(s) {duplicates}")
    seeds = [s.seed for s in specs]
    if len(set(seeds)) < len(seeds):
        log.warning("several sets share a seed (%s): their backgrounds will repeat", seeds)
    out_root = Path(out_root)
    paths = {
        spec.name: synthesize_set(out_root / spec.name, bank, spec, cfg, background_fn, backgrounds)
        for spec in specs
    }
    log.info("synthetic dataset in %s: %s", out_root, ", ".join(paths))
    return paths
