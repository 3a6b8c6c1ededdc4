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
