"""Pseudo-labels of the seed method: clip probabilities binarized with per-class thresholds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from sed_lightning.data.batch import SEDBatch
from sed_lightning.data.datasets import SEDDataset
from sed_lightning.postprocessing.events import PerClass, resolve_per_class
from sed_lightning.training.module import SEDModule


def binarize(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """1 where a class's clip probability exceeds its threshold, else 0.

    Shape:
        - scores: ``(n_clips, n_classes)`` clip (weak) probabilities
        - thresholds: ``n_classes`` values
        - output: ``(n_clips, n_classes)`` int

    The seed's example: probabilities (0.1, 0.6, 0.9) with thresholds (0.5, 0.5, 0.8):

    >>> binarize(np.array([[0.1, 0.6, 0.9]]), [0.5, 0.5, 0.8])
    array([[0, 1, 1]])
    """
    scores = np.asarray(scores, dtype=float)
    thresholds = np.asarray(thresholds, dtype=float)
    if scores.ndim != 2 or thresholds.shape != (scores.shape[1],):
        raise ValueError(
            f"scores must be (n_clips, n_classes) and thresholds (n_classes,); got "
            f"{scores.shape} and {thresholds.shape}"
        )
    return (scores > thresholds).astype(int)


def class_thresholds(thresholds: PerClass, class_names: Sequence[str]) -> list[float]:
    """One threshold per class from a number or a ``{class: value, "default": value}`` map."""
    per_class = resolve_per_class("self_training.thresholds", thresholds, class_names)
    return [per_class[c] for c in class_names]


def pseudo_label_table(
    filenames: Sequence[str],
    scores: np.ndarray,
    class_names: Sequence[str],
    thresholds: Sequence[float],
    keep: Sequence[str] = (),
    drop_empty: bool = True,
) -> pd.DataFrame:
    """Weak-label table (DESED columns ``filename``, ``event_labels``) of the pseudo-labels.

    Args:
        filenames: the clips ``scores`` belong to (row order).
        scores: ``(n_clips, n_classes)`` clip probabilities.
        class_names: column order of ``scores``.
        thresholds: one per class (see :func:`binarize`).
        keep: clips kept even when no class passes (clips admitted in an earlier round:
            the weak set only grows, W' = W ∪ U).
        drop_empty: leave out the other clips where no class passes.

    >>> pseudo_label_table(["a.wav", "b.wav"], np.array([[0.9, 0.2], [0.1, 0.3]]),
    ...                    ["dog", "cat"], [0.5, 0.5]).to_dict("list")
    {'filename': ['a.wav'], 'event_labels': [['dog']]}
    """
    binary = binarize(scores, thresholds)
    kept = set(keep)
    rows = [
        (name, [c for c, on in zip(class_names, row, strict=True) if on])
        for name, row in zip(filenames, binary, strict=True)
    ]
    rows = [(n, labels) for n, labels in rows if labels or not drop_empty or n in kept]
    return pd.DataFrame(rows, columns=["filename", "event_labels"])


@torch.no_grad()
def clip_scores(
    module: SEDModule, dataset: SEDDataset, batch_size: int = 32, device: str = "cpu"
) -> tuple[list[str], np.ndarray]:
    """Clip (weak) probabilities of every clip of ``dataset``, in dataset order.

    Returns ``(filenames, scores)`` with ``scores`` of shape ``(n_clips, n_classes)``.
    """
    module = module.eval().to(device)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=SEDBatch.collate)
    names: list[str] = []
    parts: list[np.ndarray] = []
    for batch in loader:
        parts.append(module(batch.audio.to(device)).weak.float().cpu().numpy())
        names.extend(batch.filenames)
    return names, np.concatenate(parts) if parts else np.zeros((0, len(module.class_names)))


def class_counts(table: pd.DataFrame, class_names: Sequence[str]) -> dict[str, int]:
    """How many pseudo-labelled clips carry each class."""
    counts = dict.fromkeys(class_names, 0)
    for labels in table["event_labels"]:
        for label in labels:
            counts[label] += 1
    return counts
