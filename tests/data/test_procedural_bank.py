"""Tests for sed_lightning.data.procedural_bank: a folder of procedural events."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sed_lightning.data.procedural_bank import build_event_bank, split_counts
from sed_lightning.data.sources import METADATA_COLUMNS, EventBank

SR = 16000


@pytest.mark.parametrize(
    ("n", "fractions", "expected"),
    [
        (40, (0.7, 0.15, 0.15), [28, 6, 6]),
        (3, (0.7, 0.15, 0.15), [1, 1, 1]),
        (5, (1, 0, 0), [5, 0, 0]),
    ],
)
def test_split_counts(n: int, fractions: tuple[float, ...], expected: list[int]) -> None:
    assert split_counts(n, fractions) == expected


def test_build_event_bank_layout_and_splits(tmp_path: Path) -> None:
    root = build_event_bank(tmp_path / "bank", class_names=("knock", "alarm"), n_per_class=4)

    meta = pd.read_csv(root / "metadata.csv")
    assert tuple(meta.columns) == METADATA_COLUMNS
    assert meta["filename"].tolist()[:4] == [f"knock/knock_{k:03d}.wav" for k in range(4)]
    assert meta["split"].tolist() == ["train", "train", "validation", "test"] * 2
    bank = EventBank(root)
    assert bank.class_names == ["alarm", "knock"]
    for source in bank.sources("train"):
        assert len(bank.load(source)) / SR == pytest.approx(source.duration, abs=1e-3)


def test_build_event_bank_is_cached(tmp_path: Path) -> None:
    root = build_event_bank(tmp_path, class_names=("knock",), n_per_class=3)
    wav = root / "knock" / "knock_000.wav"
    wav.write_bytes(b"marker")  # survives only if nothing is regenerated

    build_event_bank(tmp_path, class_names=("knock",), n_per_class=3)
    assert wav.read_bytes() == b"marker"

    build_event_bank(tmp_path, class_names=("knock",), n_per_class=3, seed=1)
    assert wav.read_bytes() != b"marker"
    assert json.loads((root / "bank.json").read_text())["seed"] == 1


def test_event_k_depends_only_on_seed_label_and_k(tmp_path: Path) -> None:
    small = build_event_bank(tmp_path / "small", class_names=("knock",), n_per_class=3)
    large = build_event_bank(tmp_path / "large", class_names=("alarm", "knock"), n_per_class=4)
    name = "knock/knock_001.wav"
    assert (small / name).read_bytes() == (large / name).read_bytes()
