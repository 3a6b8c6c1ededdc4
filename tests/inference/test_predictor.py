"""Predictor: windows with overlap find an event across a window border whole."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from sed_lightning.data.labels import LabelEncoder
from sed_lightning.inference.predictor import Predictor

SR, FRAME, WINDOW = 1000, 10, 100  # 10 ms frames, 1 s windows


class EdgeBlindDetector(nn.Module):
    """Frame score 1 where the frame is loud, but only 0.2 in the first and last 10 frames
    of its window: a model with too little context at a window's edges (as real models)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, audio: torch.Tensor) -> SimpleNamespace:
        frames = audio.view(audio.shape[0], -1, FRAME).abs().mean(-1) > 0.1
        taper = torch.ones(frames.shape[1])
        taper[:10], taper[-10:] = 0.2, 0.2
        return SimpleNamespace(strong=(frames.float() * taper)[:, None, :])


def predictor(hop: float | None) -> Predictor:
    encoder = LabelEncoder(["beep"], frame_hop=FRAME / SR, n_frames=WINDOW)
    post = {"median_window": 0.0, "threshold": 0.5, "min_duration": 0.0}
    return Predictor(EdgeBlindDetector(), encoder, SR, post, hop=hop)


@pytest.fixture
def audio_with_event_across_a_border() -> np.ndarray:
    audio = np.zeros(3 * SR, dtype=np.float32)
    audio[int(0.8 * SR) : int(1.3 * SR)] = 0.5  # crosses the window border at 1.0 s
    return audio


def test_event_across_a_window_border_is_split_without_overlap(audio_with_event_across_a_border):
    p = predictor(hop=WINDOW * FRAME / SR)  # back-to-back windows
    events = p.events({"x.wav": p.frame_scores(audio_with_event_across_a_border)}, {"x.wav": 3.0})
    assert events[["onset", "offset"]].values.tolist() == [[0.8, 0.9], [1.1, 1.3]]


def test_event_across_a_window_border_is_found_whole_with_overlap(
    audio_with_event_across_a_border,
):
    p = predictor(hop=None)  # default: half a window
    assert p.hop_frames == WINDOW // 2
    events = p.events({"x.wav": p.frame_scores(audio_with_event_across_a_border)}, {"x.wav": 3.0})
    assert events[["onset", "offset"]].values.tolist() == [[0.8, 1.3]]


def test_scores_cover_the_file_and_stay_within_it():
    p = predictor(hop=None)
    audio = np.zeros(2345, dtype=np.float32)
    audio[-300:] = 0.5  # an event up to the very end
    scores = p.frame_scores(audio)
    assert scores.shape == (235, 1)
    events = p.events({"x.wav": scores}, {"x.wav": 2.345})
    assert events[["onset", "offset"]].values.tolist() == [[2.04, 2.345]]  # frame of 2.045 s
