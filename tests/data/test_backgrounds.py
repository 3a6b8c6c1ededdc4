"""Recorded backgrounds: per-file splits, any format, random pieces, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from sed_lightning.data.backgrounds import BackgroundBank, BackgroundBankError
from sed_lightning.data.procedural import BACKGROUND_RMS
from sed_lightning.data.set_spec import SetSpec, SoundscapeConfig
from sed_lightning.data.sources import EventBank
from sed_lightning.data.synthesis import synthesize_dataset
from tests.data.conftest import find_shared_dir

SR = 16000


def _folder(root: Path) -> Path:
    """Six files in three formats; two per split, one of them shorter than a clip."""
    rng = np.random.default_rng(0)
    rows = []
    layout = [
        ("train", 44100, 2, 5.0),
        ("train", 8000, 1, 1.5),
        ("validation", 22050, 1, 4.0),
        ("validation", 16000, 3, 2.0),
        ("test", 48000, 2, 4.0),
        ("test", 16000, 1, 3.0),
    ]
    for i, (split, sr, channels, seconds) in enumerate(layout):
        name = f"{split}_{i}.{'flac' if i % 2 else 'wav'}"
        sf.write(root / name, 0.1 * rng.standard_normal((int(sr * seconds), channels)), sr)
        rows.append((name, split))
    pd.DataFrame(rows, columns=["filename", "split"]).to_csv(root / "metadata.csv", index=False)
    return root


def test_pieces_any_format_clip_length_rms_normalised(tmp_path):
    bank = BackgroundBank(_folder(tmp_path), sample_rate=SR)
    assert bank.files("train") == ["train_0.wav", "train_1.flac"]
    rng = np.random.default_rng(1)
    for _ in range(20):
        name, offset = bank.draw("train", 2 * SR, rng)
        piece = bank.piece(name, offset, 2 * SR)
        assert piece.shape == (2 * SR,) and piece.dtype == np.float32
        np.testing.assert_allclose(
            np.sqrt(np.mean(piece.astype(np.float64) ** 2)), BACKGROUND_RMS, rtol=1e-3
        )
    # the 1.5 s file is looped to fill a 2 s piece, without a silent gap
    looped = bank.piece("train_1.flac", 0, 2 * SR)
    frames = np.sqrt(np.mean(looped.reshape(-1, 400).astype(np.float64) ** 2, axis=1))
    assert frames.min() > 0.3 * BACKGROUND_RMS


def test_each_split_uses_only_its_own_files(tmp_path, tiny_bank_dir):
    """No recording is shared between training, validation and test soundscapes."""
    (tmp_path / "bg").mkdir()
    backgrounds = BackgroundBank(_folder(tmp_path / "bg"), sample_rate=SR)
    cfg = SoundscapeConfig(clip_duration=2.0, recorded_share=1.0)
    specs = [
        SetSpec("train_strong", "strong", "train", 12, 1),
        SetSpec("validation", "strong", "validation", 12, 2),
        SetSpec("test", "strong", "test", 12, 3),
    ]
    paths = synthesize_dataset(
        tmp_path / "sets", EventBank(tiny_bank_dir), specs, cfg, backgrounds=backgrounds
    )
    used = {}
    for name, folder in paths.items():
        recipes = pd.read_json(folder / "recipes.jsonl", lines=True)
        used[name] = {b["file"] for b in recipes["background"]}
        assert all(b["kind"] == "recorded" for b in recipes["background"])
    assert used["train_strong"] <= set(backgrounds.files("train"))
    assert used["validation"] <= set(backgrounds.files("validation"))
    assert used["test"] <= set(backgrounds.files("test"))
    assert all(used.values())


def test_share_mixes_recorded_and_generated(tmp_path, tiny_bank_dir):
    (tmp_path / "bg").mkdir()
    backgrounds = BackgroundBank(_folder(tmp_path / "bg"), sample_rate=SR)
    cfg = SoundscapeConfig(clip_duration=1.0, recorded_share=0.5, max_events=1)
    spec = SetSpec("train_strong", "strong", "train", 40, 1)
    paths = synthesize_dataset(
        tmp_path / "sets", EventBank(tiny_bank_dir), [spec], cfg, backgrounds=backgrounds
    )
    kinds = pd.read_json(paths["train_strong"] / "recipes.jsonl", lines=True)["background"]
    share = np.mean([b["kind"] == "recorded" for b in kinds])
    assert 0.3 < share < 0.7


def test_bad_metadata_names_file_and_row(tmp_path):
    _folder(tmp_path)
    (tmp_path / "metadata.csv").write_text(
        "filename,split\ntrain_0.wav,train\nmissing.wav,train\ntest_4.wav,dev\ntrain_0.wav,test\n"
    )
    with pytest.raises(BackgroundBankError) as err:
        BackgroundBank(tmp_path)
    message = str(err.value)
    assert "metadata.csv:3" in message and "missing.wav" in message
    assert "metadata.csv:4" in message and "'dev'" in message
    assert "metadata.csv:5" in message and "twice" in message
    with pytest.raises(BackgroundBankError, match="no metadata.csv"):
        BackgroundBank(tmp_path / "nowhere")


def test_recorded_share_needs_a_folder(tiny_bank_dir):
    from sed_lightning.data.builders import SoundscapeBuilder

    with pytest.raises(ValueError, match="backgrounds_dir"):
        SoundscapeBuilder("out", ["a"], {}, {"recorded_share": 0.5})


def test_shared_recorded_backgrounds_split_is_disjoint():
    shared = find_shared_dir()
    root = shared / "data" / "recorded_backgrounds" if shared else None
    if root is None or not (root / "metadata.csv").is_file():
        pytest.skip("shared recorded_backgrounds folder not found")
    bank = BackgroundBank(root, sample_rate=SR)
    splits = [set(bank.files(s)) for s in ("train", "validation", "test")]
    assert all(splits) and not (
        splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2]
    )
