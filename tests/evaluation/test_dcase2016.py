"""The DCASE 2016 Task 2 figures: onset-only event-based F1 / ER (200 ms collar) and 1 s
segment-based ER / F1, overall (micro), equal direct sed_eval calls and hand-counted values."""

import math

import pandas as pd
import pytest
import sed_eval

from sed_lightning.evaluation import (
    DCASE2016_EVENT_BASED,
    DCASE2016_KEYS,
    DCASE2016_SEGMENT_BASED,
    compute_all,
    dcase2016_metrics,
    sed_eval_metrics,
)

COLUMNS = ["filename", "onset", "offset", "event_label"]
CLASSES = ["cat", "dog"]


def table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


# One 10 s clip. dog 1.0-2.0 is found with its onset 150 ms late and its offset 3 s late;
# cat 4.0-4.5 is found 250 ms late (a miss and a false alarm); dog 7.0-8.0 is missed.
REF = table([("a.wav", 1.0, 2.0, "dog"), ("a.wav", 4.0, 4.5, "cat"), ("a.wav", 7.0, 8.0, "dog")])
EST = table([("a.wav", 1.15, 5.0, "dog"), ("a.wav", 4.25, 4.5, "cat")])


def test_known_answer_onset_within_200ms_counts_whatever_the_offset():
    got = dcase2016_metrics(REF, EST, CLASSES)
    assert list(got) == list(DCASE2016_KEYS)
    # events: 1 hit (the dog; the late cat is no hit), 2 outputs, 3 references
    tp, n_sys, n_ref = 1, 2, 3
    precision, recall = tp / n_sys, tp / n_ref
    assert got["dcase2016/onset_f1"] == pytest.approx(
        2 * precision * recall / (precision + recall)
    )  # 0.4
    # no substitution (same labels): deletions 3 - 1 = 2, insertions 2 - 1 = 1
    assert got["dcase2016/onset_er"] == pytest.approx((0 + 2 + 1) / n_ref)  # 1.0
    # 1 s segments. reference: dog {1, 7}, cat {4}; estimate: dog {1, 2, 3, 4}, cat {4}.
    # segment 1: hit; 2, 3: insertion; 4: hit (cat) + insertion (dog); 7: deletion.
    tp, n_sys, n_ref = 2, 5, 3
    assert got["dcase2016/segment_f1"] == pytest.approx(2 * tp / (n_sys + n_ref))  # 0.5
    assert got["dcase2016/segment_er"] == pytest.approx((0 + 1 + 3) / n_ref)  # 4/3
    # the DESED event-based F1 also judges offsets: the dog's 3 s late offset is no hit
    assert sed_eval_metrics(REF, EST, CLASSES)["event_f1_micro"] == 0.0


def test_collar_edge_200ms_hits_250ms_misses():
    ref = table([("a.wav", 1.0, 2.0, "dog")])
    assert dcase2016_metrics(ref, table([("a.wav", 1.2, 9.0, "dog")]), CLASSES)[
        "dcase2016/onset_f1"
    ] == pytest.approx(1.0)
    assert dcase2016_metrics(ref, table([("a.wav", 0.75, 2.0, "dog")]), CLASSES)[
        "dcase2016/onset_f1"
    ] == pytest.approx(0.0)


def _direct(ref_rows, est_rows, files):
    """The figures straight from sed_eval, file by file, with the DCASE 2016 parameters."""
    event = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=CLASSES, evaluate_onset=True, evaluate_offset=False, t_collar=0.2
    )
    segment = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=CLASSES, time_resolution=1.0
    )
    for f in files:
        ref = [dict(zip(COLUMNS, r, strict=True)) for r in ref_rows if r[0] == f]
        est = [dict(zip(COLUMNS, r, strict=True)) for r in est_rows if r[0] == f]
        event.evaluate(reference_event_list=ref, estimated_event_list=est)
        segment.evaluate(reference_event_list=ref, estimated_event_list=est)
    e, s = event.results_overall_metrics(), segment.results_overall_metrics()
    return {
        "dcase2016/onset_f1": e["f_measure"]["f_measure"],
        "dcase2016/onset_er": e["error_rate"]["error_rate"],
        "dcase2016/segment_er": s["error_rate"]["error_rate"],
        "dcase2016/segment_f1": s["f_measure"]["f_measure"],
    }


def test_equals_direct_sed_eval_over_several_files():
    ref_rows = [
        ("a.wav", 1.0, 2.0, "dog"),
        ("a.wav", 4.0, 4.5, "cat"),
        ("b.wav", 2.0, 3.0, "cat"),  # found as a dog at 2.05: a substitution
        ("b.wav", 5.0, 9.0, "dog"),
        ("c.wav", 0.5, 1.0, "dog"),  # missed: c has no output
    ]
    est_rows = [
        ("a.wav", 1.1, 1.4, "dog"),
        ("a.wav", 6.0, 7.0, "cat"),
        ("b.wav", 2.05, 3.0, "dog"),
        ("b.wav", 5.1, 6.0, "dog"),
        ("d.wav", 1.0, 2.0, "cat"),  # false alarm in a clip without reference events
    ]
    got = dcase2016_metrics(table(ref_rows), table(est_rows), CLASSES)
    want = _direct(ref_rows, est_rows, ["a.wav", "b.wav", "c.wav", "d.wav"])
    assert got == pytest.approx(want, abs=1e-12)
    assert 0 < got["dcase2016/onset_f1"] < 1 and got["dcase2016/onset_er"] > 0


def test_no_output_scores_zero_f1_and_error_rate_one():
    got = dcase2016_metrics(REF, table([]), CLASSES, filenames=["a.wav"])
    assert got["dcase2016/onset_f1"] == 0.0 and got["dcase2016/segment_f1"] == 0.0
    assert got["dcase2016/onset_er"] == 1.0 and got["dcase2016/segment_er"] == 1.0
    # no reference events at all: sed_eval divides by eps (reported as is, not patched)
    empty = dcase2016_metrics(table([]), EST, CLASSES)
    assert empty["dcase2016/onset_er"] > 1e12 and math.isnan(empty["dcase2016/onset_f1"])


def test_compute_all_adds_them_under_the_prefix_unless_switched_off():
    res = compute_all(REF, EST, None, None, CLASSES, prefix="test/")
    assert {f"test/{k}" for k in DCASE2016_KEYS} <= set(res)
    assert res["test/dcase2016/onset_f1"] == pytest.approx(0.4)
    off = compute_all(REF, EST, None, None, CLASSES, prefix="test/", dcase2016=False)
    assert not any("dcase2016" in k for k in off)
    assert off["test/event_f1"] == res["test/event_f1"]


def test_settings_are_the_dcase2016_task2_values():
    ev = DCASE2016_EVENT_BASED
    assert (ev.t_collar, ev.evaluate_onset, ev.evaluate_offset) == (0.2, True, False)
    assert DCASE2016_SEGMENT_BASED.time_resolution == 1.0
