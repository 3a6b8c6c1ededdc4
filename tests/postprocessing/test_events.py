"""PostProcessor: median filter, thresholds, min duration, per-class parameters."""

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from sed_lightning.postprocessing import PostProcessor, window_in_frames

HOP = 0.25  # exact in binary, so onsets/offsets compare exactly


def _column(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=float)[:, None]


def test_median_filter_removes_one_frame_spike_and_fills_gap():
    scores = _column(0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0)
    pp = PostProcessor(["a"], frame_hop=HOP, median_window=3 * HOP)
    assert pp.window_frames == {"a": 3}
    np.testing.assert_array_equal(pp.smooth(scores)[:, 0], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0])
    events = pp.decode(scores, "clip_00001.wav")
    assert events.to_dict("records") == [
        {"filename": "clip_00001.wav", "onset": 1.25, "offset": 2.5, "event_label": "a"}
    ]


def test_no_smoothing_keeps_spike_and_gives_exact_times():
    scores = _column(0, 0, 1, 0, 0, 0.5, 0.7, 0.2)
    pp = PostProcessor(["a"], frame_hop=HOP, median_window=0.0, threshold=0.5)
    events = pp.decode(scores, "x.wav")
    # threshold is inclusive (0.5 >= 0.5)
    assert events[["onset", "offset"]].values.tolist() == [[0.5, 0.75], [1.25, 1.75]]


def test_min_duration_drops_short_events():
    scores = _column(1, 1, 0, 0, 1, 1, 1, 0)  # 2-frame (0.5 s) and 3-frame (0.75 s) events
    pp = PostProcessor(["a"], frame_hop=HOP, median_window=0.0, min_duration=0.6)
    events = pp.decode(scores, "x.wav")
    assert events[["onset", "offset"]].values.tolist() == [[1.0, 1.75]]
    # an event exactly min_duration long is kept (no float noise: 2 * 0.1 vs 0.2)
    pp = PostProcessor(["a"], frame_hop=0.1, median_window=0.0, min_duration=0.2)
    events = pp.decode(_column(0, 0, 0, 1, 1, 0), "x.wav")
    assert events[["onset", "offset"]].values.tolist() == [[0.3, 0.5]]


def test_event_at_clip_end_is_closed():
    pp = PostProcessor(["a"], frame_hop=HOP, median_window=0.0)
    events = pp.decode(_column(0, 0, 1, 1), "x.wav")
    assert events[["onset", "offset"]].values.tolist() == [[0.5, 1.0]]


def test_per_class_thresholds_windows_and_min_durations():
    scores = np.stack(
        [
            [0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0],  # cat: 1-frame spike
            [0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0],  # dog: same spike
            [0.4, 0.4, 0.4, 0.4, 0.0, 0.0, 0.0, 0.0],  # bird: below default threshold
        ],
        axis=1,
    )
    pp = PostProcessor(
        ["cat", "dog", "bird"],
        frame_hop=HOP,
        median_window={"cat": 3 * HOP, "default": 0.0},
        threshold={"bird": 0.3, "default": 0.5},
        min_duration={"bird": 0.5, "default": 0.0},
    )
    assert pp.window_frames == {"cat": 3, "dog": 1, "bird": 1}
    assert pp.threshold == {"cat": 0.5, "dog": 0.5, "bird": 0.3}
    events = pp.decode(scores, "x.wav")
    assert events.to_dict("records") == [
        {"filename": "x.wav", "onset": 0.0, "offset": 1.0, "event_label": "bird"},
        {"filename": "x.wav", "onset": 0.5, "offset": 0.75, "event_label": "dog"},
    ]


def test_unknown_class_key_raises_naming_it():
    with pytest.raises(ValueError, match=r"'kat'.*\['cat', 'dog'\]"):
        PostProcessor(["cat", "dog"], frame_hop=HOP, threshold={"kat": 0.3, "default": 0.5})


def test_missing_class_without_default_raises():
    with pytest.raises(ValueError, match="dog"):
        PostProcessor(["cat", "dog"], frame_hop=HOP, min_duration={"cat": 0.3})


def test_window_in_frames_is_odd_and_at_least_one():
    expected = {0.0: 1, 0.04: 1, 0.1: 1, 0.2: 3, 0.3: 3, 0.45: 5, 0.7: 7}
    assert {w: window_in_frames(w, 0.1) for w in expected} == expected


def test_call_sorts_all_files_and_handles_empty():
    pp = PostProcessor(["a", "b"], frame_hop=HOP, median_window=0.0)
    scores = {
        "z.wav": np.array([[1.0, 0.0], [0.0, 1.0]]),
        "a.wav": np.array([[0.0, 1.0], [1.0, 0.0]]),
        "m.wav": np.zeros((3, 2)),
    }
    events = pp(scores)
    assert list(events.columns) == ["filename", "onset", "offset", "event_label"]
    assert events[["filename", "onset", "event_label"]].values.tolist() == [
        ["a.wav", 0.0, "b"],
        ["a.wav", 0.25, "a"],
        ["z.wav", 0.0, "a"],
        ["z.wav", 0.25, "b"],
    ]
    empty = pp({"m.wav": np.zeros((3, 2))})
    assert empty.empty and list(empty.columns) == list(events.columns)
    smoothed = pp.smoothed_scores(scores)
    assert set(smoothed) == set(scores) and smoothed["m.wav"].shape == (3, 2)


def test_wrong_shape_raises():
    pp = PostProcessor(["a", "b"], frame_hop=HOP)
    with pytest.raises(ValueError, match="shape"):
        pp.decode(np.zeros((4, 3)), "x.wav")


def test_from_config_with_omegaconf_node():
    cfg = OmegaConf.create(
        {
            "_target_": "ignored",
            "median_window": {"cat": 0.75, "default": 0.25},
            "threshold": 0.4,
            "min_duration": {"default": 0.1},
        }
    )
    pp = PostProcessor.from_config(cfg, class_names=OmegaConf.create(["cat", "dog"]), frame_hop=HOP)
    assert pp.class_names == ["cat", "dog"]
    assert pp.window_frames == {"cat": 3, "dog": 1}
    assert pp.threshold == {"cat": 0.4, "dog": 0.4}
    assert pp.min_duration == {"cat": 0.1, "dog": 0.1}
    with pytest.raises(ValueError, match="median_widow"):
        PostProcessor.from_config({"median_widow": 0.3}, class_names=["a"], frame_hop=HOP)
    # a run's `postprocess` node also says what the run tunes after its test: not a setting
    tuned_run = OmegaConf.merge(cfg, {"tune": "sebbs"})
    pp = PostProcessor.from_config(tuned_run, class_names=["cat", "dog"], frame_hop=HOP)
    assert pp.threshold == {"cat": 0.4, "dog": 0.4}
    # DictConfig values passed straight to the constructor (hydra.utils.instantiate) work too.
    pp = PostProcessor(["cat", "dog"], HOP, median_window=cfg.median_window)
    assert pp.window_frames == {"cat": 3, "dog": 1}


def test_output_is_a_dataframe_with_float_times():
    pp = PostProcessor(["a"], frame_hop=HOP, median_window=0.0)
    events = pp.decode(_column(1, 1), "x.wav")
    assert isinstance(events, pd.DataFrame)
    assert events["onset"].dtype == float and events["offset"].dtype == float


def test_offsets_are_clipped_to_the_file_duration():
    pp = PostProcessor(["a"], frame_hop=0.5, median_window=0.5, threshold=0.5)
    scores = np.array([[0.0], [0.0], [0.9], [0.9]])  # active in the last two frames: 1.0-2.0 s
    table = pp({"x.wav": scores}, durations={"x.wav": 1.8})
    assert table[["onset", "offset"]].values.tolist() == [[1.0, 1.8]]
    assert pp({"x.wav": scores})["offset"].tolist() == [2.0]


@pytest.mark.parametrize("duration", [3.7, 9.99])
def test_no_event_starts_at_or_after_the_end_of_a_short_clip(duration):
    """Clips shorter than the 10 s model input: frames past their end are padding."""
    hop = 0.064
    scores = np.zeros((156, 2))
    scores[:, 0] = 0.9  # class a: on over the whole 10 s grid
    tail = int(np.ceil(duration / hop)) + 1
    scores[tail:, 1] = 0.9  # class b: only in the padded tail
    pp = PostProcessor(["a", "b"], frame_hop=hop, median_window=0.0)
    events = pp.decode(scores, "short.wav", duration=duration)
    assert events["event_label"].tolist() == ["a"]
    assert (events["onset"] < events["offset"]).all()
    assert events["offset"].max() == pytest.approx(min(duration, 156 * hop))
