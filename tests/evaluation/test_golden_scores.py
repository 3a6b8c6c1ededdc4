"""Golden scores: a committed reference, estimate and frame scores must keep scoring exactly
the committed figures. This catches metric drift when the lock moves sed_eval or
sed_scores_eval (or their numpy / pandas) to another release.

To re-record after a deliberate change: ``python tests/fixtures/golden/make.py --expected``,
and say in the commit why the figures moved.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from sed_lightning.evaluate import evaluate_files

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
FIGURES = [
    "event_f1",
    "event_f1_micro",
    "segment_f1",
    "segment_f1_micro",
    "psds1",
    "psds2",
    "event_f1_per_class",
    "segment_f1_per_class",
    "psds1_per_class",
    "psds2_per_class",
    "dcase2016/onset_f1",
    "dcase2016/onset_er",
    "dcase2016/segment_er",
    "dcase2016/segment_f1",
]


@pytest.fixture(scope="module")
def scored() -> dict:
    return evaluate_files(
        GOLDEN / "reference.tsv",
        GOLDEN / "estimate.tsv",
        scores=GOLDEN / "scores",
        durations=GOLDEN / "durations.tsv",
        classes=EXPECTED["classes"],
    )


def _versions() -> str:
    installed = {p: version(p) for p in ("sed_eval", "sed_scores_eval", "numpy", "pandas")}
    return f"installed {installed}; expected.json was recorded with {EXPECTED['versions']}"


@pytest.mark.parametrize("figure", FIGURES)
def test_golden_figure(scored, figure):
    expected, got = EXPECTED[figure], scored[figure]
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), _versions()
        for cls in expected:
            assert got[cls] == pytest.approx(expected[cls], abs=1e-9, rel=0), (
                f"{figure}[{cls}] = {got[cls]!r}, golden {expected[cls]!r}: {_versions()}"
            )
    else:
        assert got == pytest.approx(expected, abs=1e-9, rel=0), (
            f"{figure} = {got!r}, golden {expected!r}: {_versions()}"
        )


def test_golden_case_is_not_trivial():
    """The figures sit strictly between 0 and 1, so a drift in either direction shows."""
    for figure in ("event_f1", "segment_f1", "psds1", "psds2"):
        assert 0.05 < EXPECTED[figure] < 0.95
