"""The project's metrics equal direct sed_eval / sed_scores_eval / torchmetrics calls."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sed_eval
import torch
from sed_scores_eval import intersection_based
from sed_scores_eval.base_modules.io import read_audio_durations, read_ground_truth_events
from sed_scores_eval.base_modules.scores import create_score_dataframe
from torchmetrics.classification import MultilabelAveragePrecision

from sed_lightning.evaluation import (
    PSDS1,
    PSDS2,
    audio_id,
    clip_map,
    compute_all,
    ground_truth_events,
    psds,
    psds_with_per_class,
    read_scores,
    scores_to_dataframes,
    sed_eval_metrics,
    settings,
    write_scores,
)

CLASSES = ["Cat", "Dog", "Speech"]
HEADER = "filename\tonset\toffset\tevent_label\n"

# clip_1: one hit (Speech), one onset-miss (Dog); clip_2: hit + false alarm; clip_3: listed
# without events, gets a false alarm; clip_4: reference only (all missed); clip_5: estimate only.
REF_ROWS = [
    ("clip_1.wav", 0.5, 3.0, "Speech"),
    ("clip_1.wav", 4.0, 5.0, "Dog"),
    ("clip_2.wav", 1.0, 2.5, "Cat"),
    ("clip_2.wav", 6.0, 9.5, "Speech"),
    ("clip_3.wav", None, None, None),
    ("clip_4.wav", 2.0, 3.0, "Cat"),
    ("clip_4.wav", 5.0, 7.0, "Dog"),
]
EST_ROWS = [
    ("clip_1.wav", 0.6, 3.1, "Speech"),
    ("clip_1.wav", 4.6, 5.2, "Dog"),
    ("clip_2.wav", 1.1, 2.4, "Cat"),
    ("clip_2.wav", 6.1, 9.0, "Speech"),
    ("clip_2.wav", 3.0, 4.0, "Dog"),
    ("clip_3.wav", 1.0, 2.0, "Cat"),
    ("clip_5.wav", 0.0, 1.5, "Speech"),
]


def _write_tsv(path: Path, rows) -> Path:
    lines = ["\t".join("" if v is None else str(v) for v in row) + "\n" for row in rows]
    path.write_text(HEADER + "".join(lines))
    return path


@pytest.fixture
def tsvs(tmp_path):
    return _write_tsv(tmp_path / "ref.tsv", REF_ROWS), _write_tsv(tmp_path / "est.tsv", EST_ROWS)


def _direct_sed_eval(ref_path: Path, est_path: Path):
    """Plain sed_eval, DESED-baseline style, with literal DCASE Task 4 parameters."""
    ref = sed_eval.io.load_event_list(str(ref_path))
    est = sed_eval.io.load_event_list(str(est_path))
    files = sorted(set(ref.unique_files) | set(est.unique_files))
    event = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=CLASSES,
        t_collar=0.2,
        percentage_of_length=0.2,
        empty_system_output_handling="zero_score",
    )
    segment = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=CLASSES, time_resolution=1.0
    )
    for f in files:
        # dcase_util turns DESED's "file without events" row (empty onset/offset/label) into an
        # item with offset None, which sed_eval cannot evaluate: keep only real events.
        ref_events = [e for e in ref.filter(filename=f) if e.event_label]
        est_events = [e for e in est.filter(filename=f) if e.event_label]
        event.evaluate(ref_events, est_events)
        segment.evaluate(ref_events, est_events)
    return event, segment


def test_f1_equals_direct_sed_eval(tsvs):
    ref_path, est_path = tsvs
    event, segment = _direct_sed_eval(ref_path, est_path)
    ours = sed_eval_metrics(
        pd.read_csv(ref_path, sep="\t"), pd.read_csv(est_path, sep="\t"), CLASSES
    )
    expected_event = event.results_class_wise_average_metrics()["f_measure"]["f_measure"]
    expected_segment = segment.results_class_wise_average_metrics()["f_measure"]["f_measure"]
    assert ours["event_f1"] == pytest.approx(expected_event)
    assert ours["segment_f1"] == pytest.approx(expected_segment)
    assert ours["event_f1_micro"] == pytest.approx(
        event.results_overall_metrics()["f_measure"]["f_measure"]
    )
    assert ours["segment_f1_micro"] == pytest.approx(
        segment.results_overall_metrics()["f_measure"]["f_measure"]
    )
    for c in CLASSES:
        assert ours["event_f1_per_class"][c] == pytest.approx(
            event.class_wise_f_measure(c)["f_measure"]
        )
        assert ours["segment_f1_per_class"][c] == pytest.approx(
            segment.class_wise_f_measure(c)["f_measure"]
        )
    # non-trivial data: some but not all events are found
    assert 0 < ours["event_f1"] < 1 and 0 < ours["segment_f1"] < 1


def test_f1_with_project_tsv_reader_matches(tsvs):
    from sed_lightning.data.tsv import read_strong_tsv

    ref_path, est_path = tsvs
    from_pandas = sed_eval_metrics(
        pd.read_csv(ref_path, sep="\t"), pd.read_csv(est_path, sep="\t"), CLASSES
    )
    from_reader = sed_eval_metrics(read_strong_tsv(ref_path), read_strong_tsv(est_path), CLASSES)
    assert from_reader == from_pandas


def test_f1_nan_handling_follows_sed_eval():
    ref = pd.DataFrame(
        [("a.wav", 0.0, 2.0, "Cat"), ("a.wav", 3.0, 4.0, "Dog")], columns=list(HEADER.split())
    )
    est = pd.DataFrame([("a.wav", 0.0, 2.0, "Cat")], columns=list(HEADER.split()))
    res = sed_eval_metrics(ref, est, CLASSES)
    # Dog: reference but no detection -> F1 0 in both (zero_score), so it counts in the mean
    assert res["event_f1_per_class"]["Dog"] == 0.0
    assert res["segment_f1_per_class"]["Dog"] == 0.0
    # Speech: neither reference nor detection -> NaN, skipped by the class-wise average
    assert math.isnan(res["event_f1_per_class"]["Speech"])
    assert res["event_f1"] == pytest.approx(0.5)
    assert res["segment_f1"] == pytest.approx(0.5)


def test_segment_empty_output_handling_is_sed_eval_s():
    ref = pd.DataFrame([("a.wav", 0.0, 2.0, "Cat")], columns=list(HEADER.split()))
    est = ref.iloc[:0]
    res = sed_eval_metrics(ref, est, ["Cat"])  # project default: zero_score
    assert res["segment_f1"] == 0.0 and res["event_f1"] == 0.0
    desed = settings.SegmentBasedSetting(empty_system_output_handling=None)  # sed_eval default
    assert math.isnan(sed_eval_metrics(ref, est, ["Cat"], segment_setting=desed)["segment_f1"])


def test_unknown_label_raises():
    ref = pd.DataFrame([("a.wav", 0.0, 2.0, "Cow")], columns=list(HEADER.split()))
    with pytest.raises(ValueError, match="Cow"):
        sed_eval_metrics(ref, ref, CLASSES)


# --------------------------------------------------------------------------- PSDS
# clip_3 is short so that its false "Speech" alarm stays a cross-trigger on Dog/Cat (PSDS2)
# even at the lowest threshold, where the whole clip is detected.
DURATIONS = {"clip_1.wav": 30.0, "clip_2.wav": 30.0, "clip_3.wav": 10.0, "clip_4.wav": 30.0}
FRAME_HOP = 0.5


def _frame_scores() -> tuple[dict[str, np.ndarray], list[tuple]]:
    """Frame scores for 4 clips: low noise plus score bumps (hits, a weak hit, false alarms)."""
    rng = np.random.default_rng(0)
    gt_rows = [
        ("clip_1.wav", 2.0, 6.0, "Cat"),
        ("clip_1.wav", 10.0, 14.5, "Speech"),
        ("clip_2.wav", 1.0, 3.0, "Dog"),
        ("clip_2.wav", 20.0, 28.0, "Speech"),
        ("clip_3.wav", 5.0, 9.0, "Dog"),
        ("clip_3.wav", 5.5, 7.0, "Cat"),
        ("clip_4.wav", None, None, None),
    ]
    bumps = [  # (file, onset, offset, class, score)
        ("clip_1.wav", 2.0, 6.0, "Cat", 0.9),
        ("clip_1.wav", 10.5, 14.5, "Speech", 0.8),
        ("clip_1.wav", 20.0, 22.0, "Dog", 0.6),  # false alarm
        ("clip_2.wav", 1.0, 3.0, "Dog", 0.3),  # weak hit, below the false alarms
        ("clip_2.wav", 19.0, 28.0, "Speech", 0.7),
        ("clip_2.wav", 10.0, 12.0, "Cat", 0.55),  # false alarm
        ("clip_3.wav", 5.0, 9.0, "Dog", 0.85),
        ("clip_3.wav", 5.5, 7.0, "Cat", 0.4),
        ("clip_3.wav", 5.0, 8.0, "Speech", 0.72),  # false alarm, cross-trigger on Dog/Cat
        ("clip_4.wav", 10.0, 12.0, "Speech", 0.75),  # false alarm
        ("clip_4.wav", 15.0, 18.0, "Cat", 0.5),  # false alarm
    ]
    scores = {}
    for name, seconds in DURATIONS.items():
        s = 0.01 * rng.random((int(seconds / FRAME_HOP), len(CLASSES)))
        for f, on, off, label, height in bumps:
            if f == name:
                s[int(on / FRAME_HOP) : int(off / FRAME_HOP), CLASSES.index(label)] += height
        scores[name] = np.clip(s, 0.0, 1.0)
    return scores, gt_rows


@pytest.fixture
def psds_inputs(tmp_path):
    scores, gt_rows = _frame_scores()
    gt_path = _write_tsv(tmp_path / "gt.tsv", gt_rows)
    dur_path = tmp_path / "durations.tsv"
    dur_path.write_text(
        "filename\tduration\n" + "".join(f"{f}\t{d}\n" for f, d in DURATIONS.items())
    )
    return scores, gt_path, dur_path


@pytest.mark.parametrize(
    ("setting", "params"),
    [
        (PSDS1, dict(dtc_threshold=0.7, gtc_threshold=0.7, alpha_ct=0.0, alpha_st=1.0)),
        (
            PSDS2,
            dict(
                dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1.0
            ),
        ),
    ],
)
def test_psds_equals_direct_sed_scores_eval(psds_inputs, setting, params):
    scores, gt_path, dur_path = psds_inputs
    # direct: sed_scores_eval's own readers and DataFrame constructor, literal DCASE parameters
    direct_scores = {
        name[: -len(".wav")]: create_score_dataframe(s, np.arange(len(s) + 1) * FRAME_HOP, CLASSES)
        for name, s in scores.items()
    }
    expected, expected_per_class, *_ = intersection_based.psds(
        scores=direct_scores,
        ground_truth=read_ground_truth_events(gt_path),
        audio_durations=read_audio_durations(dur_path),
        max_efpr=100.0,
        **params,
    )
    # project: frame arrays + strong DataFrame + {filename: seconds}
    score_dfs = scores_to_dataframes(scores, FRAME_HOP, CLASSES)
    gt = pd.read_csv(gt_path, sep="\t")
    durations = dict(DURATIONS)
    value, per_class = psds_with_per_class(score_dfs, gt, durations, setting)
    assert 0.0 < value < 1.0
    assert value == pytest.approx(expected)
    assert per_class == pytest.approx(expected_per_class)
    assert psds(score_dfs, gt, durations, setting) == pytest.approx(expected)


def test_scores_roundtrip_and_key_convention(psds_inputs, tmp_path):
    scores, gt_path, _ = psds_inputs
    score_dfs = scores_to_dataframes(scores, FRAME_HOP, CLASSES)
    assert sorted(score_dfs) == ["clip_1", "clip_2", "clip_3", "clip_4"]
    assert score_dfs["clip_3"]["offset"].iloc[-1] == pytest.approx(DURATIONS["clip_3.wav"])
    out = write_scores(score_dfs, tmp_path / "scores")
    assert sorted(p.name for p in out.iterdir()) == [f"clip_{i}.tsv" for i in range(1, 5)]
    loaded = read_scores(out)
    assert sorted(loaded) == sorted(score_dfs)
    pd.testing.assert_frame_equal(loaded["clip_2"], score_dfs["clip_2"])
    # ground truth keys match the score keys; clip_4 (empty row) has no events
    gt = ground_truth_events(pd.read_csv(gt_path, sep="\t"))
    direct = read_ground_truth_events(gt_path)
    assert gt == {k: [tuple(e) for e in v] for k, v in direct.items()} | {"clip_4": []}
    assert audio_id("Y-abc_0.000_10.000.wav") == "Y-abc_0.000_10.000"


def test_psds_input_errors(psds_inputs):
    scores, gt_path, _ = psds_inputs
    score_dfs = scores_to_dataframes(scores, FRAME_HOP, CLASSES)
    gt = pd.read_csv(gt_path, sep="\t")
    with pytest.raises(ValueError, match="no duration"):
        psds(score_dfs, gt, {"clip_1.wav": 30.0}, PSDS1)
    partial = {k: v for k, v in score_dfs.items() if k != "clip_2"}
    with pytest.raises(ValueError, match="without scores"):
        psds(partial, gt, DURATIONS, PSDS1)


def test_psds_class_without_ground_truth_events(psds_inputs):
    scores, gt_path, _ = psds_inputs
    gt = pd.read_csv(gt_path, sep="\t")
    no_cat = gt[gt["event_label"] != "Cat"]
    score_dfs = scores_to_dataframes(scores, FRAME_HOP, CLASSES)
    with pytest.raises(ValueError, match="Cat"):
        psds(score_dfs, no_cat, DURATIONS, PSDS1)
    with pytest.warns(UserWarning, match="Cat"):
        value, per_class = psds_with_per_class(
            score_dfs, no_cat, DURATIONS, PSDS1, drop_classes_without_events=True
        )
    without_cat = {k: v.drop(columns=["Cat"]) for k, v in score_dfs.items()}
    assert set(per_class) == {"Dog", "Speech"}
    assert value == pytest.approx(psds(without_cat, no_cat, DURATIONS, PSDS1))


# --------------------------------------------------------------------------- clip mAP
def test_clip_map_equals_torchmetrics_and_known_values():
    preds = torch.tensor([[0.9, 0.2, 0.4], [0.3, 0.8, 0.7], [0.6, 0.1, 0.2], [0.2, 0.7, 0.9]])
    target = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1]])
    expected = MultilabelAveragePrecision(num_labels=3, average="macro")(preds, target)
    assert clip_map(preds, target) == pytest.approx(float(expected))
    assert clip_map(preds.numpy(), target.numpy()) == pytest.approx(float(expected))
    assert 0 < clip_map(preds, target) < 1
    perfect_target = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 1]])
    assert clip_map(preds, perfect_target) == pytest.approx(1.0)


# --------------------------------------------------------------------------- everything
def test_compute_all_keys_and_values(tsvs, psds_inputs):
    ref_path, est_path = tsvs
    ref, est = pd.read_csv(ref_path, sep="\t"), pd.read_csv(est_path, sep="\t")
    f1 = sed_eval_metrics(ref, est, CLASSES)
    res = compute_all(ref, est, None, None, CLASSES, prefix="test/")
    assert res["test/event_f1"] == pytest.approx(f1["event_f1"])
    assert res["test/segment_f1/Dog"] == pytest.approx(f1["segment_f1_per_class"]["Dog"])
    assert {f"test/event_f1/{c}" for c in CLASSES} <= set(res)
    assert "test/psds1" not in res and "test/clip_map" not in res

    scores, gt_path, _ = psds_inputs
    gt = pd.read_csv(gt_path, sep="\t")
    score_dfs = scores_to_dataframes(scores, FRAME_HOP, CLASSES)
    preds, target = torch.rand(5, 3, generator=torch.Generator().manual_seed(0)), torch.eye(5, 3)
    res = compute_all(gt, gt, score_dfs, None, CLASSES, preds, target)
    assert res["event_f1"] == pytest.approx(1.0) and res["segment_f1"] == pytest.approx(1.0)
    assert res["psds1"] == pytest.approx(psds(score_dfs, gt, DURATIONS, PSDS1))
    assert res["psds2"] == pytest.approx(psds(score_dfs, gt, DURATIONS, PSDS2))
    assert res["clip_map"] == pytest.approx(clip_map(preds, target))
    assert all(isinstance(v, float) for v in res.values())


def test_settings_are_the_dcase_task4_values():
    assert (settings.EVENT_BASED.t_collar, settings.EVENT_BASED.percentage_of_length) == (0.2, 0.2)
    assert settings.SEGMENT_BASED.time_resolution == 1.0
    assert PSDS1.kwargs() == dict(
        dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None, alpha_ct=0.0, alpha_st=1.0,
        max_efpr=100.0, unit_of_time="hour",
    )  # fmt: skip
    assert PSDS2.kwargs() == dict(
        dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1.0,
        max_efpr=100.0, unit_of_time="hour",
    )  # fmt: skip
    with pytest.raises(AttributeError):
        PSDS1.alpha_st = 0.0  # frozen
