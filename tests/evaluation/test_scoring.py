"""The pure scorer: probabilities + references -> metrics, no Lightning and no files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sed_lightning.evaluation.scoring import score_set
from sed_lightning.postprocessing import PostProcessor

CLASSES = ["Cat", "Dog"]
HOP = 0.1


def perfect_predictions():
    """Two 2 s clips: a Cat at 0.5-1.5 s in a.wav, a Dog at 0.2-1.0 s in b.wav."""
    frames = {"a.wav": np.zeros((20, 2)), "b.wav": np.zeros((20, 2))}
    frames["a.wav"][5:15, 0] = 1.0
    frames["b.wav"][2:10, 1] = 1.0
    clips = {f: p.max(axis=0) for f, p in frames.items()}
    reference = pd.DataFrame(
        [("a.wav", 0.5, 1.5, "Cat"), ("b.wav", 0.2, 1.0, "Dog")],
        columns=["filename", "onset", "offset", "event_label"],
    )
    targets = np.array([[1, 0], [0, 1]])
    return frames, clips, reference, targets, {"a.wav": 2.0, "b.wav": 2.0}


@pytest.mark.parametrize("full", [False, True])
def test_perfect_predictions_score_one(full):
    frames, clips, reference, targets, durations = perfect_predictions()
    pp = PostProcessor(CLASSES, HOP, median_window=0.0)
    result = score_set(frames, clips, reference, targets, durations, pp, "val", full=full)
    assert result.metrics["val/event_f1"] == pytest.approx(1.0)
    assert result.metrics["val/segment_f1"] == pytest.approx(1.0)
    assert result.metrics["val/clip_map"] == pytest.approx(1.0)
    assert ("val/psds1" in result.metrics) == full
    assert result.per_class == {c: {"event": 1.0, "segment": 1.0} for c in CLASSES}
    assert len(result.estimated) == 2 and set(result.score_dfs) == {"a", "b"}
