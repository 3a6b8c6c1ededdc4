"""PCEN front end: librosa's PCEN on the same mel magnitudes, level invariance of a
stationary band, the shape of the log-mel front end's output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sed_lightning.features.frontend import LogMelFrontend
from sed_lightning.features.pcen import PCENFrontend

SR = 16000


def test_pcen_matches_librosa_on_the_same_mel_magnitudes():
    librosa = pytest.importorskip("librosa")
    frontend = PCENFrontend(sample_rate=SR, n_fft=1024, hop_length=256, n_mels=64)
    wave = torch.randn(1, 8 * SR, generator=torch.Generator().manual_seed(0)) * 0.1
    for start in (5 * SR, 6 * SR):  # onsets
        wave[0, start : start + 800] += torch.sin(torch.arange(800) * 0.3)
    mel = frontend.mel_magnitude(wave)[0].double().numpy()
    expected = librosa.pcen(mel, sr=SR, hop_length=256)  # its defaults: ours
    ours = frontend.pcen(wave)[0].double().numpy()
    # librosa starts its smoother at 1 (a transient over the first seconds), this one at
    # the first frame; past 300 frames (4.8 s) neither start is remembered. The smoother's
    # impulse response is cut at 1e-3 of its peak.
    np.testing.assert_allclose(ours[:, 300:], expected[:, 300:], rtol=1e-2, atol=1e-3)
    assert frontend(wave).shape == LogMelFrontend(SR, 1024, 256, 64)(wave).shape


def test_a_stationary_band_gives_the_same_pcen_whatever_its_level():
    frontend = PCENFrontend(sample_rate=SR, n_fft=1024, hop_length=256, n_mels=8)
    energy = torch.ones(1, 2, 200)
    energy[0, 1] *= 1e-3  # 60 dB quieter
    smooth = frontend.smooth(energy)
    torch.testing.assert_close(smooth, energy)  # steady state from the first frame on
    gained = energy * torch.exp(-frontend.gain * torch.log(frontend.pcen_eps + smooth))
    pcen = (gained + frontend.bias) ** frontend.power - frontend.bias**frontend.power
    # E / M ** 0.98 = E ** 0.02: 60 dB between the bands become 0.14 dB
    assert float(pcen[0, 0, -1] / pcen[0, 1, -1]) == pytest.approx(1.0, abs=0.2)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="time_constant > 0"):
        PCENFrontend(time_constant=0.0)
    with pytest.raises(ValueError, match="0 <= gain <= 1"):
        PCENFrontend(gain=1.5)


def test_features_pcen_composes_builds_and_trains(tmp_path, data_dir):
    """``features=pcen`` through the real config: a fast dev run with the PCEN front end,
    and a misspelt PCEN key named before anything runs."""
    from hydra.core.global_hydra import GlobalHydra

    from sed_lightning.train import train
    from sed_lightning.training.build import build_module
    from tests.conftest import compose_train, finalize

    cfg = finalize(compose_train(["features=pcen", "debug=fdr"]), tmp_path / "run", data_dir)
    assert cfg.features.time_constant == 0.4 and cfg.features.hop_length == 256
    assert isinstance(build_module(cfg).frontend, PCENFrontend)
    metrics = train(cfg)
    assert np.isfinite(metrics["train/loss"]) and "test/event_f1" in metrics
    GlobalHydra.instance().clear()
