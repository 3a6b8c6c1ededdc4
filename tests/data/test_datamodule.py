"""The configured data module on tiny generated soundscapes."""

import torch

from sed_lightning.training.build import build_datamodule, build_module
from tests.conftest import compose_train, finalize


def _datamodule(tmp_path, data_dir, overrides=()):
    cfg = finalize(compose_train(list(overrides)), tmp_path / "run", data_dir)
    module = build_module(cfg)
    dm = build_datamodule(cfg, module)
    dm.prepare_data()
    dm.setup("fit")
    return dm, module


def test_training_batches_mix_kinds_as_configured(tmp_path, data_dir):
    dm, module = _datamodule(
        tmp_path,
        data_dir,
        ["data.batch_sizes.strong=2", "data.batch_sizes.weak=3", "data.batch_sizes.unlabeled=1"],
    )
    batches = list(dm.train_dataloader())
    assert len(batches) == 4  # the kind needing most batches sets the epoch: 4 unlabeled, 1 each
    for batch in batches:
        assert batch.audio.shape == (6, 3 * 16000)
        assert batch.has_strong.sum() == 2
        assert (batch.has_weak & ~batch.has_strong).sum() == 3
        assert batch.is_unlabeled.sum() == 1
        # only strong clips carry frame labels; unlabeled clips carry nothing
        assert batch.strong_labels[~batch.has_strong].abs().sum() == 0
        assert batch.weak_labels[batch.is_unlabeled].abs().sum() == 0
        # strong clips' tags are exactly the classes active in their frames
        strong_tags = batch.strong_labels[batch.has_strong].amax(dim=-1)
        torch.testing.assert_close(strong_tags, batch.weak_labels[batch.has_strong])
        out = module(batch.audio)
        assert out.strong.shape == batch.strong_labels.shape


def test_validation_covers_every_clip_once(tmp_path, data_dir):
    dm, _ = _datamodule(tmp_path, data_dir)
    names = [n for b in dm.val_dataloader() for n in b.filenames]
    assert sorted(names) == sorted(dm.dataset("validation").filenames)
    assert len(names) == len(set(names)) == 4
