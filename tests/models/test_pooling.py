import pytest
import torch

from sed_lightning.models.pooling import AttentionPooling, MeanPooling, ThresholdPooling


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attention_with_equal_logits_equals_mean(seed):
    g = torch.Generator().manual_seed(seed)
    strong = torch.rand(3, 5, 40, generator=g)
    pool = AttentionPooling(in_features=8, n_classes=5)
    with torch.no_grad():
        pool.attention.weight.zero_()  # every frame gets the same logit (the bias)
        pool.attention.bias.normal_(generator=g)
    emb = torch.randn(3, 40, 8, generator=g)
    torch.testing.assert_close(pool(strong, emb), MeanPooling()(strong, emb))


def test_attention_follows_the_weights():
    strong = torch.tensor([[[0.1, 0.9, 0.3]]])
    pool = AttentionPooling(in_features=1, n_classes=1)
    with torch.no_grad():
        pool.attention.weight.fill_(1.0)
        pool.attention.bias.zero_()
    emb = torch.tensor([[[0.0], [50.0], [0.0]]])  # all attention on frame 1
    assert pool(strong, emb).item() == pytest.approx(0.9, abs=1e-6)


def test_threshold_pooling_known_sequence():
    # runs above 0.5: frames 2-4 (0.6, 0.8, 1.0) and frame 7 (0.7)
    seq = torch.tensor([0.1, 0.2, 0.6, 0.8, 1.0, 0.3, 0.4, 0.7, 0.2])
    strong = seq.view(1, 1, -1)
    emb = torch.zeros(1, 9, 2)
    mean = ThresholdPooling(threshold=0.5, statistic="mean")(strong, emb)
    assert mean.item() == pytest.approx((0.6 + 0.8 + 1.0 + 0.7) / 4)
    median = ThresholdPooling(threshold=0.5, statistic="median")(strong, emb)
    assert median.item() == pytest.approx(0.7)  # torch's lower median of [0.6, 0.7, 0.8, 1.0]
    long_runs = ThresholdPooling(threshold=0.5, statistic="mean", min_frames=2)(strong, emb)
    assert long_runs.item() == pytest.approx((0.6 + 0.8 + 1.0) / 3)  # the 1-frame run drops


def test_threshold_pooling_without_confident_frames_falls_back_to_max():
    strong = torch.tensor([[[0.1, 0.4, 0.2], [0.9, 0.95, 0.1]]])
    out = ThresholdPooling(threshold=0.5)(strong, torch.zeros(1, 3, 2))
    torch.testing.assert_close(out, torch.tensor([[0.4, 0.925]]))


def test_threshold_pooling_passes_gradients():
    strong = torch.tensor([[[0.2, 0.7, 0.9]]], requires_grad=True)
    ThresholdPooling(threshold=0.5)(strong, torch.zeros(1, 3, 1)).sum().backward()
    torch.testing.assert_close(strong.grad, torch.tensor([[[0.0, 0.5, 0.5]]]))


@pytest.mark.parametrize("pool", [MeanPooling(), ThresholdPooling(), AttentionPooling(8, 4)])
def test_pooling_shape_and_range(pool):
    out = pool(torch.rand(2, 4, 30), torch.randn(2, 30, 8))
    assert out.shape == (2, 4)
    assert ((out >= 0) & (out <= 1)).all()
