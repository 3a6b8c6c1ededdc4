"""Checkpoints: the torchaudio-era layout still loads and gives the recorded scores;
loading is tensors-only (``weights_only=True``)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sed_lightning.inference import Predictor
from sed_lightning.training.build import build_module
from sed_lightning.training.checkpoints import (
    LAYOUT,
    LAYOUT_KEY,
    load_weights,
    upgrade_state_dict,
)
from sed_lightning.training.preflight import ConfigError
from tests.conftest import compose_train, finalize
from tests.training.runs import ensure_data, run_train

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "torchaudio_era"
OLD_CKPT = FIXTURES / "tiny.ckpt"  # 2 epochs of the tiny config, torchaudio 2.11 Conformer


def module_for(tmp_path: Path, *overrides: str):
    """The tiny config's module (the config the old checkpoint was trained with)."""
    return build_module(finalize(compose_train(list(overrides)), tmp_path / "run", tmp_path))


def old_checkpoint() -> dict:
    return torch.load(OLD_CKPT, map_location="cpu", weights_only=True)


def test_old_checkpoint_reproduces_its_recorded_frame_scores(caplog):
    clip, _ = sf.read(FIXTURES / "clip.wav", dtype="float32")
    with caplog.at_level(logging.WARNING):
        # back-to-back windows padded with zeros: how the scores were recorded (a hop
        # longer than the window is clamped to one window)
        predictor = Predictor.from_checkpoint(OLD_CKPT, hop=1e6, pad="zeros")
    assert predictor.hop_frames == predictor.encoder.n_frames
    assert "converted from checkpoint layout 1" in caplog.text  # never silently
    assert "33 Conformer tensors renamed" in caplog.text
    scores = predictor.frame_scores(clip)
    recorded = np.load(FIXTURES / "scores.npy")
    assert scores.shape == recorded.shape == (79, 6)
    assert np.abs(scores - recorded).max() <= 1e-4
    assert recorded.std() > 0.01  # the recorded scores are not a constant


def test_old_checkpoint_keys_are_renamed_to_the_new_blocks(tmp_path):
    module = module_for(tmp_path)
    state = upgrade_state_dict(old_checkpoint()["state_dict"], module)
    assert set(state) == set(module.state_dict())
    old = old_checkpoint()["state_dict"]
    prefix = "model.encoder."
    pairs = {
        "conformer.conformer_layers.0.self_attn.in_proj_weight": "blocks.0.attn.in_proj.weight",
        "conformer.conformer_layers.0.conv_module.sequential.3.running_var": (
            "blocks.0.conv.batch_norm.running_var"
        ),
        "conformer.conformer_layers.0.ffn2.sequential.4.bias": "blocks.0.ffn2.linear2.bias",
    }
    for before, after in pairs.items():
        assert torch.equal(state[prefix + after], old[prefix + before])


def test_new_checkpoints_are_left_alone(tmp_path):
    module = module_for(tmp_path)
    state = module.state_dict()
    assert upgrade_state_dict(state, module).keys() == state.keys()


def test_a_saved_filterbank_from_other_settings_is_refused(tmp_path):
    module = module_for(tmp_path, "+features.f_min=50")
    with pytest.raises(ValueError, match=r"mel_scale\.fb differs.*f_min"):
        upgrade_state_dict(old_checkpoint()["state_dict"], module, source="old.ckpt")


def test_init_from_an_old_checkpoint(tmp_path):
    module = module_for(tmp_path)
    load_weights(module, OLD_CKPT, "init_from")
    expected = Predictor.from_checkpoint(OLD_CKPT).module.state_dict()
    for key, value in module.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_resuming_training_from_an_old_checkpoint(tmp_path, data_dir):
    """A real Trainer resumes the old run (weights, optimizer, loop state) for one more
    epoch and saves the current layout."""
    ensure_data(data_dir, tmp_path)
    ckpt = tmp_path / "old.ckpt"
    shutil.copy(OLD_CKPT, ckpt)
    run = tmp_path / "run"
    run_train(run, data_dir, "trainer.max_epochs=3", f"ckpt_path={ckpt}", "test=false")
    resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 2 and resumed[LAYOUT_KEY] == LAYOUT
    assert any(".blocks.0.attn.in_proj.weight" in k for k in resumed["state_dict"])


class _Payload:
    """Unpickling this runs ``os.system`` (what a malicious checkpoint would carry)."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_checkpoint_carrying_a_pickled_callable_is_refused(tmp_path):
    ckpt = old_checkpoint()
    ckpt["hyper_parameters"] = {"hook": _Payload()}
    path = tmp_path / "crafted.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(ConfigError, match=r"ckpt: .*crafted\.ckpt: checkpoint refused as unsafe"):
        Predictor.from_checkpoint(path)
    with pytest.raises(ConfigError, match="crafted.ckpt"):
        load_weights(module_for(tmp_path), path, "init_from")
