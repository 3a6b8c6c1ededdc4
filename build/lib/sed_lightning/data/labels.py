"""Label encoder: event lists <-> frame matrices, frames <-> seconds."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def active_runs(active: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges of the runs of ``True`` in a 1-D boolean array.

    Example:
        >>> active_runs(np.array([0, 1, 1, 0, 1], dtype=bool))
        [(1, 3), (4, 5)]
    """
    padded = np.concatenate([[False], np.asarray(active, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


class LabelEncoder:
    """Encode events to the model's frame grid and decode frame matrices to events.

    Frame ``k`` covers ``[k * frame_hop, (k + 1) * frame_hop)`` seconds. An event
    ``(onset, offset)`` activates every frame it overlaps, so decoding returns an onset
    at most one frame early and an offset at most one frame late.

    Args:
        class_names: ordered class names (matrix rows).
        frame_hop: seconds between output frames (feature hop x CNN time pooling).
        n_frames: frames per clip.

    Example:
        >>> enc = LabelEncoder(["dog", "alarm"], frame_hop=0.1, n_frames=10)
        >>> m = enc.encode_strong([(0.25, 0.5, "alarm")])
        >>> m.shape, m[1].nonzero()[0].tolist()
        ((2, 10), [2, 3, 4])
        >>> enc.decode_strong(m)
        [(0.2, 0.5, 'alarm')]
    """

    def __init__(self, class_names: Sequence[str], frame_hop: float, n_frames: int) -> None:
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"duplicate class names in {list(class_names)}")
        self.class_names = list(class_names)
        self.index = {name: i for i, name in enumerate(self.class_names)}
        self.frame_hop = float(frame_hop)
        self.n_frames = int(n_frames)

    @classmethod
    def for_clip(
        cls,
        class_names: Sequence[str],
        n_input_frames: int,
        hop_length: int,
        time_pooling: int,
        sample_rate: int,
    ) -> LabelEncoder:
        """Encoder of a model that pools ``time_pooling`` front-end frames (one every
        ``hop_length`` samples) into one output frame; ``n_input_frames``: the front end's
        frames of one clip (its ``n_frames(clip_samples)``)."""
        return cls(
            class_names, hop_length * time_pooling / sample_rate, n_input_frames // time_pooling
        )

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def _class(self, label: str) -> int:
        try:
            return self.index[label]
        except KeyError:
            raise ValueError(f"unknown event label {label!r}; known: {self.class_names}") from None

    def frame(self, seconds: float) -> int:
        """Index of the frame containing time ``seconds``."""
        return int(math.floor(seconds / self.frame_hop + 1e-9))

    def encode_strong(self, events: Iterable[tuple[float, float, str]]) -> np.ndarray:
        """Frame matrix ``(n_classes, n_frames)`` of 0/1 for ``(onset, offset, label)`` events."""
        matrix = np.zeros((self.n_classes, self.n_frames), dtype=np.float32)
        for onset, offset, label in events:
            start = max(0, self.frame(onset))
            end = min(self.n_frames, int(math.ceil(offset / self.frame_hop - 1e-9)))
            matrix[self._class(label), start:end] = 1.0
        return matrix

    def encode_weak(self, labels: Iterable[str]) -> np.ndarray:
        """Multi-hot vector ``(n_classes,)``."""
        vector = np.zeros(self.n_classes, dtype=np.float32)
        for label in labels:
            vector[self._class(label)] = 1.0
        return vector

    def decode_strong(self, matrix: np.ndarray) -> list[tuple[float, float, str]]:
        """Events ``(onset, offset, label)`` from a binary ``(n_classes, n_frames)`` matrix."""
        events = []
        for c, name in enumerate(self.class_names):
            for start, end in active_runs(matrix[c] > 0.5):
                events.append(
                    (round(start * self.frame_hop, 6), round(end * self.frame_hop, 6), name)
                )
        return sorted(events)

    def decode_weak(self, vector: np.ndarray) -> list[str]:
        """Class names whose entry is 1 (> 0.5)."""
        return [name for name, v in zip(self.class_names, vector, strict=True) if v > 0.5]
