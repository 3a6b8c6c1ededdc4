"""The pretrained EfficientAT trunk: known-answer logits, strict loading with one-line
errors, the ``file://`` fetch with its checksum, and the fine-tuning controls."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import soundfile as sf
import soxr
import torch

from sed_lightning.features.efficientat import EfficientATFrontend
from sed_lightning.models.efficientat import EfficientATCNN
from sed_lightning.models.mobilenet import MobileNetV3
from sed_lightning.models.pooling import MeanPooling
from sed_lightning.models.sed import SEDModel
from sed_lightning.models.weights import WeightsError, resolve_weights, sha256_of
from sed_lightning.training.finetune import make_optimizer, set_epoch
from tests.data.conftest import find_shared_dir

WEIGHTS = Path("pretrained") / "efficientat_mn04_as"


@pytest.fixture(scope="module")
def pretrained_dir() -> Path:
    shared = find_shared_dir()
    if shared is None or not (shared / WEIGHTS / "mn04_as_mAP_432.pt").is_file():
        pytest.skip("shared EfficientAT weights not found (set SED_SHARED_DIR)")
    return shared / WEIGHTS


@pytest.fixture
def small_weights(tmp_path) -> Path:
    """A weights file of the right layout (random values), as the release would be."""
    torch.manual_seed(0)
    path = tmp_path / "mn04.pt"
    torch.save(MobileNetV3(width_mult=0.4).state_dict(), path)
    return path


def test_known_answer_logits(pretrained_dir):
    reference = json.loads((pretrained_dir / "reference_logits.json").read_text())
    net = MobileNetV3(width_mult=0.4).eval()
    cnn = EfficientATCNN(weights=str(pretrained_dir / "mn04_as_mAP_432.pt"), time_stride=32)
    cnn.load_pretrained()
    net.features.load_state_dict(cnn.features.state_dict())
    full = torch.load(pretrained_dir / "mn04_as_mAP_432.pt", weights_only=True)
    net.classifier.load_state_dict(
        {k[11:]: v for k, v in full.items() if k.startswith("classifier")}
    )
    frontend = EfficientATFrontend()
    for rel, answer in reference.items():
        audio, rate = sf.read(pretrained_dir.parents[1] / "data" / rel, dtype="float32")
        audio = soxr.resample(audio if audio.ndim == 1 else audio.mean(1), rate, 32000)
        assert len(audio) == answer["samples_32k"]
        with torch.no_grad():
            mel = frontend(torch.from_numpy(audio)[None])
            logits = net(mel[:, None])[0]
        assert list(mel.shape[1:]) == answer["mel_shape"]
        assert float(mel.mean()) == pytest.approx(answer["mel_mean"], abs=1e-4)
        for top in answer["top5"]:
            assert float(logits[top["index"]]) == pytest.approx(top["logit"], abs=1e-3)
        assert logits.topk(5).indices.tolist() == [t["index"] for t in answer["top5"]]


def test_the_pretrained_file_is_checked_by_sha256(pretrained_dir):
    path = pretrained_dir / "mn04_as_mAP_432.pt"
    assert resolve_weights(path, sha256_of(path)) == path
    with pytest.raises(WeightsError, match="sha256 .* differs"):
        resolve_weights(path, "0" * 64)


def test_truncated_file_is_one_line_naming_it(small_weights, tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(small_weights.read_bytes()[:50_000])
    with pytest.raises(WeightsError) as err:
        EfficientATCNN(weights=str(cut)).load_pretrained()
    assert str(cut) in str(err.value) and "\n" not in str(err.value)


def test_a_tensor_that_does_not_fit_is_named(small_weights, tmp_path):
    state = torch.load(small_weights, weights_only=True)
    state["features.4.block.1.0.weight"] = torch.zeros(32, 1, 3, 3)
    wrong = tmp_path / "wrong.pt"
    torch.save(state, wrong)
    with pytest.raises(WeightsError) as err:
        EfficientATCNN(weights=str(wrong)).load_pretrained()
    message = str(err.value)
    assert message.startswith(str(wrong)) and "features.4.block.1.0.weight" in message
    assert "\n" not in message
    del state["features.4.block.1.0.weight"]
    torch.save(state, wrong)
    with pytest.raises(WeightsError, match=r"features\.4\.block\.1\.0\.weight is missing"):
        EfficientATCNN(weights=str(wrong)).load_pretrained()


def test_missing_file_is_one_line():
    with pytest.raises(WeightsError, match="no such pretrained weights file"):
        EfficientATCNN(weights="/nonexistent/mn04.pt").load_pretrained()


def test_file_url_is_fetched_once_into_the_cache_and_checked(small_weights, tmp_path):
    url = small_weights.as_uri()
    sha = sha256_of(small_weights)
    cache = tmp_path / "cache"
    cnn = EfficientATCNN(weights=url, sha256=sha, cache_dir=str(cache))
    cnn.load_pretrained()
    cached = cache / small_weights.name
    assert cached.is_file() and sha256_of(cached) == sha
    expected = torch.load(small_weights, weights_only=True)
    assert torch.equal(cnn.features[3].block[0][0].weight, expected["features.3.block.0.0.weight"])
    small_weights.unlink()  # the cached copy serves from now on
    EfficientATCNN(weights=url, sha256=sha, cache_dir=str(cache)).load_pretrained()


def test_file_url_with_a_wrong_sha256_is_refused(small_weights, tmp_path):
    with pytest.raises(WeightsError, match="sha256"):
        resolve_weights(small_weights.as_uri(), "f" * 64, tmp_path / "cache")


@pytest.mark.parametrize("seconds", [3.0, 10.0, 2.37])
def test_output_frames_follow_the_front_end_and_time_stride(seconds):
    frontend = EfficientATFrontend()
    n_samples = int(seconds * 32000)
    features = frontend(torch.randn(1, n_samples))
    for stride in (4, 8, 32):
        out = EfficientATCNN(time_stride=stride).eval()(features)
        assert out.shape == (1, frontend.n_frames(n_samples) // stride, 384)


def make_model(**cnn) -> SEDModel:
    """The trunk, a linear "encoder" (``nn.Linear`` has ``out_features``), mean pooling."""
    encoder = partial(torch.nn.Linear, out_features=16)
    return SEDModel(3, 128, partial(EfficientATCNN, **cnn), encoder, MeanPooling)


def test_frozen_blocks_unchanged_after_a_step_and_the_trunk_rate_applied():
    torch.manual_seed(0)
    model = make_model(freeze_blocks=5, lr_scale=0.1, layer_decay=0.5, unfreeze_epoch=2)
    model.train()
    optimizer = make_optimizer(partial(torch.optim.Adam, lr=1e-2), model)
    trunk = model.cnn.features
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates[id(model.head.weight)] == pytest.approx(1e-2)
    assert rates[id(trunk[16][0].weight)] == pytest.approx(1e-3)  # the last block: lr_scale
    assert rates[id(trunk[15].block[0][0].weight)] == pytest.approx(5e-4)  # one below: x0.5
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    features = torch.randn(2, 128, 200)
    loss = model(features).strong.mean()
    loss.backward()
    optimizer.step()
    after = trunk.state_dict()
    frozen = [k for k in before if int(k.split(".")[0]) < 5]
    trained = [k for k in before if int(k.split(".")[0]) >= 5 and k.endswith("weight")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # BN stats too
    assert all(not p.requires_grad for p in trunk[:5].parameters())
    assert not any(trunk[i].training for i in range(5)) and trunk[5].training
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    set_epoch(model, 2)  # unfreeze_epoch: every block trains again
    assert all(p.requires_grad for p in trunk.parameters()) and trunk[0].training


def test_without_factors_the_optimizer_is_built_as_before():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    optimizer = make_optimizer(partial(torch.optim.SGD, lr=0.1), model)
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["lr"] == 0.1
    assert sum(p.numel() for p in optimizer.param_groups[0]["params"]) == 9


def test_a_fine_branch_sets_the_frame_rate_and_joins_the_interpolated_trunk():
    from sed_lightning.models.cnn import CNN

    branch = partial(CNN, channels=[4, 8], pooling=[[2, 4], [2, 4]])
    cnn = EfficientATCNN(time_stride=32, fine_branch=branch).eval()
    out = cnn(torch.randn(2, 128, 1000))
    assert cnn.time_pooling == 4 and out.shape == (2, 250, 384 + 8 * 8)
    trunk = cnn.features(torch.randn(1, 1, 128, 1000))
    assert trunk.shape[-1] == 32  # the trunk itself stays at 0.32 s steps
