"""Placing events in a clip and mixing them over its background.

Sources longer than the longest event are cut into pieces (:func:`cut_pieces`); a clip's
events are drawn (class, piece, variation, start, level: :func:`draw_events`) and mixed at
their event-to-background ratios (:func:`render_events`). :func:`synthesize_clip` does
both for one clip; :class:`~.recipes.ClipMaker` draws and renders whole recipes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sed_lightning.data.procedural import FADE_SECONDS, at_ebr
from sed_lightning.data.set_spec import SoundscapeConfig
from sed_lightning.data.variation import apply_variation

__all__ = [
    "PEAK_LIMIT",
    "SAME_CLASS_GAP",
    "Piece",
    "Placed",
    "candidate_pieces",
    "cut_pieces",
    "draw_events",
    "render_events",
    "synthesize_clip",
]

log = logging.getLogger(__name__)

PEAK_LIMIT = 0.99
_MAX_TRIES = 20  # candidate draws per event before giving up on a non-overlapping slot
# Events of the same class never overlap nor touch, even with allow_overlap: two overlapping
# "speech" labels are one ambiguous event (sed_eval and sed_scores_eval reject them). They
# stay at least this far apart (seconds).
SAME_CLASS_GAP = 0.2


@dataclass(frozen=True)
class Piece:
    """A candidate event: (part of) source ``source`` starting at sample ``start``."""

    audio: np.ndarray
    label: str
    source: int
    start: int


@dataclass(frozen=True)
class Placed:
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


def cut_pieces(sources: Sequence[tuple[np.ndarray, str]], cfg: SoundscapeConfig) -> list[Piece]:
    """Cut sources longer than ``cfg.max_piece_samples`` into equal consecutive pieces.

    Cut edges get ~5 ms fades; sources that fit are used whole (not copied).
    """
    max_len = cfg.max_piece_samples
    n_fade = int(FADE_SECONDS * cfg.sample_rate)
    pieces = []
    for index, (audio, label) in enumerate(sources):
        length = len(audio)
        if length <= max_len:
            pieces.append(Piece(audio, label, index, 0))
            continue
        bounds = np.linspace(0, length, -(-length // max_len) + 1).round().astype(int)
        for j, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            piece = _fade(audio[lo:hi], n_fade, head=j > 0, tail=hi < length)
            pieces.append(Piece(piece, label, index, int(lo)))
    return pieces


def candidate_pieces(
    sources: Sequence[tuple[np.ndarray, str]], cfg: SoundscapeConfig
) -> list[tuple[np.ndarray, str]]:
    """The candidate events :func:`synthesize_clip` draws from, in order.

    Equal to ``sources`` when every source fits in ``cfg.max_piece_samples``; longer
    sources are replaced by their pieces. Indices in ``placements`` refer to this list.
    """
    return [(p.audio, p.label) for p in cut_pieces(sources, cfg)]


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
    plan: list[_Planned], pieces: list[Piece], label: str, cfg: SoundscapeConfig
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
    pieces: list[Piece], cfg: SoundscapeConfig, rng: np.random.Generator
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
    pieces: list[Piece], placements: Sequence[tuple[int, float]], cfg: SoundscapeConfig
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


def draw_events(
    pieces: list[Piece],
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


def render_events(
    pieces: list[Piece],
    events: list[dict],
    background: np.ndarray,
    cfg: SoundscapeConfig,
    varied: list[np.ndarray] | None = None,
    unlabelled: np.ndarray | None = None,
) -> tuple[np.ndarray, list[Placed]]:
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
        placed.append(Placed(index, start, stop, float(event["ebr_db"])))
    peak = np.max(np.abs(mixture))
    if peak > PEAK_LIMIT:
        mixture *= PEAK_LIMIT / peak
    placed.sort(key=lambda p: (p.start, p.stop))
    return mixture.astype(np.float32), placed


def _mix(
    pieces: list[Piece],
    background: np.ndarray,
    cfg: SoundscapeConfig,
    rng: np.random.Generator,
    placements: Sequence[tuple[int, float]] | None,
) -> tuple[np.ndarray, list[Placed]]:
    """Draw the events and mix them; see :func:`synthesize_clip`."""
    events = draw_events(pieces, cfg, rng, placements)
    varied = [e.pop("_audio") for e in events]
    return render_events(pieces, events, background, cfg, varied)


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
    pieces = cut_pieces(sources, cfg)
    mixture, placed = _mix(pieces, background, cfg, rng, placements)
    sr = cfg.sample_rate
    return mixture, [(p.start / sr, p.stop / sr, pieces[p.piece].label) for p in placed]
