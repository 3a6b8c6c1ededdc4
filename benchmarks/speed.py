"""Training speed: the previous CPU settings against the current ones, side by side.

Both set-ups are built in the same process and timed in alternating rounds (A, B, A, B, ...)
on the same in-memory batch, so a machine that gets faster or slower during the run
affects both alike; the ratio of their clips/s is what the table reports. Each switch is
also timed alone against the previous settings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import instantiate

from sed_lightning.losses.sed_loss import summed_bce

# The CPU settings before the speed work: fp32, element dropout before the pooling,
# contiguous (channels-first) convolutions, eager.
PREVIOUS = (
    "model.cnn.dropout_kind=element",
    "model.cnn.dropout_after_pool=false",
    "model.cnn.channels_last=false",
)


@dataclass
class Setup:
    """One way to train: config overrides, autocast precision, torch.compile."""

    name: str
    overrides: Sequence[str] = ()
    precision: str = "32"
    compile: bool = False
    describe: str = ""


def speed_setups() -> list[Setup]:
    """The previous settings, each switch alone on top of them, and the current defaults
    (the model presets and ``trainer=cpu``, as composed now)."""
    from benchmarks.bench import compose_config

    cfg = compose_config([])
    now = Setup(
        "now",
        (),
        str(cfg.trainer.get("precision", "32")),
        bool(cfg.get("compile")),
        describe=f"the presets: precision {cfg.trainer.get('precision', '32')}, "
        f"dropout {cfg.model.cnn.dropout_kind}"
        f"{' after pooling' if cfg.model.cnn.get('dropout_after_pool') else ''}"
        f"{', channels-last' if cfg.model.cnn.get('channels_last') else ''}"
        f"{', compiled' if cfg.get('compile') else ''}",
    )
    return [
        Setup("previous", PREVIOUS, describe="fp32, element dropout before pooling, eager"),
        Setup(
            "channel dropout",
            (*PREVIOUS, "model.cnn.dropout_kind=channel"),
            describe="Dropout2d: one draw per feature map",
        ),
        Setup(
            "dropout after pool",
            (*PREVIOUS, "model.cnn.dropout_after_pool=true"),
            describe="element dropout on the pooled map",
        ),
        Setup(
            "channels-last",
            (*PREVIOUS, "model.cnn.channels_last=true"),
            describe="convolutions in channels-last layout",
        ),
        Setup("bf16", PREVIOUS, "bf16-mixed", describe="bf16 autocast (avx512_bf16)"),
        now,
    ]


def build_step(model: str, setup: Setup, batch_size: int, n_classes: int = 10):
    """A closure running one training step (features, forward, loss, backward, Adam)."""
    from benchmarks.bench import compose_config

    cfg = compose_config([f"model={model}", *setup.overrides])
    frontend = instantiate(cfg.features)
    net = instantiate(cfg.model)(n_classes=n_classes, n_mels=frontend.n_features).train()
    if setup.compile:
        net.compile()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    audio = torch.randn(batch_size, 160000, generator=torch.Generator().manual_seed(0))
    target = torch.zeros(batch_size, n_classes, net(frontend(audio[:1])).strong.shape[-1])
    bf16 = setup.precision == "bf16-mixed"

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(frontend(audio))
        summed_bce(out.strong, target).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def side_by_side(
    model: str,
    setups: Sequence[Setup],
    batch_size: int = 24,
    steps: int = 4,
    rounds: int = 3,
    warmup: int = 2,
) -> dict[str, Any]:
    """Clips/s of each set-up, timed in alternating rounds; ``ratio`` to the first one."""
    steppers = {s.name: build_step(model, s, batch_size) for s in setups}
    for step in steppers.values():  # warm-up (and compilation)
        for _ in range(warmup):
            step()
    seconds = dict.fromkeys(steppers, 0.0)
    for _ in range(rounds):
        for name, step in steppers.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            seconds[name] += time.perf_counter() - start
    clips = batch_size * steps * rounds
    rate = {name: clips / s for name, s in seconds.items()}
    first = setups[0].name
    return {
        "batch_size": batch_size,
        "clips_per_s": rate,
        "ratio": {name: r / rate[first] for name, r in rate.items()},
    }
