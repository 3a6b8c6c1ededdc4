"""Dataset validation: each bad-input case gives a clear error naming the file (and TSV
line), or is handled as documented in sed_lightning.data.validation."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sed_lightning.data.datamodule import SEDDataModule
from sed_lightning.data.datasets import SEDDataset, SetSource
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.data.validation import DataValidationError, validate_set

SR = 8000
CLIP = 1.0  # seconds
CLASSES = ["alarm", "dog"]
HEADER = "filename\tonset\toffset\tevent_label"


def _tone(seconds: float = CLIP, rate: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    wave = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def _write_audio(path: Path, audio: np.ndarray | bytes, rate: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(audio, bytes):
        path.write_bytes(audio)
    else:
        sf.write(path, audio, rate, subtype="FLOAT")


def _strong_set(
    root: Path, rows: list[str], audio: dict[str, np.ndarray | bytes | tuple] | None = None
) -> SetSource:
    """A strong set: ``rows`` of the TSV (without header); audio per clip (default: a
    good 1 s tone for every clip named in ``rows``); ``(array, rate)`` sets the rate."""
    names = {r.split("\t")[0] for r in rows}
    audio = {n: _tone() for n in sorted(names)} if audio is None else audio
    for name, content in audio.items():
        data, rate = content if isinstance(content, tuple) else (content, SR)
        _write_audio(root / "audio" / name, data, rate)
    labels = root / "strong.tsv"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text("\n".join([HEADER, *rows]) + "\n")
    return SetSource(kind="strong", audio_dir=str(root / "audio"), labels=str(labels))


def _validate(source: SetSource, name: str = "train_strong"):
    return validate_set(source, CLASSES, SR, CLIP, name=name)


def _only_problem(source: SetSource) -> str:
    report = _validate(source)
    assert len(report.problems) == 1, [str(p) for p in report.problems]
    assert report.filenames == ["good.wav"]  # the good clip is unaffected
    return str(report.problems[0])


GOOD = "good.wav\t0.1\t0.5\talarm"


# --- 1-3: unusable audio -------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not audio at all" * 50, r"cannot read audio \("),  # 1: corrupt
        (np.zeros(0, dtype=np.float32), "audio file has no samples"),  # 2: zero-length
        (np.array([0.0, np.nan, 0.1], dtype=np.float32), "NaN or infinite"),  # 3: NaN
        (np.array([0.0, np.inf, 0.1], dtype=np.float32), "NaN or infinite"),  # 3: inf
    ],
    ids=["corrupt", "zero_length", "nan", "inf"],
)
def test_unusable_audio_is_a_problem_naming_the_file(tmp_path, content, reason):
    source = _strong_set(
        tmp_path, [GOOD, "bad.wav\t0.1\t0.2\tdog"], {"good.wav": _tone(), "bad.wav": content}
    )
    message = _only_problem(source)
    assert message.startswith(f"{tmp_path / 'audio' / 'bad.wav'}: ")
    assert re.search(reason, message)


def test_truncated_flac_is_found_by_the_full_decode(tmp_path):
    good = tmp_path / "whole.flac"
    sf.write(good, _tone(), SR)
    source = _strong_set(tmp_path, [GOOD, "cut.flac\t0.1\t0.2\tdog"], {"good.wav": _tone()})
    (tmp_path / "audio" / "cut.flac").write_bytes(good.read_bytes()[:300])
    assert "cut.flac: cannot read audio" in _only_problem(source)


# --- 4-6: handled audio formats -------------------------------------------------------
def test_rate_channels_and_length_are_handled_and_logged_once_per_set(tmp_path, caplog):
    audio = {
        "good.wav": _tone(),
        "rate_a.wav": (_tone(rate=16000), 16000),
        "rate_b.wav": (_tone(rate=16000), 16000),
        "stereo.wav": _tone(channels=2),
        "short.wav": _tone(0.5),
        "long.wav": _tone(1.5),
    }
    rows = [GOOD, "long.wav\t0.2\t1.4\tdog", "long.wav\t1.2\t1.4\talarm"]
    rows += [f"{name}\t\t\t" for name in audio if name not in ("good.wav", "long.wav")]
    source = _strong_set(tmp_path, rows, audio)
    with caplog.at_level(logging.INFO, logger="sed_lightning.data.validation"):
        report = _validate(source)
    assert report.problems == []
    assert sorted(report.filenames) == sorted(audio)
    counts = {c: report.count(c) for c in ("resampled", "downmixed", "padded", "cropped")}
    assert counts == {"resampled": 2, "downmixed": 1, "padded": 1, "cropped": 1}
    messages = [r.getMessage() for r in caplog.records]
    for word in ("resampled", "downmixed", "zero-padded", "cropped"):
        assert sum(word in m for m in messages) == 1, (word, messages)
    # events past the crop are dropped / cut at the clip end; durations = what the model sees
    assert report.events["long.wav"] == [(0.2, 1.0, "dog")]
    assert report.durations["short.wav"] == 0.5 and report.durations["long.wav"] == 1.0

    encoder = LabelEncoder(CLASSES, frame_hop=0.1, n_frames=10)
    dataset = SEDDataset(source, encoder, SR, CLIP, report=report)
    for name in ("rate_a.wav", "stereo.wav", "short.wav", "long.wav"):
        item = dataset[dataset.filenames.index(name)]
        assert item["audio"].shape == (SR,) and item["audio"].dtype == np.float32
    assert np.all(dataset[dataset.filenames.index("short.wav")]["audio"][SR // 2 + 1 :] == 0)


# --- 7-10: bad label rows and missing audio -------------------------------------------
@pytest.mark.parametrize(
    ("row", "audio", "expected"),
    [
        ("bad.wav\t0.1\t0.2\tcat", True, "line 3: bad.wav: unknown event_label 'cat'"),  # 7
        ("bad.wav\t0.5\t0.5\tdog", True, "line 3: bad.wav: onset 0.5 is not before offset 0.5"),
        (
            "bad.wav\t1.2\t1.4\tdog",
            True,
            "line 3: bad.wav: onset 1.2 s is at or after the end of its audio (1 s, ",
        ),  # 9
        ("bad.wav\t0.1\t0.2\tdog", False, "line 3: bad.wav: audio file "),  # 10
    ],
    ids=["unknown_label", "onset_not_before_offset", "onset_past_audio_end", "missing_audio"],
)
def test_bad_row_is_a_problem_naming_tsv_and_line(tmp_path, row, audio, expected):
    clips = {"good.wav": _tone()} | ({"bad.wav": _tone()} if audio else {})
    source = _strong_set(tmp_path, [GOOD, row], clips)
    message = _only_problem(source)
    assert message.startswith(f"{source.labels} {expected}")
    if not audio:
        assert message.endswith(f"{tmp_path / 'audio' / 'bad.wav'} not found")


def test_missing_audio_listed_in_a_durations_tsv_names_that_tsv(tmp_path):
    source = _strong_set(tmp_path, [GOOD])
    durations = tmp_path / "durations.tsv"
    durations.write_text("filename\tduration\ngood.wav\t1.0\nsilent.wav\t1.0\n")
    source.durations = str(durations)
    assert _only_problem(source).startswith(f"{durations} line 3: silent.wav: audio file ")


# --- 11-12 and offsets past the end: handled label rows -------------------------------
def test_duplicated_rows_are_dropped_with_a_warning_naming_file_and_lines(tmp_path, caplog):
    rows = [GOOD, "b.wav\t0.1\t0.3\tdog", GOOD, "b.wav\t0.10\t0.3\tdog"]
    source = _strong_set(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        report = _validate(source)
    assert report.problems == [] and report.count("duplicates_dropped") == 2
    assert report.events == {"good.wav": [(0.1, 0.5, "alarm")], "b.wav": [(0.1, 0.3, "dog")]}
    warning = next(r.getMessage() for r in caplog.records if "duplicated" in r.getMessage())
    assert f"{source.labels}: 2 duplicated row(s) dropped: " in warning
    assert "line 4 (repeats line 2), line 5 (repeats line 3)" in warning


def test_same_class_overlaps_are_merged_with_a_warning_naming_the_clip(tmp_path, caplog):
    rows = [
        "a.wav\t0.1\t0.4\tdog",
        "a.wav\t0.3\t0.6\tdog",  # overlaps line 2
        "a.wav\t0.6\t0.7\tdog",  # touches line 3
        "a.wav\t0.2\t0.5\talarm",  # another class: kept
        "a.wav\t0.8\t0.9\tdog",  # apart: kept
    ]
    source = _strong_set(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        report = _validate(source)
    expected = [(0.1, 0.7, "dog"), (0.2, 0.5, "alarm"), (0.8, 0.9, "dog")]
    assert report.events == {"a.wav": expected}
    assert report.count("events_merged") == 1
    assert any("a.wav (lines 2, 3, 4)" in r.getMessage() for r in caplog.records)
    encoder = LabelEncoder(CLASSES, frame_hop=0.1, n_frames=10)
    dataset = SEDDataset(source, encoder, SR, CLIP)  # validates itself: no problem
    assert dataset.reference_events() == [("a.wav", *ev) for ev in expected]


def test_offset_past_audio_end_is_clipped_with_a_warning(tmp_path, caplog):
    source = _strong_set(
        tmp_path, [GOOD, "short.wav\t0.2\t0.9\tdog"], {"good.wav": _tone(), "short.wav": _tone(0.6)}
    )
    with caplog.at_level(logging.WARNING):
        report = _validate(source)
    assert report.problems == [] and report.events["short.wav"] == [(0.2, 0.6, "dog")]
    assert any(
        "line 3 (short.wav: 0.9 s > 0.6 s)" in r.getMessage()
        and str(source.labels) in r.getMessage()
        for r in caplog.records
    )


# --- the data module: one error for all sets, or skip ---------------------------------
def _datamodule(tmp_path: Path, on_bad_file: str) -> SEDDataModule:
    train = _strong_set(
        tmp_path / "train",
        [GOOD, "cat.wav\t0.1\t0.2\tcat", "nan.wav\t0.1\t0.2\tdog", "gone.wav\t0.1\t0.2\tdog"],
        {"good.wav": _tone(), "cat.wav": _tone(), "nan.wav": np.full(10, np.nan, np.float32)},
    )
    val = _strong_set(tmp_path / "val", [GOOD, "late.wav\t2.0\t2.5\talarm"])
    test = _strong_set(tmp_path / "test", [GOOD])
    weak = tmp_path / "weak" / "weak.tsv"
    _write_audio(tmp_path / "weak" / "audio" / "w.wav", b"garbage" * 40)
    _write_audio(tmp_path / "weak" / "audio" / "ok.wav", _tone())
    weak.write_text("filename\tevent_labels\nw.wav\tdog\nok.wav\talarm,dog\n")
    sets = {
        "train_strong": vars(train),
        "train_weak": {
            "kind": "weak",
            "audio_dir": str(weak.parent / "audio"),
            "labels": str(weak),
        },
        "validation": vars(val),
        "test": vars(test),
    }
    return SEDDataModule(
        CLASSES,
        LabelEncoder(CLASSES, frame_hop=0.1, n_frames=10),
        {"strong": 1, "weak": 1},
        sets=sets,
        sample_rate=SR,
        clip_duration=CLIP,
        on_bad_file=on_bad_file,
        output_dir=str(tmp_path / "run"),
    )


def test_raise_lists_every_problem_of_every_set_in_one_error(tmp_path):
    dm = _datamodule(tmp_path, "raise")
    with pytest.raises(DataValidationError) as info:
        dm.setup("fit")
    message = str(info.value)
    print(message)
    assert message.startswith("data validation found 5 problem(s) in 3 set(s); fix them")
    for part in ("[train_strong] 3 problem(s):", "[train_weak] 1 problem(s):", "[validation]"):
        assert part in message
    for name in ("cat.wav", "nan.wav", "gone.wav", "w.wav", "late.wav"):
        assert name in message
    assert dm.datasets == {}  # nothing built: no DataLoader can exist
    errors = pd.read_csv(tmp_path / "run" / "validation_errors.tsv", sep="\t")
    assert list(errors.columns) == ["set", "file", "line", "reason"] and len(errors) == 5


def test_skip_leaves_bad_clips_out_and_writes_skipped_tsv(tmp_path, caplog):
    dm = _datamodule(tmp_path, "skip")
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    assert dm.dataset("train_strong").filenames == ["good.wav"]
    assert dm.dataset("train_weak").filenames == ["ok.wav"]
    assert dm.dataset("validation").filenames == ["good.wav"]
    skipped = pd.read_csv(tmp_path / "run" / "skipped.tsv", sep="\t", keep_default_na=False)
    assert list(skipped.columns) == ["set", "filename", "reason"]
    assert sorted(zip(skipped["set"], skipped["filename"], strict=True)) == [
        ("train_strong", "cat.wav"),
        ("train_strong", "gone.wav"),
        ("train_strong", "nan.wav"),
        ("train_weak", "w.wav"),
        ("validation", "late.wav"),
    ]
    assert any("5 clip(s) skipped" in r.getMessage() for r in caplog.records)
    batch = next(iter(dm.train_dataloader()))
    assert sorted(batch.filenames) == ["good.wav", "ok.wav"]


def test_skip_still_raises_for_a_whole_set_problem(tmp_path):
    dm = _datamodule(tmp_path, "skip")
    Path(dm.sources["test"].labels).unlink()
    with pytest.raises(DataValidationError, match=r"strong\.tsv: label file not found"):
        dm.setup("fit")


def test_bad_on_bad_file_value_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="on_bad_file"):
        _datamodule(tmp_path, "ignore")


def test_desed_config_validates_with_on_bad_file_and_run_dir(tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import compose_train, finalize

    dm = _datamodule(tmp_path, "raise")  # only to lay out the sets
    overrides = ["data=desed", f"data.class_names=[{','.join(CLASSES)}]", "data.on_bad_file=skip"]
    overrides += ["data.sample_rate=8000", "data.clip_duration=1.0", "data.num_workers=0"]
    for name, src in dm.sources.items():
        overrides += [f"data.sets.{name}.audio_dir={src.audio_dir}"]
        overrides += [f"data.sets.{name}.labels={src.labels}"]
    cfg = finalize(compose_train(overrides, tiny=False), tmp_path / "hydra_run", tmp_path)
    encoder = LabelEncoder(CLASSES, frame_hop=0.1, n_frames=10)
    datamodule = instantiate(cfg.data, label_encoder=encoder)
    datamodule.setup("fit")
    skipped = pd.read_csv(tmp_path / "hydra_run" / "skipped.tsv", sep="\t")
    assert len(skipped) == 5
