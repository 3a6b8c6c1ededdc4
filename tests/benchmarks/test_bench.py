"""The benchmark harness runs end to end on a tiny setting (figures are not checked)."""

import json

import torch

from benchmarks import bench


def test_sections_return_sane_figures():
    device = torch.device("cpu")
    assert bench.matmul_peak(device, n=128, repeats=2)["matmul_float32_gflops"] > 0
    cost = bench.model_cost("crnn", clip_seconds=1.0)
    assert cost["params"] > 0 and cost["macs_per_clip"] > 0
    train = bench.train_throughput("conformer", device, batch_size=2, steps=1, warmup=1)
    assert train["clips_per_s"] > 0
    assert abs(sum(train["step_split"].values()) - 1.0) < 1e-6
    infer = bench.inference("conformer", device, batch_sizes=(1,))
    assert infer["batch1"]["realtime_factor"] > 0


def test_cost_grows_with_clip_length():
    short, long = bench.model_cost("conformer", 1.0), bench.model_cost("conformer", 2.0)
    assert 1.8 < long["macs_per_clip"] / short["macs_per_clip"] < 2.2


def test_report_files_are_written(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    monkeypatch.setattr(
        bench,
        "inference",
        lambda m, d: {
            f"batch{b}": {
                "realtime_factor": 1.0,
                "features_realtime_factor": 2.0,
                "model_only_realtime_factor": 2.0,
                "features_share": 0.5,
            }
            for b in (1, 32)
        },
    )
    args = bench.parse(
        [
            "--name",
            "tiny",
            "--sections",
            "cost",
            "train",
            "infer",
            "--models",
            "crnn",
            "--batch-size",
            "2",
            "--steps",
            "1",
        ]
    )
    results = bench.run(args)
    saved = json.loads((tmp_path / "tiny.json").read_text())
    assert saved["models"]["crnn"]["cost"] == results["models"]["crnn"]["cost"]
    assert "| crnn |" in (tmp_path / "tiny.md").read_text()


def test_speed_and_scaling_sections_on_a_tiny_setting(tmp_path, monkeypatch):
    from benchmarks import scaling, speed

    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    setups = speed.speed_setups()
    assert [s.name for s in setups][0] == "previous" and setups[-1].name == "now"
    monkeypatch.setattr(speed, "speed_setups", lambda: [setups[0], setups[-1]])
    by_batch, by_clips = scaling.training_by_batch, scaling.data_by_clips
    monkeypatch.setattr(scaling, "training_by_batch", lambda: by_batch((1, 2), steps=1))
    monkeypatch.setattr(
        scaling, "data_by_clips", lambda: by_clips((4, 8), extrapolate=(16,), bank_per_class=7)
    )
    args = bench.parse(
        [
            "--name",
            "tiny",
            "--sections",
            "speed",
            "scaling",
            "--speed-models",
            "conformer",
            "--batch-size",
            "2",
            "--speed-steps",
            "1",
            "--scaling-lengths",
            "2",
            "20",
        ]
    )
    results = bench.run(args)
    speed_row = results["speed"]["conformer"]
    assert speed_row["ratio"]["previous"] == 1.0 and speed_row["clips_per_s"]["now"] > 0
    inf = results["scaling"]["inference"]["rows"]
    assert [r["seconds"] for r in inf] == [2, 20] and all(r["peak_rss_mb"] > 0 for r in inf)
    data = results["scaling"]["data"]["rows"]
    assert [r["measured"] for r in data] == [True, True, False]
    table = (tmp_path / "tiny.md").read_text()
    assert "| conformer | 2 | now |" in table and "extrapolated" in table


def test_the_pretrained_model_is_benchmarked_on_its_own_front_end_and_recipe():
    frontend, net = bench.build_parts("efficientat")
    assert frontend.sample_rate == 32000 and frontend.n_features == 128
    assert net.cnn.freeze_blocks == 12  # the recipe's: training clips/s is the recipe's
    cost = bench.model_cost("efficientat", clip_seconds=1.0)
    assert cost["macs_per_clip"] > 0 and cost["params"] > 900_000


def test_accuracy_table_has_cost_columns_blank_without_cost_json():
    row = {"model": "crnn", "seed": 1, "budget_min": 8, "wall_s": 500.0}
    row |= {k: 0.5 for k in bench.HEADLINE}
    costed = {**row, "model": "conformer", "cost/params_total": 2.5e6}
    costed |= {"cost/macs_per_clip": 1.2e9, "cost/fit_kwh": 0.012, "cost/test_kwh": 3e-4}
    costed |= {"cost/fit_s": 480.0}
    results = {"name": "t", "date": "now", "machine": bench.machine_info(torch.device("cpu"))}
    md = bench.markdown({**results, "accuracy": [costed, row]})
    head = next(line for line in md.splitlines() if line.startswith("| model | seed"))
    assert head.endswith("| params | MACs / 10 s clip | train kWh | test kWh | fit time |")
    lines = [line for line in md.splitlines() if line.startswith(("| conformer", "| crnn"))]
    assert lines[0].endswith("| 2.5 M | 1.2 G | 0.012 | 0.0003 | 8.0 min |")
    assert lines[1].endswith("| 0.500 |  |  |  |  |  |")
