"""How cost grows with the work: file length at inference, batch size in training, the
number of clips in a set (synthesis and validation).

Each row gives the measured figures and the growth order fitted between the measured points
(the exponent ``k`` of ``cost ~ n^k``: 1 is linear). Sizes that would take too long here are
extrapolated from the measured slope and marked so.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Scores one file of N seconds with the default model (random weights: speed only) through
# the streaming predictor, in a fresh process, and prints the figures.
_INFER_SCRIPT = r"""
import json, sys, time
import torch
from benchmarks.bench import compose_config
from sed_lightning.training.build import build_module, label_encoder
from sed_lightning.inference.predictor import Predictor
seconds, path, model = float(sys.argv[1]), sys.argv[2], sys.argv[3]
cfg = compose_config([f"model={model}", "paths.root_dir=.", "paths.output_dir=/tmp", "paths.data_dir=/tmp"])
module = build_module(cfg)
predictor = Predictor(module, label_encoder(cfg, module), 16000, {"median_window": 0.45}, batch_size=8)
def hwm():  # this process's peak resident memory (MiB); ru_maxrss would carry the parent's over exec
    status = open("/proc/self/status").read().splitlines()
    return int(next(l.split()[1] for l in status if l.startswith("VmHWM"))) / 1024
before = hwm()
start = time.perf_counter()
scores, duration = predictor.file_scores(path)
wall = time.perf_counter() - start
peak = hwm()
print(json.dumps({"seconds": seconds, "wall_s": wall, "peak_rss_mb": peak,
                  "rss_before_mb": before, "frames": len(scores)}))
"""


def growth_order(sizes: Sequence[float], costs: Sequence[float]) -> float:
    """Exponent ``k`` of ``cost ~ size^k`` between the first and last point.

    >>> round(growth_order([10, 100], [1.0, 10.0]), 2)
    1.0
    """
    return math.log(costs[-1] / costs[0]) / math.log(sizes[-1] / sizes[0])


def order_name(k: float) -> str:
    """A word for a growth exponent."""
    if k < 0.3:
        return "constant"
    if k < 0.8:
        return f"sublinear (n^{k:.2f})"
    if k < 1.2:
        return "linear"
    return f"superlinear (n^{k:.2f})"


def inference_by_length(
    lengths: Sequence[float] = (10, 60, 600, 3600), model: str = "conformer"
) -> dict[str, Any]:
    """Wall time and peak memory of scoring one file of each length (seconds)."""
    import numpy as np
    import soundfile as sf

    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in lengths:
            with sf.SoundFile(f"{tmp}/x.wav", "w", 16000, 1, "PCM_16") as f:  # noise, 10 min a time
                left = int(seconds * 16000)
                while left > 0:
                    n = min(left, 600 * 16000)
                    f.write((0.1 * rng.standard_normal(n)).astype(np.float32))
                    left -= n
            proc = subprocess.run(
                [sys.executable, "-c", _INFER_SCRIPT, str(seconds), f"{tmp}/x.wav", model],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    k = growth_order([r["seconds"] for r in rows], [r["wall_s"] for r in rows])
    return {"model": model, "rows": rows, "growth": k}


def training_by_batch(
    batch_sizes: Sequence[int] = (8, 24, 64), model: str = "conformer", steps: int = 3
) -> dict[str, Any]:
    """Training clips/s at each batch size (the current default settings)."""
    from benchmarks.speed import Setup, side_by_side

    rows = []
    for bs in batch_sizes:
        r = side_by_side(model, [Setup("now")], batch_size=bs, steps=steps, rounds=1, warmup=1)
        rows.append({"batch_size": bs, "clips_per_s": r["clips_per_s"]["now"]})
    step_times = [r["batch_size"] / r["clips_per_s"] for r in rows]
    return {"model": model, "rows": rows, "growth": growth_order(batch_sizes, step_times)}


def data_by_clips(
    measured: Sequence[int] = (100, 1000),
    extrapolate: Sequence[int] = (10000,),
    bank_per_class: int = 40,
) -> dict[str, Any]:
    """Synthesis and validation time of a strong set of N ten-second clips (built-in data).

    The event bank is built once before timing. Sizes in ``extrapolate`` are not run: their
    times follow the slope between the measured sizes (marked ``extrapolated``).
    """
    from sed_lightning.data.builders import SoundscapeBuilder
    from sed_lightning.data.validation import validate_set

    classes = ["alarm", "speech", "knock", "water", "engine", "dog_bark"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        soundscape = {"clip_duration": 10.0, "sample_rate": 16000, "ebr_db": [6.0, 15.0]}
        bank = {"bank_dir": f"{tmp}/bank", "bank_per_class": bank_per_class}
        SoundscapeBuilder(f"{tmp}/sets", classes, {}, soundscape, **bank).bank()  # not timed
        for n in measured:
            builder = SoundscapeBuilder(
                f"{tmp}/sets",
                classes,
                {f"n{n}": {"kind": "strong", "source_split": "train", "n_clips": n, "seed": 9}},
                soundscape,
                **bank,
            )
            start = time.perf_counter()
            sources = builder.build()
            synth = time.perf_counter() - start
            start = time.perf_counter()
            validate_set(sources[f"n{n}"], classes, 16000, 10.0)
            valid = time.perf_counter() - start
            rows.append({"clips": n, "synthesis_s": synth, "validation_s": valid, "measured": True})
    k_syn = growth_order(measured, [r["synthesis_s"] for r in rows])
    k_val = growth_order(measured, [r["validation_s"] for r in rows])
    last = rows[-1]
    for n in extrapolate:
        factor = n / last["clips"]
        rows.append(
            {
                "clips": n,
                "synthesis_s": last["synthesis_s"] * factor**k_syn,
                "validation_s": last["validation_s"] * factor**k_val,
                "measured": False,
            }
        )
    return {"rows": rows, "growth_synthesis": k_syn, "growth_validation": k_val}


def markdown(scaling: dict[str, Any]) -> list[str]:
    lines = ["How cost grows (`scaling`):", ""]
    if "inference" in scaling:
        inf = scaling["inference"]
        lines += [
            f"Inference, one file, `model={inf['model']}` (streamed, window batch 8, windows overlapping by half): "
            f"{order_name(inf['growth'])} in the file length.",
            "",
            "| file | wall (s) | real-time factor | peak memory (MiB) | before scoring (MiB) |",
            "|---|---|---|---|---|",
        ]
        for r in inf["rows"]:
            label = f"{r['seconds'] / 60:g} min" if r["seconds"] >= 60 else f"{r['seconds']:g} s"
            lines.append(
                f"| {label} | {r['wall_s']:.2f} | {r['seconds'] / r['wall_s']:.0f}x | "
                f"{r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} |"
            )
        lines.append("")
    if "training" in scaling:
        tr = scaling["training"]
        lines += [
            f"Training, `model={tr['model']}`, current CPU settings: step time "
            f"{order_name(tr['growth'])} in the batch size.",
            "",
            "| batch | clips/s |",
            "|---|---|",
            *[f"| {r['batch_size']} | {r['clips_per_s']:.1f} |" for r in tr["rows"]],
            "",
        ]
    if "data" in scaling:
        d = scaling["data"]
        lines += [
            f"Data, strong sets of 10 s clips: synthesis {order_name(d['growth_synthesis'])}, "
            f"validation {order_name(d['growth_validation'])} in the number of clips.",
            "",
            "| clips | synthesis (s) | validation (s) | |",
            "|---|---|---|---|",
            *[
                f"| {r['clips']:,} | {r['synthesis_s']:.1f} | {r['validation_s']:.1f} | "
                f"{'measured' if r['measured'] else 'extrapolated'} |"
                for r in d["rows"]
            ],
            "",
        ]
    return lines
