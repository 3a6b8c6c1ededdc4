"""Turn frame-level SED scores into event tables (DESED strong format).

Conventions
-----------
* Frame scores for one clip are an array of shape ``(n_frames, n_classes)`` with values in
  ``[0, 1]``; frame ``k`` covers ``[k * frame_hop, (k + 1) * frame_hop)`` seconds.
* Event tables are :class:`pandas.DataFrame` objects with the columns
  ``filename, onset, offset, event_label``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

from sed_lightning.common import plain
from sed_lightning.data.labels import active_runs
from sed_lightning.data.tsv import STRONG_COLUMNS

EVENT_COLUMNS = list(STRONG_COLUMNS)  # the DESED strong-label columns (one home: data/tsv.py)
DEFAULT_KEY = "default"
# Onsets/offsets are rounded to this many decimals (1 µs) so that e.g. ``3 * 0.1`` is written as
# ``0.3`` rather than ``0.30000000000000004``.
TIME_DECIMALS = 6

PerClass = float | Mapping[str, float]

#: The :class:`PostProcessor` settings of a ``postprocess`` config.
DECODER_KEYS = ("median_window", "threshold", "min_duration")
#: ``postprocess.tune``: what ``train`` tunes on the validation scores after the test
#: (``null``: nothing), ``sed-tools tune --method``.
TUNE_METHODS = ("median", "sebbs")


def decoder_settings(postprocess: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :class:`PostProcessor` keyword arguments of a ``postprocess`` config (a mapping
    or an OmegaConf node): without ``tune``, which says what a run tunes after its test,
    not how frames are decoded.

    >>> decoder_settings({"threshold": 0.4, "tune": "sebbs"})
    {'threshold': 0.4}
    """
    settings = dict(plain(postprocess) or {})
    settings.pop("tune", None)
    return settings


def empty_event_table() -> pd.DataFrame:
    """An event table with no rows and the standard columns/dtypes."""
    return pd.DataFrame(
        {
            "filename": pd.Series(dtype=object),
            "onset": pd.Series(dtype=float),
            "offset": pd.Series(dtype=float),
            "event_label": pd.Series(dtype=object),
        }
    )


def resolve_per_class(name: str, value: PerClass, class_names: Sequence[str]) -> dict[str, float]:
    """Expand a scalar or a ``{class: value, ..., "default": value}`` mapping to one value per class.

    >>> resolve_per_class("threshold", {"Dog": 0.3, "default": 0.5}, ["Cat", "Dog"])
    {'Cat': 0.5, 'Dog': 0.3}
    """
    value = plain(value)
    if isinstance(value, Mapping):
        unknown = [key for key in value if key != DEFAULT_KEY and key not in class_names]
        if unknown:
            raise ValueError(
                f"{name}: unknown class name(s) {unknown}; valid keys are the classes "
                f"{list(class_names)} and {DEFAULT_KEY!r}"
            )
        missing = [c for c in class_names if c not in value]
        if missing and DEFAULT_KEY not in value:
            raise ValueError(
                f"{name}: no value for class(es) {missing} and no {DEFAULT_KEY!r} entry"
            )
        return {c: float(value.get(c, value.get(DEFAULT_KEY))) for c in class_names}
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(
            f"{name} must be a number or a mapping class -> number, got {type(value).__name__}"
        )
    return {c: float(value) for c in class_names}


def event_times(
    active: np.ndarray, frame_hop: float, min_duration: float = 0.0, end_time: float = np.inf
) -> list[tuple[float, float]]:
    """``(onset, offset)`` seconds of each run of active frames: the one decoding rule that
    :class:`PostProcessor` and the post-processing grid search share.

    Runs shorter than ``min_duration`` are dropped (compared in frames x hop, free of float
    noise); times are clipped to ``end_time`` and rounded to 1 µs; a run that starts at or
    after ``end_time`` (the padded tail of a short clip) gives no event.

    >>> event_times(np.array([0, 1, 1, 0, 1, 1, 1], bool), 0.5, end_time=3.2)
    [(0.5, 1.5), (2.0, 3.2)]
    >>> event_times(np.array([0, 0, 0, 1], bool), 1.0, end_time=3.0)  # past the clip's end
    []
    """
    out = []
    for start, end in active_runs(active):
        if (end - start) * frame_hop < min_duration - 1e-9:
            continue
        onset = round(min(start * frame_hop, end_time), TIME_DECIMALS)
        offset = round(min(end * frame_hop, end_time), TIME_DECIMALS)
        if onset < offset:
            out.append((onset, offset))
    return out


def window_in_frames(window: float, frame_hop: float) -> int:
    """Median-filter length in frames: ``max(1, round(window / frame_hop))``, made odd.

    >>> window_in_frames(0.45, 0.15), window_in_frames(0.3, 0.1), window_in_frames(0.0, 0.1)
    (3, 3, 1)
    >>> window_in_frames(0.4, 0.1)  # 4 frames -> 5 (odd, so the filter is centred)
    5
    """
    frames = max(1, round(window / frame_hop))
    return frames if frames % 2 == 1 else frames + 1


class PostProcessor:
    """Median filtering, per-class thresholding and minimum-duration pruning of frame scores.

    Args:
        class_names: ordered class names (the column order of the score arrays).
        frame_hop: seconds between consecutive frames.
        median_window: median-filter length in **seconds** (converted with
            :func:`window_in_frames`); a number or a per-class mapping.
        threshold: decision threshold (a frame is active when ``score >= threshold``).
        min_duration: events shorter than this (seconds) are dropped.

    Per-class parameters are either a plain number or a mapping
    ``{class_name: value, ..., "default": value}``.

    Example (frame hop 0.1 s, a 3-frame median filter removes the 1-frame spike of ``Cat`` and
    fills the 1-frame gap of ``Dog``):

    >>> import numpy as np
    >>> scores = np.array(
    ...     [[0.0, 0.9], [0.0, 0.9], [0.8, 0.1], [0.0, 0.9], [0.0, 0.9], [0.0, 0.0]]
    ... )
    >>> pp = PostProcessor(["Cat", "Dog"], frame_hop=0.1, median_window=0.3)
    >>> pp.window_frames
    {'Cat': 3, 'Dog': 3}
    >>> pp.decode(scores, "clip.wav")
       filename  onset  offset event_label
    0  clip.wav    0.0     0.5         Dog
    """

    def __init__(
        self,
        class_names: Sequence[str],
        frame_hop: float,
        median_window: PerClass = 0.45,
        threshold: PerClass = 0.5,
        min_duration: PerClass = 0.0,
    ) -> None:
        class_names = [str(c) for c in plain(class_names)]
        if not class_names:
            raise ValueError("class_names must not be empty")
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"class_names contains duplicates: {class_names}")
        if not frame_hop > 0:
            raise ValueError(f"frame_hop must be > 0, got {frame_hop}")
        self.class_names: list[str] = class_names
        self.frame_hop = float(frame_hop)
        self.median_window = resolve_per_class("median_window", median_window, class_names)
        self.threshold = resolve_per_class("threshold", threshold, class_names)
        self.min_duration = resolve_per_class("min_duration", min_duration, class_names)
        for name, values in (
            ("median_window", self.median_window),
            ("min_duration", self.min_duration),
        ):
            negative = {c: v for c, v in values.items() if v < 0}
            if negative:
                raise ValueError(f"{name} must be >= 0, got {negative}")
        self.window_frames: dict[str, int] = {
            c: window_in_frames(w, self.frame_hop) for c, w in self.median_window.items()
        }

    @classmethod
    def from_config(
        cls,
        cfg: Mapping[str, Any],
        class_names: Sequence[str] | None = None,
        frame_hop: float | None = None,
    ) -> PostProcessor:
        """Build from a Hydra/omegaconf node (or any mapping).

        ``cfg`` holds ``median_window``, ``threshold``, ``min_duration`` and optionally
        ``class_names`` / ``frame_hop``; explicit arguments override the node. ``_target_``,
        other Hydra keys starting with ``_`` and ``tune`` are ignored.

        >>> PostProcessor.from_config(
        ...     {"threshold": {"Dog": 0.3, "default": 0.5}}, class_names=["Cat", "Dog"], frame_hop=0.1
        ... ).threshold
        {'Cat': 0.5, 'Dog': 0.3}
        """
        params = decoder_settings(cfg)  # ``tune`` is not a decoder setting
        params = {k: v for k, v in params.items() if not str(k).startswith("_")}
        if class_names is not None:
            params["class_names"] = class_names
        if frame_hop is not None:
            params["frame_hop"] = frame_hop
        allowed = {"class_names", "frame_hop", *DECODER_KEYS}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(
                f"unknown post-processing option(s) {unknown}; allowed: {sorted(allowed)}"
            )
        missing = sorted({"class_names", "frame_hop"} - set(params))
        if missing:
            raise ValueError(f"post-processing config needs {missing}")
        return cls(**params)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(class_names={self.class_names}, frame_hop={self.frame_hop}, "
            f"median_window={self.median_window}, threshold={self.threshold}, "
            f"min_duration={self.min_duration})"
        )

    def _check(self, scores: Any) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[1] != len(self.class_names):
            raise ValueError(
                f"scores must have shape (n_frames, {len(self.class_names)}), got {scores.shape}"
            )
        return scores

    def smooth(self, scores: np.ndarray) -> np.ndarray:
        """Median-filter each class along time with its own window (``mode="nearest"``)."""
        scores = self._check(scores)
        smoothed = np.empty_like(scores)
        for k, c in enumerate(self.class_names):
            smoothed[:, k] = median_filter(scores[:, k], size=self.window_frames[c], mode="nearest")
        return smoothed

    def decode(
        self, scores: np.ndarray, filename: str, duration: float | None = None
    ) -> pd.DataFrame:
        """Smooth, threshold (``>=``) and prune one clip; returns its event table.

        ``duration`` (seconds) clips events to the audio: the last frame may reach past it,
        and a clip shorter than the model's input has frames past its end (padding); a
        detection there is dropped, so every event has ``0 <= onset < offset <= duration``.
        """
        smoothed = self.smooth(scores)
        end_time = np.inf if duration is None else duration
        rows: list[tuple[str, float, float, str]] = []
        for k, c in enumerate(self.class_names):
            active = smoothed[:, k] >= self.threshold[c]
            for onset, offset in event_times(
                active, self.frame_hop, self.min_duration[c], end_time
            ):
                rows.append((filename, onset, offset, c))
        return _sorted_table(rows)

    def __call__(
        self,
        scores_by_file: Mapping[str, np.ndarray],
        durations: Mapping[str, float] | None = None,
    ) -> pd.DataFrame:
        """Decode every clip; one table sorted by filename, onset, offset, label.

        ``durations`` (seconds, by filename) clips each clip's offsets to its length.
        """
        rows: list[tuple[str, float, float, str]] = []
        for filename, scores in scores_by_file.items():
            duration = durations.get(filename) if durations else None
            table = self.decode(scores, filename, duration)
            rows.extend(table.itertuples(index=False, name=None))
        return _sorted_table(rows)

    def smoothed_scores(self, scores_by_file: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Median-filtered scores for every clip (e.g. to save them for PSDS evaluation)."""
        return {filename: self.smooth(scores) for filename, scores in scores_by_file.items()}


def _sorted_table(rows: list[tuple[str, float, float, str]]) -> pd.DataFrame:
    if not rows:
        return empty_event_table()
    table = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    table = table.sort_values(EVENT_COLUMNS, kind="stable").reset_index(drop=True)
    return table


__all__ = [
    "EVENT_COLUMNS",
    "event_times",
    "PostProcessor",
    "empty_event_table",
    "resolve_per_class",
    "window_in_frames",
]
