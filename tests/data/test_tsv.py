"""Tests for sed_lightning.data.tsv: DESED label-file readers and writers."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from sed_lightning.data.tsv import (
    LabelFileError,
    read_durations_tsv,
    read_strong_tsv,
    read_weak_tsv,
    strong_to_weak,
    write_durations_tsv,
    write_strong_tsv,
    write_weak_tsv,
)

CLASSES = ("dog", "speech", "alarm")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_strong_round_trip_sorts_and_keeps_empty_files(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "filename": ["b.wav", "a.wav", "a.wav"],
            "onset": [0.25, 3.0, 0.1234567],
            "offset": [1.5, 4.0, 2.0],
            "event_label": ["dog", "speech", "alarm"],
        }
    )
    df.attrs["empty_files"] = ["c.wav"]
    path = tmp_path / "sub" / "strong.tsv"

    write_strong_tsv(df, path)
    back = read_strong_tsv(path, CLASSES)

    assert back["filename"].tolist() == ["a.wav", "a.wav", "b.wav"]
    assert back["onset"].tolist() == [0.1234567, 3.0, 0.25]
    assert back["offset"].tolist() == [2.0, 4.0, 1.5]
    assert back["event_label"].tolist() == ["alarm", "speech", "dog"]
    assert back.attrs["empty_files"] == ["c.wav"]
    assert back["onset"].dtype == float and back["offset"].dtype == float
    assert all(isinstance(v, str) for v in back["filename"].tolist() + back["event_label"].tolist())


def test_strong_bad_rows_are_all_listed_with_line_numbers(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.tsv",
        [
            "filename\tonset\toffset\tevent_label",
            "ok.wav\t0.0\t1.0\tdog",  # line 2: fine
            "x.wav\t0.0\t1.0\tcat",  # line 3: unknown label
            "y.wav\t2.0\t2.0\tdog",  # line 4: onset >= offset
            "z.wav\tabc\t1.0\tdog",  # line 5: non-numeric onset
            "ok2.wav\t1.0\t2.0\tspeech",  # line 6: fine
            "w.wav\t-1.0\t2.0\tdog",  # line 7: negative onset
            "v.wav\t1.0\t\tdog",  # line 8: missing offset
        ],
    )
    with pytest.raises(LabelFileError) as info:
        read_strong_tsv(path, CLASSES)

    message = str(info.value)
    assert str(path) in message
    lines = [int(n) for n in re.findall(r"line (\d+):", message)]
    assert lines == [3, 4, 5, 7, 8]
    assert "'cat'" in message and "'abc'" in message


def test_strong_empty_label_rows_mean_no_events(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "strong.tsv",
        [
            "filename\tonset\toffset\tevent_label",
            "silent.wav\t\t\t",
            "b.wav\t0.5\t1.0\tspeech",
            "also_silent.wav\t\t\t",
        ],
    )
    df = read_strong_tsv(path, CLASSES)

    assert df[["filename", "event_label"]].values.tolist() == [["b.wav", "speech"]]
    assert df.attrs["empty_files"] == ["also_silent.wav", "silent.wav"]
    weak = strong_to_weak(df)
    assert weak.values.tolist() == [
        ["also_silent.wav", []],
        ["b.wav", ["speech"]],
        ["silent.wav", []],
    ]


def test_strong_partially_empty_row_is_an_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "strong.tsv",
        ["filename\tonset\toffset\tevent_label", "a.wav\t0.5\t1.0\t"],
    )
    with pytest.raises(LabelFileError, match=r"line 2: empty event_label"):
        read_strong_tsv(path)


def test_strong_missing_column_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "cols.tsv", ["filename\tonset\tevent_label", "a.wav\t0\tdog"])
    with pytest.raises(LabelFileError, match=r"cols\.tsv.*offset"):
        read_strong_tsv(path)


def test_missing_label_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(LabelFileError, match="absent.tsv"):
        read_weak_tsv(tmp_path / "absent.tsv")


def test_strong_without_class_names_accepts_any_label(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "s.tsv", ["filename\tonset\toffset\tevent_label", "a.wav\t0\t1\tanything"]
    )
    assert read_strong_tsv(path)["event_label"].tolist() == ["anything"]


def test_weak_round_trip_sorts_labels(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "filename": ["b.wav", "a.wav", "c.wav"],
            "event_labels": [["speech", "dog"], ["alarm"], []],
        }
    )
    path = tmp_path / "weak.tsv"

    write_weak_tsv(df, path)

    assert path.read_text().splitlines() == [
        "filename\tevent_labels",
        "a.wav\talarm",
        "b.wav\tdog,speech",
        "c.wav\t",
    ]
    back = read_weak_tsv(path, CLASSES)
    assert back.values.tolist() == [
        ["a.wav", ["alarm"]],
        ["b.wav", ["dog", "speech"]],
        ["c.wav", []],
    ]


def test_weak_bad_rows(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "weak.tsv",
        ["filename\tevent_labels", "a.wav\tdog", "b.wav\tcat,dog", "a.wav\tspeech"],
    )
    with pytest.raises(LabelFileError) as info:
        read_weak_tsv(path, CLASSES)
    message = str(info.value)
    assert "weak.tsv" in message
    assert "line 3: unknown event label(s) ['cat']" in message
    assert "line 4: duplicate filename 'a.wav' (first on line 2)" in message


def test_durations_round_trip(tmp_path: Path) -> None:
    durations = {"b.wav": 10.0, "a.wav": 9.987}
    path = tmp_path / "durations.tsv"
    write_durations_tsv(durations, path)
    assert read_durations_tsv(path) == durations
    assert path.read_text().splitlines()[1] == "a.wav\t9.987"


def test_durations_bad_rows(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "durations.tsv",
        ["filename\tduration", "a.wav\t10", "b.wav\tten", "c.wav\t0", "d.wav\tinf"],
    )
    with pytest.raises(LabelFileError) as info:
        read_durations_tsv(path)
    assert [int(n) for n in re.findall(r"line (\d+):", str(info.value))] == [3, 4, 5]


def test_strong_to_weak_known_answer() -> None:
    df = pd.DataFrame(
        {
            "filename": ["b.wav", "a.wav", "a.wav", "a.wav"],
            "onset": [0.0, 0.0, 1.0, 2.0],
            "offset": [1.0, 1.0, 2.0, 3.0],
            "event_label": ["dog", "speech", "alarm", "speech"],
        }
    )
    weak = strong_to_weak(df)
    assert weak.values.tolist() == [["a.wav", ["alarm", "speech"]], ["b.wav", ["dog"]]]


def test_repeated_rows_are_dropped_with_a_warning(tmp_path: Path, caplog) -> None:
    strong = _write(
        tmp_path / "strong.tsv",
        [
            "filename\tonset\toffset\tevent_label",
            "a.wav\t0.5\t1.0\tdog",
            "a.wav\t0.50\t1\tdog",  # the same event written differently
            "a.wav\t0.5\t1.0\tspeech",
        ],
    )
    weak = _write(
        tmp_path / "weak.tsv",
        ["filename\tevent_labels", "a.wav\tdog,speech", "a.wav\tspeech,dog"],
    )
    with caplog.at_level("WARNING"):
        events = read_strong_tsv(strong, CLASSES)
        tags = read_weak_tsv(weak, CLASSES)
    assert events["event_label"].tolist() == ["dog", "speech"]
    assert tags.values.tolist() == [["a.wav", ["dog", "speech"]]]
    messages = [r.getMessage() for r in caplog.records]
    assert f"{strong}: dropped 1 duplicated row(s): line 3 (repeats line 2)" in messages
    assert f"{weak}: dropped 1 duplicated row(s): line 3 (repeats line 2)" in messages
