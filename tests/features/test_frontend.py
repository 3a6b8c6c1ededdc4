import pytest
import torch

from sed_lightning.features.frontend import LogMelFrontend


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
