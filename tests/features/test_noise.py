"""Noise sources of the training-time augmentation (sed_lightning.features.noise)."""

import pytest
import torch

from sed_lightning.features.noise import coloured_noise, random_crop

SR = 16000


@pytest.mark.parametrize(("beta", "ratio"), [(0.0, 1.0), (1.0, 10.0), (2.0, 100.0)])
def test_coloured_noise_spectrum_falls_as_one_over_f_to_the_beta(beta, ratio):
    torch.manual_seed(0)
    noise = coloured_noise(torch.full((8,), beta), SR, sample_rate=SR)  # 1 Hz bins
    power = torch.fft.rfft(noise).abs().square().mean(0)
    # Mean of 1/f^beta over [100, 200) Hz vs [1000, 2000) Hz: 1, 10, 100 for beta 0, 1, 2.
    measured = power[100:200].mean() / power[1000:2000].mean()
    assert measured.item() == pytest.approx(ratio, rel=0.2)


def test_random_crop_of_a_long_file_is_contiguous_and_a_short_one_tiles():
    torch.manual_seed(0)
    for _ in range(20):
        crop = random_crop(torch.arange(10.0), 4)
        assert torch.equal(crop.diff(), torch.ones(3)) and 0 <= crop[0] <= 6
        tiled = random_crop(torch.arange(3.0), 7)
        assert torch.equal(tiled, (tiled[0] + torch.arange(7.0)) % 3)
