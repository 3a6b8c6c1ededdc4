"""Soundscapes made on the fly: deterministic, new every epoch, re-rendered from recipes;
and the DCASE 2016 mixing rule (EBR over the event's span)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sed_lightning.data.audio import load_audio
from sed_lightning.data.builders import SoundscapeBuilder
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.data.online import OnlineSoundscapes
from sed_lightning.data.procedural import generate_ambience, generate_background, generate_textures
from sed_lightning.data.recipes import ClipMaker
from sed_lightning.data.set_spec import SoundscapeConfig
from sed_lightning.data.sources import EventBank
from sed_lightning.tools import main
from tests.data.conftest import TINY_CLASSES

SR = 16000


def _builder(tmp_path, bank_dir, backgrounds_dir=None, **soundscape) -> SoundscapeBuilder:
    sets = {
        "train_strong": {"kind": "strong", "source_split": "train", "n_clips": 6, "seed": 1},
        "validation": {"kind": "strong", "source_split": "validation", "n_clips": 2, "seed": 2},
    }
    return SoundscapeBuilder(
        str(tmp_path / "sets"),
        TINY_CLASSES,
        sets,
        {"clip_duration": 2.0, "max_events": 2, **soundscape},
        events_dir=str(bank_dir),
        backgrounds_dir=backgrounds_dir,
        online=True,
    )


def _encoder() -> LabelEncoder:
    return LabelEncoder(list(TINY_CLASSES), frame_hop=0.04, n_frames=50)


def test_online_sets_are_new_each_epoch_and_deterministic(tmp_path, tiny_bank_dir):
    variation = {"pitch_p": 0.5, "stretch_p": 0.5, "eq_p": 0.5, "reverb_p": 0.5, "gain_p": 0.5}
    builder = _builder(tmp_path, tiny_bank_dir, variation=variation)
    sources = builder.build()
    assert set(sources) == {"validation"}  # only the fixed set is written
    assert builder.is_online("train_strong") and not builder.is_online("validation")
    ds = OnlineSoundscapes.from_builder(
        builder, "train_strong", _encoder(), recipe_dir=str(tmp_path / "rec")
    )
    first = [ds[i]["audio"] for i in range(len(ds))]
    again = OnlineSoundscapes.from_builder(builder, "train_strong", _encoder())
    for i in range(len(ds)):
        np.testing.assert_array_equal(first[i], again[i]["audio"])  # (seed, epoch, index)
    ds.set_epoch(1)
    second = ds[0]
    assert second["filename"] == "train_strong_e001_00000.wav"
    assert not np.array_equal(first[0], second["audio"])
    assert second["strong_labels"].shape == (3, 50)
    np.testing.assert_array_equal(second["weak_labels"], second["strong_labels"].max(axis=1))
    lines = [
        json.loads(x)
        for f in sorted((tmp_path / "rec" / "train_strong").glob("*.jsonl"))
        for x in f.read_text().splitlines()
    ]
    assert len(lines) == 7 and {x["epoch"] for x in lines} == {0, 1}


def test_a_recipe_re_renders_its_clip_bit_for_bit(tmp_path, tiny_bank_dir):
    variation = {"pitch_p": 1, "stretch_p": 1, "eq_p": 1, "reverb_p": 1, "gain_p": 1}
    builder = _builder(
        tmp_path, tiny_bank_dir, variation=variation, procedural_background="ambience"
    )
    ds = OnlineSoundscapes.from_builder(builder, "train_strong", _encoder())
    ds.set_epoch(3)
    item = ds[4]
    recipe = ds.recipe(4, epoch=3)
    recipe = json.loads(json.dumps(recipe))  # as stored: through JSON
    fresh = _builder(
        tmp_path, tiny_bank_dir, variation=variation, procedural_background="ambience"
    ).maker("train_strong")
    audio, _ = fresh.render(recipe)
    np.testing.assert_array_equal(audio, item["audio"])
    assert recipe["events"] and all("variation" in e for e in recipe["events"])


def test_background_variation_re_renders_bit_for_bit_and_leaves_the_events(tmp_path, tiny_bank_dir):
    from tests.data.test_backgrounds import _folder

    (tmp_path / "bg").mkdir()
    backgrounds = str(_folder(tmp_path / "bg"))
    varied = {"rate_p": 1, "eq_p": 1, "reverse_p": 1, "mix_p": 1}

    def builder(**soundscape):
        return _builder(tmp_path, tiny_bank_dir, backgrounds, recorded_share=0.5, **soundscape)

    ds = OnlineSoundscapes.from_builder(
        builder(background_variation=varied), "train_strong", _encoder()
    )
    plain = OnlineSoundscapes.from_builder(builder(), "train_strong", _encoder())
    kinds = set()
    for i in range(len(ds)):
        recipe = json.loads(json.dumps(ds.recipe(i, epoch=0)))
        audio, _ = builder(background_variation=varied).maker("train_strong").render(recipe)
        np.testing.assert_array_equal(audio, ds[i]["audio"])  # bit for bit, from JSON
        before = plain.recipe(i, epoch=0)
        assert "variation" not in before["background"]  # off: recipes as before
        assert recipe["events"] == json.loads(json.dumps(before["events"]))  # same events
        variation = recipe["background"].pop("variation")
        assert recipe["background"] == before["background"]  # same file and offset
        kinds.add(before["background"]["kind"])
        assert ("mix_db" in variation) == (before["background"]["kind"] == "recorded")
        assert not np.array_equal(audio, plain[i]["audio"])
    assert kinds == {"recorded", "procedural"}


def test_rerender_command_from_a_run_folder(tmp_path, tiny_bank_dir):
    builder = _builder(tmp_path, tiny_bank_dir, variation={"eq_p": 1.0})
    run = tmp_path / "run"
    (run / "recipes").mkdir(parents=True)
    (run / "recipes" / "builder.json").write_text(json.dumps(builder.settings))
    ds = OnlineSoundscapes.from_builder(builder, "train_strong", _encoder())
    ds.set_epoch(2)
    expected = ds[5]["audio"]
    main(["rerender", str(run), "train_strong", "2", "5", str(tmp_path / "clip.wav")])
    audio = load_audio(tmp_path / "clip.wav", SR)
    np.testing.assert_allclose(audio, expected, atol=1 / 32768)  # 16-bit file
    assert json.loads((tmp_path / "clip.json").read_text())["entropy"] == [1, 2, 5]
    with pytest.raises(SystemExit, match=r"^sed-tools rerender: no .*builder\.json: not a run"):
        main(["rerender", str(tmp_path), "train_strong", "2", "5", str(tmp_path / "x.wav")])
    with pytest.raises(SystemExit, match="set 'validation' of .* is not made online"):
        main(["rerender", str(run), "validation", "0", "0", str(tmp_path / "y.wav")])


@pytest.mark.parametrize(
    "background_fn", [generate_background, generate_ambience, generate_textures]
)
@pytest.mark.parametrize("ebr", [-6.0, 0.0, 6.0])
def test_events_are_mixed_at_the_requested_ebr(tiny_bank_dir, background_fn, ebr):
    """EBR as in DCASE 2016: event energy against the background's over the event's span,
    measured back from the mixture within 0.5 dB (whole-clip peak scaling keeps ratios)."""
    bank = EventBank(tiny_bank_dir)
    cfg = SoundscapeConfig(clip_duration=2.0, min_events=1, max_events=1, ebr_levels=(ebr,))
    maker = ClipMaker(bank.sources("train"), bank, cfg, background_fn)
    for k in range(6):
        recipe = maker.draw([7, k])
        mixture, rows = maker.render(recipe)
        background = maker.background(recipe).astype(np.float64)
        onset, offset, *_rest, measured_request = rows[0]
        start, stop = round(onset * SR), round(offset * SR)
        outside = np.ones(len(mixture), bool)
        outside[start:stop] = False
        scale = float(
            mixture[outside] @ background[outside] / (background[outside] @ background[outside])
        )
        event = mixture[start:stop] / scale - background[start:stop]
        got = 20 * np.log10(
            np.sqrt(np.mean(event**2)) / np.sqrt(np.mean(background[start:stop] ** 2))
        )
        assert abs(got - ebr) < 0.5, (k, got)
        assert measured_request == ebr


def test_ebr_levels_one_level_per_clip(tiny_bank_dir):
    bank = EventBank(tiny_bank_dir)
    cfg = SoundscapeConfig(clip_duration=3.0, min_events=2, max_events=3, ebr_levels=(-6, 0, 6))
    maker = ClipMaker(bank.sources("train"), bank, cfg, generate_background)
    levels = []
    for k in range(30):
        ebrs = {e["ebr_db"] for e in maker.draw([1, k])["events"]}
        assert len(ebrs) == 1
        levels.append(ebrs.pop())
    assert set(levels) == {-6.0, 0.0, 6.0}


def test_datamodule_with_online_training_sets(tmp_path, data_dir):
    from sed_lightning.training.build import build_datamodule, build_module
    from tests.conftest import compose_train, finalize

    cfg = finalize(
        compose_train(
            ["data.synthesis.online=true", "data.synthesis.out_dir=" + str(tmp_path / "s")]
        ),
        tmp_path / "run",
        data_dir,
    )
    module = build_module(cfg)
    dm = build_datamodule(cfg, module)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(0)
    epoch0 = [b.audio.clone() for b in loader]
    loader.batch_sampler.set_epoch(1)
    epoch1 = [b.audio.clone() for b in loader]
    assert len(epoch0) == len(epoch1) > 0
    assert not any(
        a.shape == b.shape and (a == b).all() for a, b in zip(epoch0, epoch1, strict=True)
    )
    assert (Path(cfg.paths.output_dir) / "recipes" / "builder.json").is_file()
    assert not (tmp_path / "s" / "train_strong").exists()  # never written
    assert (tmp_path / "s" / "validation" / "manifest.json").is_file()


def test_a_set_can_change_the_soundscape_settings(tmp_path, tiny_bank_dir):
    """E.g. the DCASE 2016 protocol for evaluation sets while training draws a range."""
    sets = {
        "train_strong": {"kind": "strong", "source_split": "train", "n_clips": 8, "seed": 1},
        "test": {
            "kind": "strong",
            "source_split": "test",
            "n_clips": 8,
            "seed": 2,
            "soundscape": {"ebr_levels": [-6, 0, 6], "variation": {"eq_p": 0.0}},
        },
    }
    builder = SoundscapeBuilder(
        str(tmp_path / "sets"),
        TINY_CLASSES,
        sets,
        {"clip_duration": 2.0, "ebr_db": [-10, 10], "variation": {"eq_p": 1.0}},
        events_dir=str(tiny_bank_dir),
    )
    builder.build()
    import pandas as pd

    test = pd.read_json(tmp_path / "sets" / "test" / "recipes.jsonl", lines=True)
    train = pd.read_json(tmp_path / "sets" / "train_strong" / "recipes.jsonl", lines=True)
    test_ebrs = {e["ebr_db"] for events in test["events"] for e in events}
    assert test_ebrs <= {-6.0, 0.0, 6.0}
    assert all(e["variation"] == {} for events in test["events"] for e in events)
    train_ebrs = {e["ebr_db"] for events in train["events"] for e in events}
    assert not train_ebrs <= {-6.0, 0.0, 6.0}
    assert all("eq_gains_db" in e["variation"] for events in train["events"] for e in events)
    with pytest.raises(ValueError, match="ebr_levls"):
        SoundscapeBuilder(
            "x", TINY_CLASSES, {"t": {**sets["test"], "soundscape": {"ebr_levls": [0]}}}, {}
        )
