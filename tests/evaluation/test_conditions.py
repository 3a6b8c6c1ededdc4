"""Figures per condition (background, EBR level): a synthesized set's recipes, a user's TSV,
the same figures as sed_eval on each condition's clips alone, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sed_lightning.data.backgrounds import BackgroundBank
from sed_lightning.data.procedural_bank import build_event_bank
from sed_lightning.data.set_spec import SetSpec, SoundscapeConfig
from sed_lightning.data.sources import EventBank
from sed_lightning.data.synthesis import synthesize_dataset
from sed_lightning.data.tsv import LabelFileError, read_strong_tsv
from sed_lightning.evaluate import evaluate_files
from sed_lightning.evaluation import dcase2016_metrics, sed_eval_metrics
from sed_lightning.evaluation.conditions import (
    FIGURES,
    condition_table,
    conditions_from_recipes,
    metrics_by_condition,
    read_conditions,
)
from tests.data.test_backgrounds import _folder

CLASSES = ["alarm", "knock"]
REF = pd.DataFrame(
    [
        ("a.wav", 1.0, 2.0, "alarm"),
        ("a.wav", 4.0, 5.0, "knock"),
        ("b.wav", 1.0, 2.0, "alarm"),
        ("c.wav", 3.0, 4.0, "knock"),
    ],
    columns=["filename", "onset", "offset", "event_label"],
)
EST = pd.DataFrame(
    [
        ("a.wav", 1.05, 2.0, "alarm"),  # found
        ("a.wav", 4.0, 5.0, "knock"),  # found
        ("b.wav", 6.0, 7.0, "alarm"),  # b's alarm missed, a false alarm instead
        ("c.wav", 3.0, 4.1, "knock"),  # found
        ("d.wav", 1.0, 2.0, "knock"),  # a clip without events: a false alarm
    ],
    columns=["filename", "onset", "offset", "event_label"],
)
CONDITIONS = pd.DataFrame(
    {
        "filename": ["a", "b", "c", "d"],  # matched by audio id
        "background": ["office", "street", "office", "street"],
    }
)


def test_each_condition_is_scored_on_its_own_clips_as_sed_eval_scores_them():
    by = metrics_by_condition(REF, EST, CLASSES, CONDITIONS)
    assert list(by) == ["background"] and list(by["background"]) == ["office", "street"]
    for value, clips in (("office", ["a.wav", "c.wav"]), ("street", ["b.wav", "d.wav"])):
        ref, est = REF[REF.filename.isin(clips)], EST[EST.filename.isin(clips)]
        direct = sed_eval_metrics(ref, est, CLASSES) | dcase2016_metrics(ref, est, CLASSES)
        row = by["background"][value]
        assert row["n_clips"] == 2
        for key in FIGURES:
            assert row[key] == pytest.approx(direct[key])
    office, street = by["background"]["office"], by["background"]["street"]
    assert office["event_f1"] == pytest.approx(1.0)  # every office event found, none added
    assert street["event_f1"] == pytest.approx(0.0)  # b's alarm missed, d's knock false
    table = condition_table(by)
    assert "| background | office | 2 | 1.000 |" in table


def test_a_clip_without_conditions_is_named():
    with pytest.raises(ValueError, match=r"1 evaluated clip\(s\) have no conditions.*d.wav"):
        metrics_by_condition(REF, EST, CLASSES, CONDITIONS.iloc[:3])
    twice = pd.concat([CONDITIONS, CONDITIONS.iloc[:1]])
    with pytest.raises(ValueError, match="twice"):
        metrics_by_condition(REF, EST, CLASSES, twice)


def test_conditions_of_a_synthesized_set(tmp_path):
    """Background kind and file and the clip's EBR level, from the recipes the synthesizer
    wrote; one row per clip of the set."""
    bank = EventBank(
        build_event_bank(tmp_path / "bank", class_names=CLASSES, n_per_class=3, seed=0)
    )
    (tmp_path / "bg").mkdir()
    backgrounds = BackgroundBank(_folder(tmp_path / "bg"), sample_rate=16000)
    cfg = SoundscapeConfig(
        clip_duration=2.0, max_events=2, recorded_share=0.5, ebr_levels=(-6, 0, 6)
    )
    spec = SetSpec("validation", "strong", "validation", 16, 4)
    (folder,) = synthesize_dataset(
        tmp_path / "sets", bank, [spec], cfg, backgrounds=backgrounds
    ).values()
    table = conditions_from_recipes(folder / "recipes.jsonl")
    recipes = pd.read_json(folder / "recipes.jsonl", lines=True)
    assert len(table) == 16 and list(table.filename) == list(recipes.filename)
    for row, background in zip(table.itertuples(), recipes.background, strict=True):
        recorded = background["kind"] == "recorded"
        assert row.background_kind == ("recorded" if recorded else "generated")
        assert row.background == (background["file"].split(".")[0] if recorded else "generated")
    # the synthesizer's own truth: every event of a clip at the clip's one level
    truth = pd.read_csv(folder / "truth.tsv", sep="\t")
    for row in table.itertuples():
        levels = truth.loc[truth.filename == row.filename, "ebr_db"].round().unique()
        assert [f"{level:g}" for level in levels] == [row.ebr_db]
    assert set(table.ebr_db) <= {"-6", "0", "6"} and set(table.background_kind) == {
        "recorded",
        "generated",
    }
    # the evaluate CLI's entry: the recipes file gives the same table
    pd.testing.assert_frame_equal(read_conditions(folder / "recipes.jsonl"), table)
    reference = read_strong_tsv(folder / "strong.tsv")
    result = evaluate_files(
        folder / "strong.tsv", folder / "strong.tsv", conditions=folder / "recipes.jsonl"
    )
    by_ebr = result["by_condition"]["ebr_db"]
    assert sum(v["n_clips"] for v in by_ebr.values()) == reference["filename"].nunique()
    assert all(v["event_f1"] == pytest.approx(1.0) for v in by_ebr.values())  # ref vs itself


def test_user_tsv_and_bad_files_name_the_file_and_row(tmp_path):
    good = tmp_path / "conditions.tsv"
    good.write_text("filename\troom\na.wav\tsmall\nb.wav\tlarge\n")
    assert read_conditions(good).to_dict("list") == {
        "filename": ["a.wav", "b.wav"],
        "room": ["small", "large"],
    }
    no_column = tmp_path / "bad.tsv"
    no_column.write_text("name\troom\na.wav\tsmall\n")
    with pytest.raises(LabelFileError, match="bad.tsv: a conditions table needs a `filename`"):
        read_conditions(no_column)
    empty = tmp_path / "empty_name.tsv"
    empty.write_text("filename\troom\na.wav\tsmall\n\tlarge\n")
    with pytest.raises(LabelFileError, match="empty_name.tsv, row 3: empty filename"):
        read_conditions(empty)
    recipes = tmp_path / "recipes.jsonl"
    recipes.write_text(json.dumps({"filename": "a.wav", "events": []}) + "\n")
    with pytest.raises(LabelFileError, match="recipes.jsonl, line 1: not a clip recipe"):
        read_conditions(recipes)
    with pytest.raises(LabelFileError, match="cannot read"):
        read_conditions(tmp_path / "missing.jsonl")


def test_evaluate_cli_error_names_the_conditions_file(tmp_path):
    ref, est = tmp_path / "ref.tsv", tmp_path / "est.tsv"
    REF.to_csv(ref, sep="\t", index=False)
    EST.to_csv(est, sep="\t", index=False)
    partial = tmp_path / "partial.tsv"
    CONDITIONS.iloc[:2].to_csv(partial, sep="\t", index=False)
    with pytest.raises(ValueError, match="partial.tsv: 2 evaluated clip"):
        evaluate_files(ref, est, conditions=partial)
    full = tmp_path / "full.tsv"
    CONDITIONS.to_csv(full, sep="\t", index=False)
    result = evaluate_files(ref, est, conditions=full)
    assert np.isclose(result["by_condition"]["background"]["office"]["event_f1"], 1.0)


def test_evaluate_cli_prints_figures_by_condition_and_one_line_errors(tmp_path):
    import subprocess
    import sys

    ref, est, conditions = tmp_path / "ref.tsv", tmp_path / "est.tsv", tmp_path / "c.tsv"
    REF.to_csv(ref, sep="\t", index=False)
    EST.to_csv(est, sep="\t", index=False)
    CONDITIONS.to_csv(conditions, sep="\t", index=False)

    def run(*overrides):
        command = [sys.executable, "-m", "sed_lightning.evaluate", *overrides]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    done = run(f"ref={ref}", f"est={est}", f"conditions={conditions}")
    assert done.returncode == 0, done.stderr
    by = json.loads(done.stdout)["by_condition"]["background"]
    assert by["office"]["event_f1"] == pytest.approx(1.0) and by["street"]["n_clips"] == 2
    CONDITIONS.iloc[:3].to_csv(conditions, sep="\t", index=False)
    failed = run(f"ref={ref}", f"est={est}", f"conditions={conditions}")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    last = failed.stderr.strip().splitlines()[-1]  # (after any import warning)
    assert last.startswith(f"evaluate: {conditions}: 1 evaluated clip(s)")
