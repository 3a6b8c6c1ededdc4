"""Speed, cost and accuracy benchmarks: ``make bench`` (or ``python -m benchmarks.bench``).

Writes ``benchmarks/results/<name>.json`` and ``benchmarks/results/<name>.md``, each with
the machine's description. Measure on an idle machine: a second busy process on a 2-core
machine quarters the figures.

Sections:
  * ``peak``: this machine's fp32 matmul rate (the yardstick for "share of peak").
  * ``cost``: parameters and MACs per 10 s clip (``torch.utils.flop_counter``).
  * ``train``: steady-state training clips/s on in-memory batches, and the split of a step
    into feature extraction, forward, backward and optimizer.
  * ``loader``: share of a real training step spent waiting for the DataLoader.
  * ``infer``: real-time factor end to end from the waveform at batch 1 and 32, feature
    extraction alone, and peak memory.
  * ``speed``: the previous CPU training settings against the current ones in the same
    process, in alternating rounds, with their ratio (:mod:`benchmarks.speed`).
  * ``scaling``: inference time and memory by file length, training speed by batch size,
    synthesis and validation time by set size, with growth orders (:mod:`benchmarks.scaling`).
  * ``accuracy``: office-benchmark test metrics after a fixed wall-clock training budget,
    for each model (same seed, same data, same post-processing).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from sed_lightning.config import register_configs
from sed_lightning.losses.sed_loss import summed_bce
from sed_lightning.run_files import METRICS_FILE
from sed_lightning.training.cost import (
    COST_COLUMNS,
    clip_macs,
    fmt_cost,
    parameter_counts,
    read_cost,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
log = logging.getLogger("bench")

MODELS = ("conformer", "conformer_dcase2020", "crnn", "efficientat")
# Models that need more than ``model=NAME``: the pretrained trunk runs on its own 32 kHz
# front end, with the office recipe's fine-tuning settings (so training clips/s is the
# recipe's: its frozen blocks get no backward pass); random weights (speed only).
MODEL_OVERRIDES = {
    "efficientat": [
        "model=efficientat",
        "features=efficientat",
        "data.sample_rate=32000",
        "model.cnn.weights=null",
        "model.cnn.freeze_blocks=12",
    ],
}
HEADLINE = ("event_f1", "segment_f1", "psds1", "psds2", "clip_map")


# ----------------------------------------------------------------------------- setup
def compose_config(overrides: Sequence[str] = ()) -> Any:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "sed_lightning" / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def build_parts(model: str, n_classes: int = 10) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Front end and network of a ``model`` config (10 classes, as DESED)."""
    cfg = compose_config(MODEL_OVERRIDES.get(model, [f"model={model}"]))
    frontend = instantiate(cfg.features)
    net = instantiate(cfg.model)(n_classes=n_classes, n_mels=frontend.n_features)
    return frontend, net


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def machine_info(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    return info


# ----------------------------------------------------------------------------- sections
def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """fp32 (and bf16 on GPU, or on a CPU with native bf16) matmul GFLOP/s: the machine's
    practical peak."""
    from sed_lightning.config import cpu_precision

    out = {}
    bf16 = device.type == "cuda" or cpu_precision() == "bf16-mixed"
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16 else [])
    for dtype in dtypes:
        size = n if device.type == "cpu" else 8192
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        for _ in range(2):
            a @ b
        _, seconds = timed(lambda a=a, b=b: [a @ b for _ in range(repeats)], device)
        out[f"matmul_{str(dtype).split('.')[-1]}_gflops"] = 2 * size**3 * repeats / seconds / 1e9
    return out


def model_cost(model: str, clip_seconds: float = 10.0) -> dict[str, float]:
    """Parameters (network) and MACs of one forward pass on one clip (front end included),
    counted as a run's ``cost.json`` counts them (:mod:`sed_lightning.training.cost`)."""
    frontend, net = build_parts(model)
    network = torch.nn.Sequential(frontend, net)
    macs = clip_macs(network, frontend.sample_rate, clip_seconds)
    return {
        "params": parameter_counts(network)["total"],
        "macs_per_clip": macs,
        "gflop_per_clip": 2 * macs / 1e9,
    }


def train_throughput(
    model: str,
    device: torch.device,
    batch_size: int = 24,
    steps: int = 12,
    warmup: int = 3,
    precision: str = "32",
) -> dict[str, Any]:
    """Steady-state training clips/s on in-memory batches, with a per-phase split."""
    frontend, net = build_parts(model)
    frontend.to(device)
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    audio = torch.randn(batch_size, 10 * frontend.sample_rate, device=device)
    amp = precision in ("16-mixed", "bf16-mixed") and device.type == "cuda"
    dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16
    phases = {"features": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    total = 0.0
    for step in range(warmup + steps):
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            feats, t_feat = timed(lambda: frontend(audio), device)
            out, t_fwd = timed(lambda feats=feats: net(feats), device)
            loss = summed_bce(out.strong, torch.zeros_like(out.strong))  # the project's BCE
        _, t_bwd = timed(loss.backward, device)
        _, t_opt = timed(lambda: (opt.step(), opt.zero_grad(set_to_none=True)), device)
        if step >= warmup:
            for k, v in zip(phases, (t_feat, t_fwd, t_bwd, t_opt), strict=True):
                phases[k] += v
            total += t_feat + t_fwd + t_bwd + t_opt
    return {
        "batch_size": batch_size,
        "precision": precision,
        "clips_per_s": batch_size * steps / total,
        "step_split": {k: v / total for k, v in phases.items()},
    }


def loader_wait(device: torch.device, num_workers: int, steps: int = 15) -> dict[str, float]:
    """Share of a real training step (default config and data) spent waiting for data."""
    from sed_lightning.training.build import build_datamodule, build_module

    cfg = compose_config(
        [
            f"data.num_workers={num_workers}",
            f"paths.data_dir={ROOT / 'data_cache'}",
            "paths.root_dir=" + str(ROOT),
            "paths.output_dir=/tmp/sed_bench",
        ]
    )
    module = build_module(cfg).to(device)
    dm = build_datamodule(cfg, module)
    dm.prepare_data()
    dm.setup("fit")
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    it = iter(dm.train_dataloader())
    wait = compute = 0.0
    for step in range(steps + 2):
        batch, t_wait = timed(lambda: next(it).to(device), device)

        def train_step(batch=batch):
            loss = module.compute_loss(batch, module(batch.audio)).total
            loss.backward()
            opt.step()
            opt.zero_grad()

        _, t_step = timed(train_step, device)
        if step >= 2:
            wait, compute = wait + t_wait, compute + t_step
    return {"num_workers": num_workers, "loader_wait_share": wait / (wait + compute)}


def inference(
    model: str, device: torch.device, batch_sizes: Sequence[int] = (1, 32)
) -> dict[str, Any]:
    """Real-time factor for 10 s clips from the waveform, and feature extraction alone."""
    frontend, net = build_parts(model)
    frontend.to(device)
    net.to(device).eval()
    out: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for bs in batch_sizes:
        audio = torch.randn(bs, 10 * frontend.sample_rate, device=device)
        repeats = max(2, 64 // bs)
        with torch.inference_mode():
            net(frontend(audio))  # warm-up
            _, t_all = timed(
                lambda audio=audio, n=repeats: [net(frontend(audio)) for _ in range(n)], device
            )
            _, t_feat = timed(
                lambda audio=audio, n=repeats: [frontend(audio) for _ in range(n)], device
            )
        audio_seconds = 10.0 * bs * repeats
        out[f"batch{bs}"] = {
            "realtime_factor": audio_seconds / t_all,
            "features_realtime_factor": audio_seconds / t_feat,
            "model_only_realtime_factor": audio_seconds / max(t_all - t_feat, 1e-9),
            "features_share": t_feat / t_all,
        }
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # process high-water mark (includes the interpreter and torch itself)
        out["peak_rss_mb"] = (
            max(rss_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
        )
    return out


def accuracy_under_budget(
    model: str, minutes: float, seed: int, extra: Sequence[str] = (), trainer: str = "cpu"
) -> dict[str, Any]:
    """Office-benchmark test metrics after ``minutes`` of training (``trainer.max_time``)."""
    run_dir = RESULTS / "runs" / f"{model}_seed{seed}"
    budget = f"00:00:{int(minutes):02d}:{int(round((minutes % 1) * 60)):02d}"
    cmd = [
        sys.executable,
        "-m",
        "sed_lightning.train",
        "+experiment=dcase2016_office",
        f"model={model}",
        f"seed={seed}",
        f"trainer={trainer}",
        f"trainer.max_time={budget}",
        "trainer.max_epochs=1000",
        f"hydra.run.dir={run_dir}",
        "+trainer.enable_progress_bar=false",
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    return {
        "model": model,
        "seed": seed,
        "budget_min": minutes,
        "wall_s": wall,
        **{k: metrics[f"test/{k}"] for k in HEADLINE},
        **read_cost(run_dir),  # cost/*: the run's cost.json ({} when it has none)
    }


# ----------------------------------------------------------------------------- report
def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# Benchmark `{results['name']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}, torch {m['torch']}, "
        f"device `{m['device']}`. Date: {results['date']}.",
        "",
    ]
    peak = results.get("peak", {})
    if peak:
        lines += [
            "Measured matmul peak: " + ", ".join(f"{k} = {v:.0f}" for k, v in peak.items()),
            "",
        ]
    peak_fp32 = peak.get("matmul_float32_gflops")
    if "models" in results:
        lines += [
            "| model | params | GFLOP / 10 s clip | train clips/s | share of fp32 peak | "
            "RTF b=1 | RTF b=32 | features RTF b=32 | model-only RTF b=32 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in results["models"].items():
            cost, tr, inf = r["cost"], r["train"], r["infer"]
            # training ~ 3x the forward FLOPs (forward + backward)
            share = (
                (3 * cost["gflop_per_clip"] * tr["clips_per_s"] / peak_fp32)
                if peak_fp32
                else float("nan")
            )
            lines.append(
                f"| {name} | {cost['params'] / 1e6:.2f} M | {cost['gflop_per_clip']:.2f} | "
                f"{tr['clips_per_s']:.1f} | {share:.0%} | {inf['batch1']['realtime_factor']:.0f}x | "
                f"{inf['batch32']['realtime_factor']:.0f}x | "
                f"{inf['batch32']['features_realtime_factor']:.0f}x | "
                f"{inf['batch32']['model_only_realtime_factor']:.0f}x |"
            )
        lines += [
            "",
            "Training step split (share of a step):",
            "",
            "| model | features | forward | backward | optimizer |",
            "|---|---|---|---|---|",
        ]
        for name, r in results["models"].items():
            s = r["train"]["step_split"]
            lines.append(
                f"| {name} | {s['features']:.0%} | {s['forward']:.0%} | "
                f"{s['backward']:.0%} | {s['optimizer']:.0%} |"
            )
        lines.append("")
    if "loader" in results:
        lines += [
            "Loader wait (real data, default config): "
            + ", ".join(
                f"{r['num_workers']} workers: {r['loader_wait_share']:.1%}"
                for r in results["loader"]
            ),
            "",
        ]
    if "speed" in results:
        lines += [
            "Training speed, previous CPU settings vs now, side by side in this run "
            "(alternating rounds; ratio = clips/s over the previous settings'):",
            "",
            "| model | batch | set-up | what | clips/s | ratio | share of fp32 / bf16 peak |",
            "|---|---|---|---|---|---|---|",
        ]
        peak_bf16 = peak.get("matmul_bfloat16_gflops")
        for model, r in results["speed"].items():
            gflop = results.get("models", {}).get(model, {}).get("cost", {}).get("gflop_per_clip")
            for name, rate in r["clips_per_s"].items():
                # training ~ 3x the forward FLOPs (forward + backward)
                used = 3 * gflop * rate if gflop else None
                share = " / ".join(
                    f"{used / p:.0%}" if used and p else "-" for p in (peak_fp32, peak_bf16)
                )
                lines.append(
                    f"| {model} | {r['batch_size']} | {name} | {r['describe'][name]} | "
                    f"{rate:.1f} | {r['ratio'][name]:.2f}x | {share} |"
                )
        lines.append("")
    if "scaling" in results:
        from benchmarks.scaling import markdown as scaling_markdown

        lines += scaling_markdown(results["scaling"])
    if "accuracy" in results:
        lines += [
            "Office benchmark (`+experiment=dcase2016_office`) under a fixed training budget:",
            "",
            "| model | seed | budget (min) | wall (s) | "
            + " | ".join([*HEADLINE, *COST_COLUMNS.values()])
            + " |",
            "|---|---|---|---|" + "---|" * (len(HEADLINE) + len(COST_COLUMNS)),
        ]
        for r in results["accuracy"]:
            lines.append(
                f"| {r['model']} | {r['seed']} | {r['budget_min']} | {r['wall_s']:.0f} | "
                + " | ".join(
                    [f"{r[k]:.3f}" for k in HEADLINE]
                    + [fmt_cost(k, r.get(k)) for k in COST_COLUMNS]
                )
                + " |"
            )
        lines += [
            "",
            "Cost columns: the run's cost.json (parameters, MACs per 10 s clip, training and "
            "test kWh by CodeCarbon, fit time); empty for runs without one.",
        ]
        lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    results: dict[str, Any] = {
        "name": args.name,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_info(device),
    }
    if "peak" in args.sections:
        results["peak"] = matmul_peak(device)
        log.info("peak: %s", results["peak"])
    if {"cost", "train", "infer"} & set(args.sections):
        results["models"] = {}
        for model in args.models:
            r = results["models"][model] = {}
            r["cost"] = model_cost(model)
            r["train"] = train_throughput(
                model,
                device,
                batch_size=args.batch_size,
                steps=args.steps,
                precision=args.precision,
            )
            r["infer"] = inference(model, device)
            log.info("%s: %s", model, json.dumps(r))
    if "loader" in args.sections:
        results["loader"] = [loader_wait(device, w) for w in args.workers]
        log.info("loader: %s", results["loader"])
    if "speed" in args.sections:
        from benchmarks.speed import side_by_side, speed_setups

        results["speed"] = {}
        for model in args.speed_models:
            setups = speed_setups()
            r = side_by_side(model, setups, batch_size=args.batch_size, steps=args.speed_steps)
            r["describe"] = {s.name: s.describe for s in setups}
            results["speed"][model] = r
            log.info("speed %s: %s", model, json.dumps(r))
    if "scaling" in args.sections:
        from benchmarks import scaling

        results["scaling"] = {
            "inference": scaling.inference_by_length(args.scaling_lengths),
            "training": scaling.training_by_batch(),
            "data": scaling.data_by_clips(),
        }
        log.info("scaling: %s", json.dumps(results["scaling"]))
    if "accuracy" in args.sections:
        results["accuracy"] = [
            accuracy_under_budget(m, args.budget_min, seed, trainer=args.trainer)
            for m in args.accuracy_models
            for seed in args.seeds
        ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{args.name}.md").write_text(markdown(results))
    log.info("results in %s", RESULTS / f"{args.name}.json")
    return results


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--name", default="cpu")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--sections",
        nargs="+",
        default=["peak", "cost", "train", "infer", "loader", "speed", "scaling", "accuracy"],
    )
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--speed-models", nargs="+", default=["conformer", "conformer_dcase2020"])
    p.add_argument("--speed-steps", type=int, default=4)
    p.add_argument(
        "--scaling-lengths",
        nargs="+",
        type=float,
        default=[10, 60, 600, 3600],
        help="file lengths (s) for the inference scaling rows",
    )
    p.add_argument("--accuracy-models", nargs="+", default=["conformer", "crnn"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1])
    p.add_argument("--budget-min", type=float, default=8.0)
    p.add_argument("--batch-size", type=int, default=24)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--workers", nargs="+", type=int, default=[0, 1])
    p.add_argument("--precision", default="32")
    p.add_argument("--trainer", default="cpu")
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(parse())
