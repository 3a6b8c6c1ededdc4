"""Non-target events ("distractors"): sounds mixed into a training clip without a label.

A detector trained only on target events over backgrounds learns that anything with an
onset is a target; over a recording it never heard (a running tap, wind) it takes the
texture's bursts for knocks, page turns and phones. DESED's synthetic sets since DCASE
2021 mix non-target events (from FUSS) for that reason. Here the non-target events are
the built-in procedural sounds (:func:`~.procedural.generate_event`) of classes that are
not among the targets: the clip's labels do not change, so the loss teaches the detector
to stay silent on them.

As with :mod:`~.variation`, the draw (:meth:`Distractors.draw`) returns plain numbers
that go into the clip's recipe, and rendering from them (:func:`render_distractors`) is
deterministic: each entry names the seed its sound is generated from.

    >>> import numpy as np
    >>> spec = Distractors(p=1.0, max_events=2, classes=("water",), duration=(0.5, 0.5))
    >>> entries = spec.draw(np.random.default_rng(0), n_samples=16000, sample_rate=16000)
    >>> len(entries) in (1, 2), entries[0]["label"], entries[0]["n"]
    (True, 'water', 8000)
    >>> background = np.full(16000, 0.05, dtype=np.float32)
    >>> layer = render_distractors(entries, background, 16000)
    >>> layer.shape, bool(np.abs(layer).max() > 0)
    ((16000,), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sed_lightning.data.procedural import DURATION_RANGES, at_ebr, generate_event

__all__ = ["Distractors", "render_distractors"]


@dataclass
class Distractors:
    """Per-clip non-target events, with probability ``p`` (0 = off).

    Attributes
    ----------
    p
        Probability that a clip gets non-target events.
    max_events
        A clip that gets them has 1..``max_events`` (uniform).
    classes
        Procedural classes to draw from (:data:`~.procedural.DURATION_RANGES`); none may
        be a target class of the clips (checked where the targets are known). The
        default leaves out ``alarm`` (its beep trains are close to a phone's ring, an
        office target) and ``speech`` and ``knock`` (office targets by name).
    ebr_db
        Level of each against the background over its span (dB, uniform), as the
        targets' event-to-background ratio.
    duration
        Seconds (uniform), cut to the clip.

    The draw uses its own random stream (the clip's fifth), so switching distractors on
    does not change a clip's background or target events.
    """

    p: float = 0.0
    max_events: int = 2
    classes: tuple[str, ...] = ("water", "engine", "dog_bark")
    ebr_db: tuple[float, float] = (-6.0, 6.0)
    duration: tuple[float, float] = (0.3, 3.0)

    def __post_init__(self) -> None:
        self.p, self.max_events = float(self.p), int(self.max_events)
        self.classes = tuple(str(c) for c in self.classes)
        self.ebr_db = (float(self.ebr_db[0]), float(self.ebr_db[1]))
        self.duration = (float(self.duration[0]), float(self.duration[1]))
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"distractors.p must be in [0, 1], got {self.p}")
        if self.max_events < 1:
            raise ValueError(f"distractors.max_events must be >= 1, got {self.max_events}")
        unknown = sorted(set(self.classes) - set(DURATION_RANGES))
        if unknown or not self.classes:
            raise ValueError(
                f"distractors.classes {list(self.classes)}: unknown {unknown};"
                f" the procedural classes are {list(DURATION_RANGES)}"
            )
        for name in ("ebr_db", "duration"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"distractors.{name} must be (low, high), got {(low, high)}")
        if self.duration[0] <= 0:
            raise ValueError(f"distractors.duration must be positive, got {self.duration}")

    @property
    def active(self) -> bool:
        """Whether a clip can get distractors (if not, :meth:`draw` uses no randomness)."""
        return self.p > 0

    def check_targets(self, target_labels: Sequence[str]) -> None:
        """Raise if a distractor class is also a target: it would be mixed unlabelled."""
        shared = sorted(set(self.classes) & set(target_labels))
        if self.active and shared:
            raise ValueError(
                f"distractors.classes {shared} are target classes too; a non-target"
                " event must not be a class the detector is taught to find"
            )

    def draw(self, rng: np.random.Generator, n_samples: int, sample_rate: int) -> list[dict]:
        """One clip's non-target events: JSON-safe entries ``{label, start, n, ebr_db,
        seed}`` (samples; ``seed`` generates the sound). Empty when the clip gets none."""
        if not self.active or rng.random() >= self.p:
            return []
        entries = []
        for _ in range(int(rng.integers(1, self.max_events + 1))):
            label = self.classes[int(rng.integers(len(self.classes)))]
            n = min(n_samples, max(1, int(round(rng.uniform(*self.duration) * sample_rate))))
            entries.append(
                {
                    "label": label,
                    "start": int(rng.integers(n_samples - n + 1)),
                    "n": n,
                    "ebr_db": float(rng.uniform(*self.ebr_db)),
                    "seed": int(rng.integers(2**31)),
                }
            )
        return entries


def render_distractors(
    entries: Sequence[dict], background: np.ndarray, sample_rate: int
) -> np.ndarray:
    """The non-target layer of a clip, to add to its mixture (deterministic).

    Each sound is scaled so its RMS over its span is ``ebr_db`` above the background's
    over the same span (:func:`~.procedural.at_ebr`).

    Shape:
        background, returned layer: ``(n_samples,)``; the layer is ``float64``.
    """
    layer = np.zeros(len(background), dtype=np.float64)
    for entry in entries:
        start, n = int(entry["start"]), int(entry["n"])
        if start < 0 or n < 1 or start + n > len(background):
            raise ValueError(f"distractor {entry} does not fit in a clip of {len(background)}")
        rng = np.random.default_rng(int(entry["seed"]))
        audio = generate_event(entry["label"], rng, sample_rate, duration=n / sample_rate)[:n]
        if not audio.any():
            continue
        span = slice(start, start + len(audio))
        layer[span] += at_ebr(audio, background[span], entry["ebr_db"])
    return layer
