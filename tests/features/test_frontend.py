from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sed_lightning.features.frontend import LogMelFrontend, mel_filterbank, power_to_db


def test_shape_and_frame_count():
    fe = LogMelFrontend(n_fft=512, hop_length=160, n_mels=40)
    out = fe(torch.randn(3, 16000))
    assert out.shape == (3, 40, fe.n_frames(16000))


def test_features_do_not_depend_on_the_rest_of_the_batch():
    g = torch.Generator().manual_seed(0)
    quiet, loud = 1e-3 * torch.randn(1, 16000, generator=g), 10 * torch.randn(1, 16000, generator=g)
    fe = LogMelFrontend()
    torch.testing.assert_close(fe(torch.cat([quiet, loud]))[0], fe(quiet)[0])


def test_per_frequency_normalization():
    out = LogMelFrontend(n_mels=32)(torch.randn(2, 32000))
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 32), atol=1e-4, rtol=0)
    assert out.std(-1).mean().item() == pytest.approx(1.0, abs=1e-3)


def test_gain_invariance():
    x = torch.randn(1, 16000)
    fe = LogMelFrontend()
    torch.testing.assert_close(fe(x), fe(7.0 * x), atol=1e-3, rtol=1e-3)


# ------------------------------------------- continuity with the torchaudio-era front end
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "torchaudio_era"
SECOND_FRONTEND = dict(n_fft=512, hop_length=160, n_mels=40, f_min=50.0, f_max=7000.0)


@pytest.mark.parametrize(
    ("name", "settings"), [("default", {}), ("second", SECOND_FRONTEND)], ids=["default", "second"]
)
def test_features_equal_the_recorded_torchaudio_features(name, settings):
    """tests/fixtures/torchaudio_era/record.py recorded these with torchaudio's
    MelSpectrogram + AmplitudeToDB (torch 2.11.0, torchaudio 2.11.0)."""
    clip, rate = sf.read(FIXTURES / "clip.wav", dtype="float32")
    recorded = torch.from_numpy(np.load(FIXTURES / "features.npz")[name])
    with torch.no_grad():
        ours = LogMelFrontend(sample_rate=rate, **settings)(torch.from_numpy(clip)[None])[0]
    assert ours.shape == recorded.shape
    assert (ours - recorded).abs().max().item() <= 1e-4


@pytest.mark.parametrize(
    ("n_fft", "n_mels", "f_min", "f_max"), [(1024, 64, 0.0, None), (512, 40, 50.0, 7000.0)]
)
def test_mel_filterbank_matches_librosa_htk(n_fft, n_mels, f_min, f_max):
    librosa = pytest.importorskip("librosa")
    reference = librosa.filters.mel(
        sr=16000, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=True, norm=None
    )  # (n_mels, n_bins), computed in float64
    ours = mel_filterbank(16000, n_fft, n_mels, f_min, f_max)
    np.testing.assert_allclose(ours.T.numpy(), reference, atol=1e-5)


def test_mel_filterbank_rejects_band_edges_outside_nyquist():
    with pytest.raises(ValueError, match="f_max=9000"):
        mel_filterbank(16000, 512, 40, f_max=9000.0)


def test_power_to_db_floors_each_clip_below_its_own_peak():
    # clip 0: -90 dB is floored to 0 - 80; clip 1: -110 dB is clamped at 1e-10 (-100 dB),
    # within 80 dB of that clip's own peak (-40 dB), so clip 0's peak plays no part.
    power = torch.tensor([[[1.0, 1e-9]], [[1e-4, 1e-11]]])
    expected = torch.tensor([[[0.0, -80.0]], [[-40.0, -100.0]]])
    torch.testing.assert_close(power_to_db(power, top_db=80.0), expected)


def test_window_and_filterbank_are_not_saved():
    assert set(LogMelFrontend().state_dict()) == set()
