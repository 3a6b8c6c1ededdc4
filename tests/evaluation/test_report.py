"""Ablation studies: the study configs, run_info.json and the report over run folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict
from scipy import stats

from sed_lightning.evaluation.report import METRICS, markdown, report, summary_table, table_metrics
from sed_lightning.evaluation.report_runs import load_runs
from sed_lightning.evaluation.settings import DCASE2016_KEYS
from sed_lightning.run_files import RUN_INFO
from sed_lightning.tools import main
from sed_lightning.training.run_info import write_run_info
from tests.conftest import ROOT, TINY, compose_train
from tests.training.runs import ensure_data, env

# every study config (conf/experiment/ablation/*.yaml but the shared part)
STUDIES = sorted(
    p.stem
    for p in (ROOT / "sed_lightning/conf/experiment/ablation").glob("*.yaml")
    if p.stem != "common"
)
STUDY = {"name": "loss_weighting", "reference": "loss=fixed", "budget": "3 epochs"}


def make_run(
    folder: Path,
    overrides: list[str],
    seed: int,
    metrics: dict[str, float] | None,
    params: dict[str, str] | None = None,
    choices: dict[str, str] | None = None,
    study: dict | None = None,
) -> Path:
    """A run folder as Hydra + the evaluation callback leave it (metrics=None: unfinished)."""
    hydra_dir = folder / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump([*overrides, f"seed={seed}"]))
    config = {"seed": seed, "study": study or STUDY, "trainer": {"max_epochs": 3}}
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config))
    hydra = {"sweeper": {"params": params}, "runtime": {"choices": choices or {}}}
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def random_metrics(rng: np.random.Generator) -> dict[str, float]:
    values = {f"test/{m}": float(rng.uniform(0.1, 0.9)) for m in METRICS}
    values["test/event_f1/speech"] = float(rng.uniform())  # per-class: not in the table
    return values


def fake_study(root: Path, configs: dict[str, list[int]], seed: int = 0) -> dict:
    """Runs of ``loss=<option>`` for the given seeds; returns option -> seed -> metrics."""
    rng = np.random.default_rng(seed)
    made: dict[str, dict[int, dict[str, float]]] = {}
    params = {"loss": ",".join(configs), "seed": "1,2"}
    for option, seeds in configs.items():
        for s in seeds:
            made.setdefault(option, {})[s] = metrics = random_metrics(rng)
            overrides = ["+experiment=ablation/loss_weighting", f"loss={option}"]
            make_run(root / "runs" / f"{option}_{s}", overrides, s, metrics, params)
    return made


def expected(values: dict[int, dict[str, float]], name: str) -> tuple[float, float]:
    column = [m[f"test/{name}"] for m in values.values()]
    return float(np.mean(column)), float(np.std(column, ddof=1))


# ---------------------------------------------------------------- report, unit


def test_rows_are_configurations_with_mean_std_and_paired_p(tmp_path):
    made = fake_study(tmp_path, {"auto": [1, 2, 3], "fixed": [1, 2, 3], "weak_only": [1, 2, 3]})
    table = summary_table(load_runs(tmp_path))
    assert list(table["configuration"]) == ["loss=fixed", "loss=auto", "loss=weak_only"]
    assert list(table["reference"]) == [True, False, False]
    assert list(table["n_seeds"]) == [3, 3, 3]
    for row in table.to_dict("records"):
        values = made[row["configuration"].removeprefix("loss=")]
        for name in METRICS:
            mean, std = expected(values, name)
            assert row[f"{name}_mean"] == pytest.approx(mean)
            assert row[f"{name}_std"] == pytest.approx(std)
            if row["reference"]:
                assert np.isnan(row[f"{name}_p"])
                continue
            ours = [values[s][f"test/{name}"] for s in (1, 2, 3)]
            ref = [made["fixed"][s][f"test/{name}"] for s in (1, 2, 3)]
            assert row[f"{name}_p"] == pytest.approx(stats.ttest_rel(ours, ref).pvalue)


def test_test_pairs_only_matching_seeds_and_needs_two(tmp_path):
    made = fake_study(tmp_path, {"fixed": [1, 2, 3], "auto": [2, 3, 4], "weak_only": [3, 5]})
    rows = summary_table(load_runs(tmp_path)).set_index("configuration")
    ours = [made["auto"][s]["test/psds1"] for s in (2, 3)]
    ref = [made["fixed"][s]["test/psds1"] for s in (2, 3)]
    assert rows.loc["loss=auto", "psds1_p"] == pytest.approx(stats.ttest_rel(ours, ref).pvalue)
    assert np.isnan(rows.loc["loss=weak_only", "psds1_p"])  # one pair (seed 3)
    assert rows.loc["loss=weak_only", "seeds"] == "3 5"


def test_markdown_marks_reference_and_writes_na(tmp_path):
    fake_study(tmp_path, {"fixed": [1, 2], "auto": [1, 3]})
    report(tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "# Ablation study: loss_weighting" in md and "3 epochs" in md
    assert "seeds: 1, 2, 3" in md and "ttest_rel" in md
    table = [line for line in md.splitlines() if line.startswith("| ")][1:]
    assert table[0].startswith("| **loss=fixed** (ref)")
    assert "(p n/a)" in table[1] and "p=" not in table[1]


def test_outputs_csv_md_png(tmp_path):
    fake_study(tmp_path, {"fixed": [1, 2], "auto": [1, 2]})
    table = report(tmp_path)
    saved = pd.read_csv(tmp_path / "results.csv")
    assert list(saved["configuration"]) == list(table["configuration"])
    np.testing.assert_allclose(saved["event_f1_mean"], table["event_f1_mean"])
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dcase2016_figures_are_columns_when_the_runs_have_them(tmp_path):
    fake_study(tmp_path / "without", {"fixed": [1, 2], "auto": [1, 2]})
    table = report(tmp_path / "without")
    assert not any("dcase2016" in c for c in table.columns)
    assert "dcase2016/" not in (tmp_path / "without" / "results.md").read_text()

    study = tmp_path / "with"
    made = fake_study(study, {"fixed": [1, 2], "auto": [1, 2]})
    rng = np.random.default_rng(1)
    for option, seeds in made.items():
        for seed, metrics in seeds.items():
            metrics.update({f"test/{k}": float(rng.uniform(0.1, 1.5)) for k in DCASE2016_KEYS})
            (study / "runs" / f"{option}_{seed}" / "metrics.json").write_text(json.dumps(metrics))
    table = report(study).set_index("configuration")
    for name in DCASE2016_KEYS:
        mean, std = expected(made["auto"], name)
        assert table.loc["loss=auto", f"{name}_mean"] == pytest.approx(mean)
        assert table.loc["loss=auto", f"{name}_std"] == pytest.approx(std)
        ours = [made["auto"][s][f"test/{name}"] for s in (1, 2)]
        ref = [made["fixed"][s][f"test/{name}"] for s in (1, 2)]
        assert table.loc["loss=auto", f"{name}_p"] == pytest.approx(
            stats.ttest_rel(ours, ref).pvalue
        )
    md = (study / "results.md").read_text()
    head = next(line for line in md.splitlines() if line.startswith("| configuration"))
    assert head.endswith(" | ".join(DCASE2016_KEYS) + " |")
    assert "DCASE 2016 Task 2" in md and "lower is better" in md
    assert "dcase2016/onset_f1_mean" in pd.read_csv(study / "results.csv").columns


def test_validation_columns_come_first_when_runs_wrote_them(tmp_path):
    study = tmp_path / "study"
    made = fake_study(study, {"fixed": [1, 2], "auto": [1, 2]})
    assert not any(c.startswith("val/") for c in report(study).columns)
    val = {}
    for option, seeds in made.items():
        for seed in seeds:
            val[option, seed] = {"val/event_f1": 0.1 * seed + (0.5 if option == "auto" else 0)}
            path = study / "runs" / f"{option}_{seed}" / "metrics_val.json"
            path.write_text(json.dumps(val[option, seed]))
    table = report(study).set_index("configuration")
    assert table.loc["loss=auto", "val/event_f1_mean"] == pytest.approx(0.65)
    assert table.loc["loss=fixed", "val/event_f1_mean"] == pytest.approx(0.15)
    assert table.loc["loss=auto", "val/event_f1_p"] == pytest.approx(0.0, abs=1e-6) or np.isnan(
        table.loc["loss=auto", "val/event_f1_p"]
    )  # a constant difference: scipy gives p 0 (or NaN)
    md = (study / "results.md").read_text()
    head = next(line for line in md.splitlines() if line.startswith("| configuration"))
    assert head.startswith("| configuration | seeds | val/event_f1 | event_f1")
    assert "the split every choice is made on" in md


def write_json(path: Path, values: dict) -> None:
    path.write_text(json.dumps(values))


def md_rows(md: str) -> dict[str, dict[str, str]]:
    """The markdown table as ``configuration -> column -> cell``."""
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split(" | ")]
    rows = {}
    for line in lines[1:]:  # (the |---| line does not start with "| ")
        cells = [c.strip() for c in line[1:-1].split(" | ")]
        rows[cells[0].removeprefix("**").split("**")[0]] = dict(zip(head, cells, strict=True))
    return rows


def test_tuned_decoder_columns_come_after_the_test_ones_over_the_runs_that_have_them(tmp_path):
    """metrics_tuned.json in 5 of 6 runs, metrics_sebbs.json in one: their event figures are
    columns after the untuned test ones, each mean over the runs that have the file."""
    study = tmp_path / "study"
    made = fake_study(study, {"fixed": [1, 2, 3], "auto": [1, 2, 3]})
    run = {(o, s): study / "runs" / f"{o}_{s}" for o in ("fixed", "auto") for s in (1, 2, 3)}
    for folder in run.values():
        write_json(folder / "metrics_val.json", {"val/event_f1": 0.3})
    tuned = {("fixed", 1): 0.4, ("fixed", 2): 0.5, ("fixed", 3): 0.6}
    tuned |= {("auto", 1): 0.5, ("auto", 2): 0.7}  # auto seed 3: not tuned
    for key, f1 in tuned.items():
        figures = {"test/event_f1": f1, "test/dcase2016/onset_f1": f1 + 0.1, "test/psds1": 0.9}
        figures |= {"test/event_f1/speech": 0.1, "versions/torch": "9.9.9"}
        write_json(run[key] / "metrics_tuned.json", figures)
    sebbs = {"test/event_f1": 0.65, "test/psds1": 0.9, "val/event_f1": 0.99}  # val: in-sample
    write_json(run["auto", 3] / "metrics_sebbs.json", sebbs)

    table = report(study).set_index("configuration")
    new = ["test_tuned/event_f1", "test_tuned/dcase2016/onset_f1", "test_sebbs/event_f1"]
    assert table_metrics(table) == ["val/event_f1", *METRICS, *new]  # no tuned PSDS column
    fixed, auto = table.loc["loss=fixed"], table.loc["loss=auto"]
    assert fixed["test_tuned/event_f1_mean"] == pytest.approx(0.5)
    assert fixed["test_tuned/event_f1_std"] == pytest.approx(0.1)
    assert fixed["test_tuned/dcase2016/onset_f1_mean"] == pytest.approx(0.6)
    assert auto["test_tuned/event_f1_mean"] == pytest.approx(0.6)  # seeds 1, 2
    assert auto["test_tuned/event_f1_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert auto["test_tuned/event_f1_p"] == pytest.approx(  # paired over seeds 1, 2
        stats.ttest_rel([0.5, 0.7], [0.4, 0.5]).pvalue
    )
    assert (fixed["test_tuned/event_f1_n"], auto["test_tuned/event_f1_n"]) == (3, 2)
    assert auto["test_sebbs/event_f1_mean"] == pytest.approx(0.65)
    assert auto["test_sebbs/event_f1_n"] == 1 and np.isnan(auto["test_sebbs/event_f1_std"])
    assert fixed["test_sebbs/event_f1_n"] == 0 and np.isnan(fixed["test_sebbs/event_f1_mean"])
    assert np.isnan(auto["test_sebbs/event_f1_p"])
    # the untuned figures are unchanged: the test of metrics.json, the val of metrics_val.json
    for option in ("fixed", "auto"):
        row = table.loc[f"loss={option}"]
        assert row["event_f1_mean"] == pytest.approx(expected(made[option], "event_f1")[0])
        assert row["psds1_mean"] == pytest.approx(expected(made[option], "psds1")[0])
        assert row["val/event_f1_mean"] == pytest.approx(0.3)
    assert list(table["n_seeds"]) == [3, 3]

    md = (study / "results.md").read_text()
    head = next(line for line in md.splitlines() if line.startswith("| configuration"))
    assert head.startswith("| configuration | seeds | val/event_f1 | event_f1")
    assert head.endswith(" | clip_map | " + " | ".join(new) + " |")
    line = next(line for line in md.splitlines() if line.startswith("- val/*"))
    assert "test_tuned/*, test_sebbs/*: test figures with the decoder tuned on the" in line
    assert "median window + threshold" in line and "cSEBBs" in line and "n=K" in line
    rows = md_rows(md)
    assert rows["loss=fixed"]["test_tuned/event_f1"] == "0.500 ± 0.100"
    assert rows["loss=auto"]["test_tuned/event_f1"].startswith("0.600 ± 0.141 (p=")
    assert rows["loss=auto"]["test_tuned/event_f1"].endswith(", n=2")
    assert rows["loss=auto"]["test_sebbs/event_f1"] == "0.650 (p n/a), n=1"
    assert rows["loss=fixed"]["test_sebbs/event_f1"] == ""

    saved = pd.read_csv(study / "results.csv").set_index("configuration")
    assert list(saved.columns) == list(table.columns)
    assert saved.loc["loss=auto", "test_tuned/event_f1_mean"] == pytest.approx(0.6)
    assert saved.loc["loss=auto", "test_tuned/event_f1_n"] == 2
    assert np.isnan(saved.loc["loss=fixed", "test_sebbs/event_f1_mean"])


def test_no_tuned_decoder_columns_without_tuned_files(tmp_path):
    fake_study(tmp_path, {"fixed": [1, 2], "auto": [1, 2]})
    table = report(tmp_path)
    assert table_metrics(table) == list(METRICS)
    assert not any(c.startswith(("test_tuned/", "test_sebbs/")) for c in table.columns)
    assert not any(c.endswith("_n") for c in table.columns)
    md = (tmp_path / "results.md").read_text()
    assert "test_tuned" not in md and "test_sebbs" not in md and "n=" not in md
    saved = pd.read_csv(tmp_path / "results.csv")
    assert not any(c.startswith(("test_tuned/", "test_sebbs/")) for c in saved.columns)


def cost_json(params: int, macs: float, fit_kwh: float | None, fit_s: float) -> dict:
    """A run's cost.json as sed_lightning.training.cost writes it (the fields read back)."""
    test = {"wall_s": 2.0, "energy_kwh": 1e-6, "method": "TDP estimate"}
    fit = {"wall_s": fit_s, "energy_kwh": fit_kwh, "method": "TDP estimate"}
    return {
        "params": {"total": params, "trainable": params},
        "macs_per_clip": macs,
        "clip_seconds": 10.0,
        "phases": {"fit": fit, "test": test},
    }


def test_cost_columns_come_last_and_older_runs_leave_them_blank(tmp_path):
    """cost.json in every run of one configuration, in one run of another, in none of a
    third: the cost columns are the means over the runs that have it, no p-value, blank
    where no run has one; the bar chart leaves them out."""
    made = fake_study(tmp_path, {"fixed": [1, 2], "auto": [1, 2], "weak_only": [1, 2]})
    runs = tmp_path / "runs"
    write_json(runs / "fixed_1" / "cost.json", cost_json(6968, 2.8e9, 2e-6, 60.0))
    write_json(runs / "fixed_2" / "cost.json", cost_json(6968, 2.8e9, 4e-6, 120.0))
    write_json(runs / "auto_1" / "cost.json", cost_json(6968, 2.8e9, None, 90.0))  # tracker failed

    table = report(tmp_path).set_index("configuration")
    cost = [
        "cost/params_total",
        "cost/macs_per_clip",
        "cost/fit_kwh",
        "cost/test_kwh",
        "cost/fit_s",
    ]
    assert table_metrics(table) == [*METRICS, *cost]
    fixed, auto, weak = (table.loc[f"loss={o}"] for o in ("fixed", "auto", "weak_only"))
    assert fixed["cost/fit_kwh_mean"] == pytest.approx(3e-6)
    assert fixed["cost/fit_s_mean"] == pytest.approx(90.0) and fixed["cost/fit_s_n"] == 2
    assert np.isnan(fixed["cost/fit_kwh_p"]) and np.isnan(auto["cost/fit_s_p"])
    assert auto["cost/fit_s_n"] == 1 and auto["cost/fit_kwh_n"] == 0
    assert weak["cost/params_total_n"] == 0 and np.isnan(weak["cost/params_total_mean"])
    assert fixed["event_f1_mean"] == pytest.approx(expected(made["fixed"], "event_f1")[0])

    md = (tmp_path / "results.md").read_text()
    rows = md_rows(md)
    assert rows["loss=fixed"]["cost/params_total"] == "6.97 k"
    assert rows["loss=fixed"]["cost/macs_per_clip"] == "2.8 G"
    assert rows["loss=fixed"]["cost/fit_kwh"] == "3e-06"
    assert rows["loss=fixed"]["cost/fit_s"] == "1.5 min"
    assert rows["loss=auto"]["cost/fit_s"] == "1.5 min, n=1"
    assert rows["loss=auto"]["cost/fit_kwh"] == ""
    assert all(rows["loss=weak_only"][c] == "" for c in cost)
    assert "- cost/*: what a run cost (cost.json)" in md and "cost/fit_kwh = train kWh" in md


def test_versions_and_dates_come_from_run_info(tmp_path):
    fake_study(tmp_path, {"fixed": [1, 2]})
    for i, run in enumerate(sorted((tmp_path / "runs").iterdir())):
        info = {"started": f"2026-0{i + 1}-02T10:00:00+00:00", "versions": {"torch": "9.9.9"}}
        (run / RUN_INFO).write_text(json.dumps(info))
    report(tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "torch 9.9.9" in md
    assert "2026-01-02 10:00 to 2026-02-02 10:00" in md


def test_self_training_run_counts_once_per_round(tmp_path):
    rng = np.random.default_rng(1)
    made: dict[str, dict[int, dict]] = {}
    st_study = {"name": "self_training", "reference": "rounds=0", "budget": "x"}
    for s in (1, 2):
        last = random_metrics(rng)  # a top-level metrics.json (the last round) is not counted
        overrides = ["self_training.rounds=2"]
        run = make_run(tmp_path / f"s{s}", overrides, s, last, {"seed": "1,2"}, study=st_study)
        (run / "rounds.json").write_text("{}")
        for k in range(3):
            made.setdefault(f"rounds={k}", {})[s] = metrics = random_metrics(rng)
            (run / "rounds" / f"round_{k}").mkdir(parents=True)
            (run / "rounds" / f"round_{k}" / "metrics.json").write_text(json.dumps(metrics))
            info = {"versions": {"torch": f"1.{k}"}}  # written by each round's training
            (run / "rounds" / f"round_{k}" / RUN_INFO).write_text(json.dumps(info))
    runs = load_runs(tmp_path)
    assert sorted({r.versions["torch"] for r in runs}) == ["1.0", "1.1", "1.2"]
    table = summary_table(runs)
    assert list(table["configuration"]) == ["rounds=0", "rounds=1", "rounds=2"]
    assert list(table["reference"]) == [True, False, False]
    for row in table.to_dict("records"):
        assert row["n_seeds"] == 2
        mean, std = expected(made[row["configuration"]], "event_f1")
        assert row["event_f1_mean"] == pytest.approx(mean)
        assert row["event_f1_std"] == pytest.approx(std)


def test_command_line_sweep_groups_and_group_default_fills_in(tmp_path):
    """No sweeper params: the sweep of multirun.yaml defines the configurations; a run that
    did not override the swept group gets its default (the group choice)."""
    sweep = tmp_path / "runs" / "2026-01-01_00-00-00"
    sweep.mkdir(parents=True)
    multirun = {
        "hydra": {
            "overrides": {
                "task": ["trainer.max_epochs=3", "model/pooling=mean,attention", "seed=1,2"]
            }
        }
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    rng = np.random.default_rng(2)
    study = {"name": "pooling", "reference": "model/pooling=attention", "budget": "x"}
    for s in (1, 2):
        for pooling in ("mean", "attention"):
            overrides = ["trainer.max_epochs=3", f"model/pooling={pooling}"]
            make_run(sweep / f"{pooling}{s}", overrides, s, random_metrics(rng), study=study)
    # a later single run of the reference made without naming the pooling (its default)
    choices = {"model/pooling": "attention"}
    make_run(tmp_path / "extra", [], 3, random_metrics(rng), choices=choices, study=study)
    table = summary_table(load_runs(tmp_path))
    assert list(table["configuration"]) == ["model/pooling=attention", "model/pooling=mean"]
    assert list(table["seeds"]) == ["1 2 3", "1 2"]


def test_study_factors_group_runs_of_separate_commands(tmp_path):
    """label_constraint: off (the group default, null) and on (overridden, with a per-seed
    checkpoint that must not split the configuration)."""
    rng = np.random.default_rng(3)
    study = {"name": "lc", "reference": "label_constraint=null", "factors": ["label_constraint"]}
    off, on = {"label_constraint": None}, {"label_constraint": "default"}
    for s in (1, 2):
        ckpt = f"init_from=/ckpt/seed{s}.ckpt"
        make_run(tmp_path / f"off{s}", [ckpt], s, random_metrics(rng), choices=off, study=study)
        overrides = ["label_constraint=default", f"label_constraint.ckpt=/ckpt/seed{s}.ckpt"]
        make_run(tmp_path / f"on{s}", overrides, s, random_metrics(rng), choices=on, study=study)
    table = summary_table(load_runs(tmp_path))
    assert list(table["configuration"]) == ["label_constraint=null", "label_constraint=default"]
    assert list(table["reference"]) == [True, False] and list(table["n_seeds"]) == [2, 2]


def test_a_seed_run_twice_keeps_the_latest_run(tmp_path):
    made = fake_study(tmp_path, {"fixed": [1, 2]})
    again = make_run(
        tmp_path / "rerun", ["loss=fixed"], 2, random_metrics(np.random.default_rng(9))
    )
    for run, day in [(tmp_path / "runs" / "fixed_2", 1), (again, 2)]:
        (run / RUN_INFO).write_text(json.dumps({"started": f"2026-01-0{day}T00:00:00+00:00"}))
    row = summary_table(load_runs(tmp_path)).iloc[0]
    kept = [made["fixed"][1], json.loads((again / "metrics.json").read_text())]
    assert row["n_seeds"] == 2
    assert row["clip_map_mean"] == pytest.approx(np.mean([m["test/clip_map"] for m in kept]))


def test_unfinished_runs_are_left_out(tmp_path):
    fake_study(tmp_path, {"fixed": [1, 2]})
    make_run(tmp_path / "runs" / "crashed", ["loss=fixed"], 3, None, {"loss": "fixed"})
    assert list(summary_table(load_runs(tmp_path))["seeds"]) == ["1 2"]


def test_no_run_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="^sed-tools report: no run found under"):
        main(["report", str(tmp_path)])
    assert not (tmp_path / "results.md").exists()


def test_runs_dir_option(tmp_path):
    fake_study(tmp_path / "elsewhere", {"fixed": [1, 2]})
    main(["report", str(tmp_path / "study"), "--runs-dir", str(tmp_path / "elsewhere")])
    assert (tmp_path / "study" / "results.csv").is_file()


# ---------------------------------------------------------------- study configs, run_info


@pytest.mark.parametrize("study", STUDIES)
def test_study_config_composes_into_its_folder(study):
    assert {"loss_weighting", "pooling", "model", "median_filter", "self_training"} <= set(STUDIES)
    cfg = compose_train([f"+experiment=ablation/{study}"], tiny=False)
    with open_dict(cfg):
        cfg.hydra.job.num = 0
    # the sweeper resolves the sweep dir before any job runs, with no HydraConfig set: it must
    # not use ${hydra:runtime...} (nor paths.root_dir, which does); relative to the cwd
    HydraConfig.instance().cfg = None
    sweep_dir = Path(cfg.hydra.sweep.dir)
    assert sweep_dir.parent == Path("experiments") / study / "runs"
    HydraConfig.instance().set_config(cfg)
    assert cfg.task_name == f"ablation_{study}" and cfg.study.name == study
    assert cfg.data.class_names[0] == "clear_throat"  # the office benchmark underneath
    assert cfg.hydra.sweep.subdir.startswith("0_") and cfg.hydra.sweep.subdir.endswith("seed=42")
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params["seed"] == "1,2"
    key, _, value = cfg.study.reference.partition("=")
    if key in params:  # the reference is one of the swept values
        assert value in params[key].split(",")


@pytest.mark.parametrize(("option", "weak", "strong"), [("weak_only", 1, 0), ("strong_only", 0, 1)])
def test_single_loss_options(option, weak, strong):
    loss = compose_train([f"loss={option}"], tiny=False).loss
    weights = (loss.terms.weak.weight, loss.terms.strong.weight)
    assert (*weights, loss.weighting) == (weak, strong, "fixed")


def test_run_info_records_versions_and_overrides(cfg_train, tmp_path):
    import torch

    path = write_run_info(cfg_train, tmp_path / "out")
    info = json.loads(path.read_text())
    assert info["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert set(info["versions"]) >= {
        "python",
        "lightning",
        "sed_eval",
        "sed-lightning",
    }
    assert (
        info["overrides"] == list(cfg_train.hydra.overrides.task) and TINY[0] in info["overrides"]
    )
    assert info["choices"]["model"] == "conformer" and info["seed"] == cfg_train.seed


# ---------------------------------------------------------------- a real multirun


EXPERIMENT = """# @package _global_
study: {name: tiny_pooling, reference: model/pooling=attention, budget: one batch}
hydra:
  sweep:
    subdir: ${hydra.job.num}_pooling=${hydra:runtime.choices.model/pooling}_seed=${seed}
  sweeper:
    params:
      model/pooling: mean,attention
      seed: 7,8,9
"""


def test_real_multirun_then_report(tmp_path, data_dir):
    """2 poolings x seeds 1,2 (the command line replaces the experiment's seeds)."""
    ensure_data(data_dir, tmp_path)
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "tiny_pooling.yaml").write_text(EXPERIMENT)
    sweep = tmp_path / "study" / "runs" / "sweep"
    cmd = [sys.executable, "-m", "sed_lightning.train", "-m", *TINY, "debug=fdr"]
    cmd += [f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}"]
    cmd += [
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "+experiment=tiny_pooling",
        "seed=1,2",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = sorted(p.name.split("_", 1)[1] for p in sweep.iterdir() if p.is_dir())
    assert runs == [f"pooling={p}_seed={s}" for p in ("attention", "mean") for s in (1, 2)]
    table = report(tmp_path / "study").set_index("configuration")
    assert list(table.index) == ["model/pooling=attention", "model/pooling=mean"]
    assert list(table["reference"]) == [True, False] and list(table["seeds"]) == ["1 2", "1 2"]
    for pooling in ("attention", "mean"):
        saved = [
            json.loads(p.read_text()) for p in sweep.glob(f"*_pooling={pooling}_*/metrics.json")
        ]
        for name in (*METRICS, *DCASE2016_KEYS):  # the real runs write the 2016 figures
            mean = np.mean([m[f"test/{name}"] for m in saved])
            assert table.loc[f"model/pooling={pooling}", f"{name}_mean"] == pytest.approx(mean)


def test_separate_commands_without_sweeps_are_told_apart_by_their_overrides(tmp_path):
    """No swept key, no study.factors: overrides that differ between runs of one seed make the
    configurations; a per-seed value (a checkpoint path) does not."""
    rng = np.random.default_rng(4)
    study = {"name": "recipe", "reference": "scheduler=warmup"}
    for s in (1, 2):
        ckpt = f"init_from=/ckpt/seed{s}.ckpt"
        make_run(
            tmp_path / f"a{s}", ["scheduler=warmup", ckpt], s, random_metrics(rng), study=study
        )
        make_run(
            tmp_path / f"b{s}", ["scheduler=cosine", ckpt], s, random_metrics(rng), study=study
        )
        make_run(
            tmp_path / f"c{s}",
            ["scheduler=cosine", "data.batch_sizes.strong=24", ckpt],
            s,
            random_metrics(rng),
            study=study,
        )
    table = summary_table(load_runs(tmp_path))
    assert sorted(table["configuration"]) == [
        "data.batch_sizes.strong=24, scheduler=cosine",
        "data.batch_sizes.strong=null, scheduler=cosine",
        "data.batch_sizes.strong=null, scheduler=warmup",
    ]
    assert list(table["n_seeds"]) == [2, 2, 2]
    assert table.loc[table["reference"], "configuration"].tolist() == [
        "data.batch_sizes.strong=null, scheduler=warmup"
    ]
    # the table names each configuration by what it changes; the common settings once
    md = markdown(table, load_runs(tmp_path), tmp_path)
    assert "common settings (a configuration names only what it changes): " in md
    assert "`data.batch_sizes.strong=null`, `scheduler=cosine`" in md
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| ")][1:]
    assert rows[0] == "| **scheduler=warmup** (ref)"
    assert sorted(rows[1:]) == ["| common settings", "| data.batch_sizes.strong=24"]


def test_a_study_spanning_a_new_option_or_a_resume_is_not_split_by_them():
    """Runs made before an option existed (no such key, or an inline node that became a
    group) count as its default; ``ckpt_path`` (a resumed run) is not a factor."""
    from types import SimpleNamespace as Ns

    from omegaconf import OmegaConf

    from sed_lightning.evaluation.report_runs import factor_keys, factor_values

    def run(overrides, choices, config, seed=1):
        config = OmegaConf.create({"seed": seed, **config})
        return Ns(overrides=overrides, choices=choices, config=config, swept=[])

    old = run({}, {}, {"features": {"n_mels": 64}, "x": None})
    new = run({}, {"features": "logmel"}, {"features": {"n_mels": 64}, "p": 0.0, "x": None})
    resumed = run({"ckpt_path": "last"}, {"features": "logmel"}, {"p": 0.0, "x": None})
    pcen = run({"features": "pcen"}, {"features": "pcen"}, {"p": 0.0, "x": None})
    varied = run({"p": "0.5"}, {"features": "logmel"}, {"p": 0.5, "x": None})
    runs = [old, new, resumed, pcen, varied]
    keys = factor_keys(runs)
    assert sorted(keys) == ["features", "p"]  # not ckpt_path
    values = factor_values(runs, keys)
    assert values[0] == values[1] == values[2] == {"features": "logmel", "p": "0.0"}
    assert values[3] == {"features": "pcen", "p": "0.0"}
    assert values[4] == {"features": "logmel", "p": "0.5"}
    # an explicit null is a value, not an absent key
    assert factor_values([old, varied], ["x"]) == [{"x": "null"}, {"x": "null"}]
