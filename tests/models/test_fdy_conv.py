"""Frequency-dynamic convolution (FDY, Nam et al. 2022) in the CNN blocks."""

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from sed_lightning.features.frontend import LogMelFrontend
from sed_lightning.models.cnn import CNN, ConvBlock, FrequencyDynamicConv2d
from tests.conftest import compose_train


def _conv(**kwargs) -> FrequencyDynamicConv2d:
    torch.manual_seed(0)
    return FrequencyDynamicConv2d(**{"in_channels": 3, "out_channels": 5, **kwargs}).eval()


def test_output_shape_and_parameters():
    conv = _conv(kernel_size=3, n_kernels=4)
    assert conv(torch.randn(2, 3, 16, 11)).shape == (2, 5, 16, 11)
    assert conv.weight.shape == (4 * 5, 3, 3, 3)
    assert conv.kernel(2).shape == (5, 3, 3, 3)
    attn = conv.attention(torch.randn(2, 3, 16, 11))
    assert attn.shape == (2, 4, 16)
    assert torch.allclose(attn.sum(dim=1), torch.ones(2, 16))


def test_one_kernel_is_a_plain_convolution():
    conv = _conv(n_kernels=1, bias=True)
    x = torch.randn(2, 3, 12, 9)
    expected = F.conv2d(x, conv.kernel(0), conv.bias, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)


def test_attention_on_one_kernel_gives_that_kernels_convolution():
    conv = _conv(n_kernels=4, temperature=1.0)
    with torch.no_grad():  # logits: 0 for every kernel but kernel 2, 1e4 for kernel 2
        conv.attention.logits.weight.zero_()
        conv.attention.logits.bias.copy_(torch.tensor([0.0, 0.0, 1e4, 0.0]))
    x = torch.randn(2, 3, 12, 9)
    expected = F.conv2d(x, conv.kernel(2), padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    assert not torch.allclose(conv(x), F.conv2d(x, conv.kernel(1), padding=1), atol=1e-3)


def test_attention_depends_on_frequency():
    conv = _conv(n_kernels=4, temperature=1.0)
    x = torch.zeros(1, 3, 32, 10)
    x[:, :, :8] = 3.0  # energy in the low bins only, silent high bins
    attn = conv.attention(x)[0]  # (K, F)
    low, high = attn[:, 2], attn[:, 28]
    assert (low - high).abs().max() > 1e-2
    # the same input content at every bin gives the same attention at every inner bin
    flat = conv.attention(torch.ones(1, 3, 32, 10))[0]
    assert torch.allclose(flat[:, 1:-1], flat[:, 1:2].expand(-1, 30), atol=1e-6)


def test_gradients_reach_every_kernel_and_the_attention():
    conv = _conv(n_kernels=4).train()
    x = torch.randn(2, 3, 16, 7, requires_grad=True)
    conv(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for k in range(4):
        assert conv.weight.grad[k * 5 : (k + 1) * 5].abs().sum() > 0
    for name, p in conv.attention.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    kwargs = {"n_mels": 32, "channels": [4, 8], "pooling": [[2, 2], [1, 2]], "dropout": 0.0}
    a = CNN(**kwargs, conv="fdy").eval()
    b = CNN(**kwargs, conv="fdy", channels_last=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 32, 20)
    assert torch.allclose(a(x), b(x), atol=1e-5)


def test_cnn_conv_per_block_and_errors():
    cnn = CNN(n_mels=32, channels=[4, 8, 8], pooling=[[1, 2]] * 3, conv=["standard", "fdy", "fdy"])
    kinds = [type(block.block[0]) for block in cnn.blocks]
    assert kinds == [nn.Conv2d, FrequencyDynamicConv2d, FrequencyDynamicConv2d]
    assert all(isinstance(b.block[0], nn.Conv2d) for b in CNN(32, [4], [[1, 2]]).blocks)
    with pytest.raises(ValueError, match="one entry per block"):
        CNN(n_mels=32, channels=[4, 8], pooling=[[1, 2]] * 2, conv=["fdy"])
    with pytest.raises(ValueError, match="conv must be one of"):
        ConvBlock(1, 4, conv="dynamic")


def test_standard_blocks_keep_their_checkpoint_keys():
    """A model without FDY has exactly the tensors it had before the option existed."""
    state = CNN(n_mels=32, channels=[4, 8], pooling=[[1, 2]] * 2).state_dict()
    assert set(state) == {
        f"blocks.{i}.block.{k}"
        for i in range(2)
        for k in (
            "0.weight",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
        )
    }


def test_fdy_preset_builds_trains_and_only_changes_the_cnn():
    cfg = compose_train(["model=conformer_fdy"], tiny=False)
    plain = compose_train(["model=conformer"], tiny=False)
    assert list(cfg.model.cnn.conv) == ["standard", "fdy", "fdy", "fdy", "fdy"]
    cfg.model.cnn.conv = plain.model.cnn.conv
    assert cfg.model == plain.model
    torch.manual_seed(0)
    overrides = ["model=conformer_fdy", "model.cnn.channels=[4,8,8,8,8]"]
    net = instantiate(compose_train(overrides, tiny=False).model)(n_classes=3, n_mels=64)
    frontend = LogMelFrontend(n_mels=64)
    out = net(frontend(torch.randn(2, 16000)))
    assert out.strong.shape == (2, 3, frontend.n_frames(16000) // 4)
    out.strong.mean().backward()
    fdy = net.cnn.blocks[1].block[0]
    assert isinstance(fdy, FrequencyDynamicConv2d) and fdy.n_kernels == 4
    assert fdy.weight.grad.abs().sum() > 0
    assert fdy.attention.logits.weight.grad.abs().sum() > 0
