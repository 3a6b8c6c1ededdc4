"""Training-time augmentation on hand-made batches, plus its Hydra config group."""

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from sed_lightning.data.audio import save_audio
from sed_lightning.data.batch import SEDBatch
from sed_lightning.features.augment import (
    Augmentation,
    Mixup,
    NoiseOverlay,
    SpecAugment,
    TimeShift,
)
from sed_lightning.features.noise import rms
from sed_lightning.train import train
from sed_lightning.training.build import build_module
from tests.conftest import compose_train, finalize

SEEDS = [0, 1, 2, 3]
SR = 16000
FRAME = 64  # samples per label frame in the hand-made batches
N_FRAMES = 16
N_CLASSES = 4


def make_batch(kinds: str, seed: int = 0) -> SEDBatch:
    """``kinds``: one letter per clip, s(trong) / w(eak-only) / u(nlabeled).

    Strong clips use classes 0-1 (weak = max over frames), weak-only clips classes 2-3.
    """
    g = torch.Generator().manual_seed(seed)
    n = len(kinds)
    strong = torch.zeros(n, N_CLASSES, N_FRAMES)
    weak = torch.zeros(n, N_CLASSES)
    for i, kind in enumerate(kinds):
        if kind == "s":
            strong[i, :2] = (torch.rand(2, N_FRAMES, generator=g) < 0.3).float()
            weak[i] = strong[i].amax(-1)
        elif kind == "w":
            weak[i, 2:] = (torch.rand(2, generator=g) < 0.5).float()
    return SEDBatch(
        audio=torch.randn(n, N_FRAMES * FRAME, generator=g),
        weak_labels=weak,
        strong_labels=strong,
        has_weak=torch.tensor([k in "sw" for k in kinds]),
        has_strong=torch.tensor([k == "s" for k in kinds]),
        filenames=[f"clip{i}.wav" for i in range(n)],
    )


def clone(batch: SEDBatch) -> SEDBatch:
    return SEDBatch(
        *(t.clone() for t in (batch.audio, batch.weak_labels, batch.strong_labels)),
        batch.has_weak.clone(),
        batch.has_strong.clone(),
        list(batch.filenames),
    )


def assert_same(a: SEDBatch, b: SEDBatch) -> None:
    for name in ("audio", "weak_labels", "strong_labels", "has_weak", "has_strong"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.filenames == b.filenames


# ----------------------------------------------------------------------------- mixup


@pytest.mark.parametrize("seed", SEEDS)
def test_hard_mixup_keeps_weak_equal_to_max_of_strong(seed):
    torch.manual_seed(seed)
    batch = make_batch("sssswwuu", seed)
    out = Mixup(p=1.0, alpha=0.2, label_mode="hard")(batch)
    strong = out.has_strong
    torch.testing.assert_close(out.weak_labels[strong], out.strong_labels[strong].amax(-1))
    assert set(out.weak_labels.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("seed", SEEDS)
def test_mixup_mixes_only_clips_of_the_same_kind(seed):
    kinds = "sswwwuuu"
    batch = make_batch(kinds, seed)
    # Audio = kind level + a clip offset: a mixture stays inside its kind's range.
    level = torch.tensor([{"s": 0.0, "w": 10.0, "u": 20.0}[k] for k in kinds])
    batch.audio = (level + 0.1 * torch.arange(len(kinds)))[:, None].expand(-1, 32).clone()
    torch.manual_seed(seed)
    out = Mixup(p=1.0, alpha=1.0)(batch)
    for kind in "swu":
        idx = [i for i, k in enumerate(kinds) if k == kind]
        lo, hi = batch.audio[idx].min(), batch.audio[idx].max()
        assert ((out.audio[idx] >= lo - 1e-5) & (out.audio[idx] <= hi + 1e-5)).all(), kind
    assert not torch.equal(out.audio, batch.audio)  # something was mixed
    # Strong clips only carry classes 0-1, weak-only clips 2-3, unlabeled clips nothing.
    assert out.weak_labels[:2, 2:].eq(0).all() and out.weak_labels[2:5, :2].eq(0).all()
    assert out.weak_labels[5:].eq(0).all() and out.strong_labels[2:].eq(0).all()
    assert torch.equal(out.has_weak, batch.has_weak)
    assert torch.equal(out.has_strong, batch.has_strong)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("soft", [[0.25, 0.75], [0.0, 1.0]]), ("hard", [[1.0, 1.0], [0.0, 1.0]])],
)
def test_mix_labels_known_answer(mode, expected):
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mixed = Mixup(label_mode=mode).mix_labels(
        labels, torch.tensor([1, 0]), torch.tensor([0.25, 1.0])
    )
    torch.testing.assert_close(mixed, torch.tensor(expected))


def test_soft_mixup_uses_the_audio_weights_for_the_labels():
    # Two strong clips: audio 1 and 0, so the mixed audio of each clip reads its lam.
    batch = make_batch("ss")
    batch.audio = torch.stack([torch.ones(64), torch.zeros(64)])
    batch.weak_labels = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    for seed in range(20):
        torch.manual_seed(seed)
        out = Mixup(p=1.0, alpha=0.5, label_mode="soft")(batch)
        share_of_clip0 = out.audio[:, 0]
        torch.testing.assert_close(out.weak_labels[:, 0], share_of_clip0)
        torch.testing.assert_close(out.weak_labels[:, 1], 1 - share_of_clip0)


def test_mixup_with_p0_is_identity_and_bad_mode_is_rejected():
    batch = make_batch("sswu")
    assert_same(Mixup(p=0.0)(batch), batch)
    with pytest.raises(ValueError, match="label_mode"):
        Mixup(label_mode="average")


# ------------------------------------------------------------------------ time shift


@pytest.mark.parametrize("seed", SEEDS)
def test_time_shift_moves_audio_and_labels_by_the_same_frames(seed):
    start = torch.tensor([3, 7, 12])  # frame of each clip's burst and label
    batch = make_batch("ssw", seed)
    batch.audio = torch.zeros(3, N_FRAMES * FRAME)
    batch.strong_labels = torch.zeros(3, N_CLASSES, N_FRAMES)
    for i, f in enumerate(start.tolist()):
        batch.audio[i, f * FRAME : (f + 1) * FRAME] = 1.0
        batch.strong_labels[i, 1, f] = 1.0
    shift = TimeShift(p=1.0, max_shift=5 * FRAME / SR, sample_rate=SR)
    assert shift.max_frames(FRAME) == 5
    torch.manual_seed(seed)
    out = shift(batch, frame_samples=FRAME)
    audio_frame = out.audio.view(3, N_FRAMES, FRAME).sum(-1).argmax(-1)
    label_frame = out.strong_labels[:, 1].argmax(-1)
    assert torch.equal(audio_frame, label_frame)
    k = (audio_frame - start + N_FRAMES // 2) % N_FRAMES - N_FRAMES // 2  # signed shift
    assert k.abs().max() <= 5 and k.ne(0).any()
    assert out.audio.view(3, N_FRAMES, FRAME).sum(-1).amax(-1).eq(FRAME).all()  # burst intact
    assert torch.equal(out.weak_labels, batch.weak_labels)


def test_time_shift_with_p0_is_identity():
    batch = make_batch("ssw")
    assert_same(TimeShift(p=0.0)(batch, frame_samples=FRAME), batch)


# --------------------------------------------------------------------- noise overlay


def measured_ebr(clean: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    return 20 * torch.log10(rms(clean) / rms(mixed - clean))


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_overlay_changes_only_weak_only_clips_within_the_ratio(seed):
    batch = make_batch("sswwwu", seed)
    torch.manual_seed(seed)
    out = NoiseOverlay(p=1.0, ebr_db=(5.0, 15.0), sample_rate=SR)(batch)
    assert out.audio.shape == batch.audio.shape
    weak_only = torch.tensor([False, False, True, True, True, False])
    assert torch.equal(out.audio[~weak_only], batch.audio[~weak_only])
    ebr = measured_ebr(batch.audio[weak_only], out.audio[weak_only])
    assert ((ebr > 5.0 - 1e-3) & (ebr < 15.0 + 1e-3)).all(), ebr
    for name in ("weak_labels", "strong_labels", "has_weak", "has_strong"):
        assert torch.equal(getattr(out, name), getattr(batch, name))


def test_noise_overlay_with_p0_is_identity():
    batch = make_batch("wwww")
    assert_same(NoiseOverlay(p=0.0)(batch), batch)


def test_noise_overlay_from_a_folder_tiles_the_recording(tmp_path):
    period = 40  # a 400 Hz tone, 25 whole periods: tiling it is seamless
    tone = 0.3 * np.sin(2 * np.pi * np.arange(25 * period) / period)
    save_audio(tmp_path / "sub" / "tone.wav", tone, SR)
    batch = make_batch("ww")
    overlay = NoiseOverlay(p=1.0, ebr_db=(10.0, 10.0), noise_dir=tmp_path, sample_rate=SR)
    torch.manual_seed(0)
    added = overlay(batch).audio - batch.audio
    torch.testing.assert_close(added[:, period:], added[:, :-period], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        measured_ebr(batch.audio, batch.audio + added), torch.full((2,), 10.0), atol=1e-3, rtol=0
    )
    bank = overlay.noise_bank()
    assert overlay.noise_bank() is bank and len(bank) == 1  # loaded once


def test_noise_overlay_from_an_empty_folder_names_it(tmp_path):
    overlay = NoiseOverlay(p=1.0, noise_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        overlay(make_batch("w"))


# ---------------------------------------------------------------------- SpecAugment


def test_specaugment_with_p0_is_identity():
    x = torch.randn(4, 64, 100)
    assert torch.equal(SpecAugment(p=0.0)(x), x)


@pytest.mark.parametrize("seed", SEEDS)
def test_specaugment_with_p1_masks_whole_columns_and_rows_per_clip(seed):
    torch.manual_seed(seed)
    aug = SpecAugment(p=1.0, time_masks=2, time_mask_param=20, freq_masks=2, freq_mask_param=8)
    out = aug(torch.ones(6, 64, 200))
    zero = out == 0
    columns, rows = zero.all(dim=1), zero.all(dim=2)  # (clip, frame), (clip, bin)
    assert torch.equal(zero, columns[:, None, :] | rows[:, :, None])  # nothing else masked
    assert zero.flatten(1).any(1).all()
    assert (columns.sum(-1) <= 2 * 19).all() and (rows.sum(-1) <= 2 * 7).all()
    assert not (columns == columns[0]).all()  # different masks per clip


def test_specaugment_p_applies_per_clip_and_accepts_a_channel_axis():
    torch.manual_seed(0)
    out = SpecAugment(p=0.5, freq_masks=4, time_masks=4)(torch.ones(64, 1, 64, 100))
    masked = out.eq(0).flatten(1).any(1)
    assert out.shape == (64, 1, 64, 100) and 10 < masked.sum() < 54


# --------------------------------------------------------------------- Augmentation


def full_augmentation(label_mode: str = "hard") -> Augmentation:
    return Augmentation(
        noise=NoiseOverlay(p=1.0, sample_rate=SR),
        shift=TimeShift(p=1.0, max_shift=0.02, sample_rate=SR),
        mixup=Mixup(p=1.0, label_mode=label_mode),
        specaugment=SpecAugment(p=1.0),
    )


def test_all_parts_off_is_identity():
    batch, x = make_batch("swu"), torch.randn(3, 64, 50)
    aug = Augmentation()
    out = aug(batch, frame_samples=FRAME)
    assert out is not batch
    assert_same(out, batch)
    assert torch.equal(aug.features(x), x)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_input_batch_is_never_modified(seed):
    batch = make_batch("sswwuu", seed)
    before = clone(batch)
    torch.manual_seed(seed)
    out = full_augmentation()(batch, frame_samples=FRAME)
    assert_same(batch, before)
    assert not torch.equal(out.audio, batch.audio)
    strong = out.has_strong
    torch.testing.assert_close(out.weak_labels[strong], out.strong_labels[strong].amax(-1))


def test_augmentation_has_no_state():  # checkpoints load with or without augmentation
    assert full_augmentation().state_dict() == {}


# --------------------------------------------------------------------------- configs


def test_augment_none_composes_to_no_augmentation(tmp_path, data_dir):
    assert compose_train().augment is None  # the default
    cfg = finalize(compose_train(["augment=none"]), tmp_path / "run", data_dir)
    assert cfg.augment is None
    assert build_module(cfg).augment is None


def test_augment_default_instantiates_every_part():
    aug = instantiate(compose_train(["augment=all"]).augment)
    assert isinstance(aug.noise, NoiseOverlay) and aug.noise.ebr_db == (0.0, 20.0)
    assert isinstance(aug.shift, TimeShift) and aug.shift.max_frames(256 * 4) == 16
    assert isinstance(aug.mixup, Mixup) and aug.mixup.label_mode == "hard"
    assert isinstance(aug.specaugment, SpecAugment)
    assert [aug.noise.p, aug.shift.p, aug.mixup.p, aug.specaugment.p] == [0.5] * 4


@pytest.mark.parametrize("part", ["noise", "shift", "mixup", "specaugment"])
def test_single_part_configs_switch_on_one_part(part):
    cfg = compose_train([f"augment={part}"])
    default = compose_train(["augment=all"])
    aug = instantiate(cfg.augment)
    on = [name for name in ("noise", "shift", "mixup", "specaugment") if getattr(aug, name)]
    assert on == [part]
    assert cfg.augment[part] == default.augment[part]


def test_one_training_step_with_augment_default(tmp_path, data_dir, monkeypatch):
    calls = {"batch": 0, "features": 0}
    forward, features = Augmentation.forward, Augmentation.features

    def count_forward(self, batch, frame_samples):
        calls["batch"] += 1
        assert frame_samples == 256 * 4
        return forward(self, batch, frame_samples)

    def count_features(self, x):
        calls["features"] += 1
        return features(self, x)

    monkeypatch.setattr(Augmentation, "forward", count_forward)
    monkeypatch.setattr(Augmentation, "features", count_features)
    every_part = [f"augment.{p}.p=1.0" for p in ("noise", "shift", "mixup", "specaugment")]
    cfg = compose_train(["debug=fdr", "augment=all", *every_part, "test=false"])
    metrics = train(finalize(cfg, tmp_path / "run", data_dir))
    assert math.isfinite(metrics["train/loss"])
    assert calls == {"batch": 1, "features": 1}  # one training batch; validation untouched
