import numpy as np
import pytest
import torch

from sed_lightning.data.labels import LabelEncoder, active_runs
from sed_lightning.features.frontend import LogMelFrontend
from sed_lightning.models.cnn import CNN

CLASSES = ["a", "b", "c"]


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_within_one_frame(seed):
    rng = np.random.default_rng(seed)
    enc = LabelEncoder(CLASSES, frame_hop=0.064, n_frames=156)
    events = []
    for c in CLASSES:  # non-overlapping events per class, away from each other
        for start in rng.choice(np.arange(0.0, 9.0, 1.5), size=2, replace=False):
            onset = start + rng.uniform(0, 0.4)
            events.append((onset, onset + rng.uniform(0.2, 1.0), c))
    decoded = enc.decode_strong(enc.encode_strong(events))
    assert len(decoded) == len(events)
    for (on, off, lab), (don, doff, dlab) in zip(
        sorted(events, key=lambda e: (e[2], e[0])),
        sorted(decoded, key=lambda e: (e[2], e[0])),
        strict=True,
    ):
        assert lab == dlab
        assert 0 <= on - don < enc.frame_hop + 1e-9
        assert 0 <= doff - off < enc.frame_hop + 1e-9


def test_events_are_clipped_to_the_clip():
    enc = LabelEncoder(CLASSES, frame_hop=0.5, n_frames=4)
    m = enc.encode_strong([(1.2, 9.0, "b")])
    assert m[1].tolist() == [0, 0, 1, 1]


def test_unknown_label_is_named():
    with pytest.raises(ValueError, match="'dog'"):
        LabelEncoder(CLASSES, 0.1, 10).encode_weak(["dog"])


def test_active_runs():
    assert active_runs(np.array([1, 1, 0, 0, 1, 1, 1], dtype=bool)) == [(0, 2), (4, 7)]
    assert active_runs(np.zeros(3, dtype=bool)) == []


def test_for_clip_matches_the_model_frame_count():
    frontend = LogMelFrontend(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=32)
    cnn = CNN(n_mels=32, channels=[4, 4, 4], pooling=[[2, 2], [2, 2], [1, 2]])
    enc = LabelEncoder.for_clip(CLASSES, 16000 * 10 // 256 + 1, 256, cnn.time_pooling, 16000)
    out = cnn(frontend(torch.zeros(1, 16000 * 10)))
    assert out.shape[1] == enc.n_frames
    assert enc.frame_hop == pytest.approx(256 * 4 / 16000)
