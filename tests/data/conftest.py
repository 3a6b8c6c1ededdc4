"""Shared fixtures for the data tests: tiny procedural event banks (built once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sed_lightning.data.procedural_bank import build_event_bank

TINY_CLASSES = ("alarm", "knock", "engine")


@pytest.fixture(scope="session")
def tiny_bank_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Procedural bank: 3 classes x 3 events, split 1 train / 1 validation / 1 test each."""
    return build_event_bank(
        tmp_path_factory.mktemp("tiny_bank"), class_names=TINY_CLASSES, n_per_class=3, seed=0
    )


REAL_EVENTS = Path("data") / "dcase2016_task2_events"


def find_shared_dir() -> Path | None:
    """The project's shared folder: ``$SED_SHARED_DIR`` or a ``shared`` dir next to the repo.

    Walks up from the repository root looking for a sibling (or ancestor-level)
    ``shared`` folder, e.g. ``/work/shared`` for a checkout at ``/work/main``.
    """
    if os.environ.get("SED_SHARED_DIR"):
        return Path(os.environ["SED_SHARED_DIR"])
    repo_root = Path(__file__).resolve().parents[2]
    for folder in (repo_root, *repo_root.parents):
        if (folder / "shared").is_dir():
            return folder / "shared"
    return None


@pytest.fixture(scope="session")
def real_events_dir() -> Path:
    """The DCASE 2016 task 2 isolated-event folder; skips the test when it is absent."""
    shared = find_shared_dir()
    if shared is None or not (shared / REAL_EVENTS / "metadata.csv").is_file():
        pytest.skip("shared DCASE 2016 task 2 event folder not found (set SED_SHARED_DIR)")
    return shared / REAL_EVENTS
