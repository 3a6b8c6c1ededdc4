"""Batch dataclass: named parts and per-kind masks, never positional slicing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from sed_lightning.data.labels import LabelEncoder

KINDS = ("strong", "weak", "unlabeled")


def clip_kind_masks(has_weak: torch.Tensor, has_strong: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each clip's kind (:data:`KINDS`) as a mask: ``strong`` (frame labels), ``weak`` (clip
    labels only), ``unlabeled`` (none). Every clip is of exactly one kind.

    >>> masks = clip_kind_masks(torch.tensor([True, True, False]), torch.tensor([True, False, False]))
    >>> {k: v.tolist() for k, v in masks.items()}
    {'strong': [True, False, False], 'weak': [False, True, False], 'unlabeled': [False, False, True]}
    """
    return {"strong": has_strong, "weak": has_weak & ~has_strong, "unlabeled": ~has_weak}


def clip_item(
    audio: np.ndarray,
    filename: str,
    kind: str,
    encoder: LabelEncoder,
    events: Iterable[tuple[float, float, str]] = (),
    labels: Iterable[str] = (),
) -> dict[str, Any]:
    """One clip of ``kind`` as :meth:`SEDBatch.collate` takes it: ``events`` as frame labels
    for a ``strong`` clip, ``labels`` as clip labels for a ``strong`` or ``weak`` one, zeros
    where the kind has none."""
    strong = np.zeros((encoder.n_classes, encoder.n_frames), dtype=np.float32)
    weak = np.zeros(encoder.n_classes, dtype=np.float32)
    if kind == "strong":
        strong = encoder.encode_strong(events)
    if kind != "unlabeled":
        weak = encoder.encode_weak(labels)
    return {
        "audio": audio,
        "weak_labels": weak,
        "strong_labels": strong,
        "has_weak": kind != "unlabeled",
        "has_strong": kind == "strong",
        "filename": filename,
    }


@dataclass
class SEDBatch:
    """A batch mixing strong, weak and unlabeled clips.

    Shape:
        - audio: ``(batch, n_samples)``
        - weak_labels: ``(batch, n_classes)`` clip tags (zeros where ``has_weak`` is False)
        - strong_labels: ``(batch, n_classes, n_frames)`` (zeros where ``has_strong`` is False)
        - has_weak: ``(batch,)`` the clip has clip-level labels (strong clips do too)
        - has_strong: ``(batch,)`` the clip has frame-level labels
        - filenames: ``batch`` names
    """

    audio: torch.Tensor
    weak_labels: torch.Tensor
    strong_labels: torch.Tensor
    has_weak: torch.Tensor
    has_strong: torch.Tensor
    filenames: list[str] = field(default_factory=list)

    @property
    def is_unlabeled(self) -> torch.Tensor:
        return ~self.has_weak

    def __len__(self) -> int:
        return self.audio.shape[0]

    def to(self, device: torch.device | str) -> SEDBatch:
        return SEDBatch(
            audio=self.audio.to(device),
            weak_labels=self.weak_labels.to(device),
            strong_labels=self.strong_labels.to(device),
            has_weak=self.has_weak.to(device),
            has_strong=self.has_strong.to(device),
            filenames=self.filenames,
        )

    @classmethod
    def collate(cls, items: Sequence[dict[str, Any]]) -> SEDBatch:
        """Stack dataset items (dicts with the same keys as the fields)."""
        return cls(
            audio=torch.stack([torch.as_tensor(it["audio"]) for it in items]),
            weak_labels=torch.stack([torch.as_tensor(it["weak_labels"]) for it in items]),
            strong_labels=torch.stack([torch.as_tensor(it["strong_labels"]) for it in items]),
            has_weak=torch.tensor([bool(it["has_weak"]) for it in items]),
            has_strong=torch.tensor([bool(it["has_strong"]) for it in items]),
            filenames=[it["filename"] for it in items],
        )
