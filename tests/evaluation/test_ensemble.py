"""Averaging the frame scores of several detectors: hand-made score tables."""

from __future__ import annotations

import numpy as np
import pytest

from sed_lightning.evaluation.ensemble import EnsembleError, average_scores
from sed_lightning.evaluation.scores import scores_to_dataframes

CLASSES = ["x", "y"]


def member(values, hop=0.5, name="c"):
    return scores_to_dataframes({name: np.asarray(values, dtype=float)}, hop, CLASSES)


def test_weighted_mean_per_frame_and_class():
    a = member([[1.0, 0.0], [0.5, 0.5]])
    b = member([[0.0, 0.0], [0.5, 1.0]])
    out = average_scores([a, b], weights=[3, 1])["c"]
    assert out[CLASSES].to_numpy() == pytest.approx(np.array([[0.75, 0.0], [0.5, 0.625]]))
    assert out["onset"].tolist() == [0.0, 0.5] and out["offset"].tolist() == [0.5, 1.0]
    # one member: its own scores back
    assert average_scores([a])["c"][CLASSES].to_numpy() == pytest.approx(a["c"][CLASSES].to_numpy())


def test_members_on_other_clips_classes_or_grids_are_named():
    a = member([[0.1, 0.2]])
    with pytest.raises(EnsembleError, match=r"run_b: not the clips of run_a \(missing \['c'\]"):
        average_scores([a, member([[0.1, 0.2]], name="d")], names=["run_a", "run_b"])
    with pytest.raises(EnsembleError, match="run_b: clip c: 1 frames on another grid"):
        average_scores([a, member([[0.1, 0.2]], hop=0.25)], names=["run_a", "run_b"])
    swapped = {"c": a["c"][["onset", "offset", "y", "x"]]}
    with pytest.raises(EnsembleError, match="classes"):
        average_scores([a, swapped])
    for weights in ([1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(EnsembleError, match="weights"):
            average_scores([a, a], weights=weights)
    with pytest.raises(EnsembleError, match="at least one"):
        average_scores([])
