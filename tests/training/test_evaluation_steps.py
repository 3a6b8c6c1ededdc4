"""The evaluation callback's helpers outside a trainer's loop (``save_val_scores`` runs after
``trainer.test``, when Lightning has torn the strategy down)."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import torch

from sed_lightning.data.batch import SEDBatch
from sed_lightning.models.sed import SEDOutput
from sed_lightning.training.evaluation import predict_set


class Probe(torch.nn.Module):
    """Records its mode at each call; outputs fixed probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.modes: list[bool] = []

    @property
    def device(self) -> torch.device:
        return self.weight.device

    def forward(self, audio: torch.Tensor) -> SEDOutput:
        self.modes.append(self.training)
        n = audio.shape[0]
        strong = torch.full((n, 2, 5), 0.25) + self.weight
        return SEDOutput(strong, strong.amax(-1), None, None)


def batch(names: list[str]) -> SEDBatch:
    n = len(names)
    flags = torch.zeros(n, dtype=torch.bool)
    return SEDBatch(torch.zeros(n, 8), torch.zeros(n, 2), torch.zeros(n, 2, 5), flags, flags, names)


def test_predict_set_runs_in_eval_mode_and_restores_the_module():
    trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device("cpu"), batch_to_device=lambda b: b),
        precision_plugin=SimpleNamespace(val_step_context=contextlib.nullcontext),
    )
    module = Probe().train()
    preds = predict_set(trainer, module, [batch(["a.wav", "b.wav"]), batch(["c.wav"])])
    assert module.modes == [False, False] and module.training  # eval inside, train after
    assert sorted(preds.frames) == ["a.wav", "b.wav", "c.wav"]
    assert preds.frames["c.wav"].shape == (5, 2) and preds.clips["c.wav"].tolist() == [0.25] * 2
