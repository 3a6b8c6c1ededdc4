import numpy as np
import pytest

from sed_lightning.data.tsv import read_weak_tsv, write_weak_tsv
from sed_lightning.selftraining.pseudo_labels import (
    binarize,
    class_counts,
    class_thresholds,
    pseudo_label_table,
)

CLASSES = ["dog", "cat", "car"]


def test_seed_example_per_class_thresholds():
    scores = np.array([[0.1, 0.6, 0.9]])
    assert binarize(scores, [0.5, 0.5, 0.8]).tolist() == [[0, 1, 1]]
    # a higher threshold for the third class turns it off; equal to the threshold is not above
    assert binarize(scores, [0.5, 0.5, 0.95]).tolist() == [[0, 1, 0]]
    assert binarize(np.array([[0.5, 0.5, 0.5]]), [0.5, 0.4, 0.6]).tolist() == [[0, 1, 0]]


def test_thresholds_from_a_number_or_a_per_class_mapping():
    assert class_thresholds(0.5, CLASSES) == [0.5, 0.5, 0.5]
    assert class_thresholds({"default": 0.5, "car": 0.8}, CLASSES) == [0.5, 0.5, 0.8]
    with pytest.raises(ValueError, match="dgo"):
        class_thresholds({"default": 0.5, "dgo": 0.3}, CLASSES)


def test_binarize_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="thresholds"):
        binarize(np.zeros((2, 3)), [0.5, 0.5])


@pytest.mark.parametrize("drop_empty", [True, False])
def test_table_drops_empty_clips_unless_kept(drop_empty, tmp_path):
    names = ["a.wav", "b.wav", "c.wav"]
    scores = np.array([[0.9, 0.1, 0.7], [0.1, 0.2, 0.3], [0.0, 0.0, 0.0]])
    table = pseudo_label_table(
        names, scores, CLASSES, [0.5] * 3, keep=["c.wav"], drop_empty=drop_empty
    )
    expected = {"a.wav": ["dog", "car"], "c.wav": []}
    if not drop_empty:
        expected["b.wav"] = []
    assert dict(zip(table["filename"], table["event_labels"], strict=True)) == expected
    assert class_counts(table, CLASSES) == {"dog": 1, "cat": 0, "car": 1}
    # DESED weak format round trip (empty label cells allowed)
    write_weak_tsv(table, tmp_path / "pseudo.tsv")
    assert (tmp_path / "pseudo.tsv").read_text().splitlines()[0] == "filename\tevent_labels"
    back = read_weak_tsv(tmp_path / "pseudo.tsv", CLASSES)
    assert dict(zip(back["filename"], back["event_labels"], strict=True)) == {
        k: sorted(v) for k, v in expected.items()
    }
