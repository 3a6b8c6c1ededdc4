import pytest
import torch
from hydra.utils import instantiate

from sed_lightning.features.frontend import LogMelFrontend
from tests.conftest import compose_train


@pytest.mark.parametrize("model", ["conformer", "conformer_dcase2020", "crnn"])
@pytest.mark.parametrize("pooling", ["mean", "threshold", "attention"])
def test_every_model_and_pooling_builds_and_trains(model, pooling):
    cfg = compose_train([f"model={model}", f"model/pooling={pooling}"], tiny=False)
    frontend = LogMelFrontend(n_mels=64)
    net = instantiate(cfg.model)(n_classes=5, n_mels=64)
    out = net(frontend(torch.randn(2, 16000 * 2)))
    n_frames = frontend.n_frames(32000) // net.time_pooling
    assert out.strong.shape == (2, 5, n_frames)
    assert out.weak.shape == (2, 5)
    assert ((out.strong >= 0) & (out.strong <= 1)).all()
    out.weak.sum().backward()
    assert net.head.weight.grad is not None


def test_dcase2020_preset_matches_the_reference_system():
    cfg = compose_train(["model=conformer_dcase2020"], tiny=False)
    net = instantiate(cfg.model)(n_classes=10, n_mels=64)
    assert len(net.cnn.blocks) == 7
    assert net.time_pooling == 4
    assert len(net.encoder.blocks) == 3
    attn = net.encoder.blocks[0].attn
    assert attn.num_heads == 4 and attn.in_proj.in_features == 144
    assert net.encoder.blocks[0].ffn1.linear1.out_features == 576
    assert net.encoder.blocks[0].conv.depthwise.kernel_size == (7,)
    assert net.encoder.out_features == 144


def test_wide_preset_is_conformer_m_with_wider_last_cnn_blocks():
    wide = compose_train(["model=conformer_m_wide"], tiny=False).model
    base = compose_train(["model=conformer_m"], tiny=False).model
    assert list(wide.cnn.channels) == [16, 32, 64, 128, 128]
    assert list(base.cnn.channels) == [16, 32, 64, 64, 64]
    assert wide.encoder == base.encoder
    nets = [instantiate(m)(n_classes=11, n_mels=64) for m in (wide, base)]
    # 64 mel bands pooled x32 in frequency leave 2 bins per channel
    assert [n.cnn.out_features for n in nets] == [256, 128]
    n_params = [sum(p.numel() for p in n.parameters()) for n in nets]
    assert n_params[0] > n_params[1]
    frontend = LogMelFrontend(n_mels=64)
    feats = frontend(torch.randn(1, 16000))
    assert nets[0](feats).strong.shape == nets[1](feats).strong.shape


def test_large_preset_is_conformer_m_with_a_larger_encoder():
    large = compose_train(["model=conformer_l"], tiny=False).model
    base = compose_train(["model=conformer_m"], tiny=False).model
    assert large.cnn == base.cnn
    assert (large.encoder.d_model, large.encoder.ffn_dim, large.encoder.num_layers) == (192, 384, 4)
    net = instantiate(large)(n_classes=11, n_mels=64)
    assert len(net.encoder.blocks) == 4
    assert net.encoder.blocks[0].attn.in_proj.in_features == 192
    assert net.encoder.blocks[0].ffn1.linear1.out_features == 384
    feats = LogMelFrontend(n_mels=64)(torch.randn(1, 16000))
    out = net(feats)
    assert out.strong.shape[:2] == (1, 11) and out.weak.shape == (1, 11)
