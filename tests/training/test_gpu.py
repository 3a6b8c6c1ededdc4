"""GPU runs: skipped cleanly on machines without CUDA (CI has none)."""

import pytest
import torch

from sed_lightning.train import train
from tests.conftest import compose_train, finalize

requires_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@requires_gpu
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed", "32"])
def test_gpu_fast_dev_run(tmp_path, data_dir, precision):
    cfg = finalize(
        compose_train(
            ["trainer=gpu", f"trainer.precision={precision}", "debug=fdr", "data.pin_memory=true"]
        ),
        tmp_path / "run",
        data_dir,
    )
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert "test/event_f1" in metrics


@requires_gpu
def test_gpu_and_cpu_models_agree(tmp_path, data_dir):
    from sed_lightning.training.build import build_module

    cfg = finalize(compose_train([]), tmp_path / "run", data_dir)
    module = build_module(cfg).eval()
    audio = torch.randn(2, 48000)
    with torch.no_grad():
        cpu = module(audio).strong
        gpu = module.cuda()(audio.cuda()).strong.cpu()
    torch.testing.assert_close(cpu, gpu, atol=1e-4, rtol=1e-3)


@pytest.mark.slow  # torch.compile's first compilation takes minutes on 2 CPU cores
def test_compiled_model_keeps_checkpoint_keys(tmp_path, data_dir):
    from sed_lightning.training.build import build_module

    plain = build_module(finalize(compose_train([]), tmp_path / "a", data_dir))
    compiled = build_module(finalize(compose_train(["compile=true"]), tmp_path / "b", data_dir))
    assert plain.state_dict().keys() == compiled.state_dict().keys()
    compiled(torch.randn(2, 48000)).strong.sum().backward()


@requires_gpu
def test_gpu_run_saves_validation_scores_after_the_test(tmp_path, data_dir):
    """Lightning moves the module to the CPU when ``test`` ends; ``train``'s validation
    scoring step (``save_val_scores``) runs it on the GPU again and leaves it where it was."""
    from sed_lightning.evaluation.scores import read_scores

    cfg = finalize(
        compose_train(["trainer=gpu", "trainer.precision=bf16-mixed", "trainer.max_epochs=1"]),
        tmp_path / "run",
        data_dir,
    )
    train(cfg)
    assert len(read_scores(tmp_path / "run" / "val_scores")) == 4  # every validation clip
    assert (tmp_path / "run" / "val_reference.tsv").is_file()
