"""Non-target events: drawn into the recipe, mixed without a label at their level, off by
default without changing a clip, and never of a target class."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sed_lightning.data.distractors import Distractors, render_distractors
from sed_lightning.data.online import OnlineSoundscapes
from sed_lightning.data.set_cache import config_content
from sed_lightning.data.set_spec import SoundscapeConfig
from tests.data.test_online import _builder, _encoder

SR = 16000
NON_TARGET = {"p": 1.0, "max_events": 2, "classes": ["water", "dog_bark"]}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("ebr", [-6.0, 0.0, 6.0])
def test_a_distractor_is_mixed_at_the_requested_level(ebr):
    rng = np.random.default_rng(3)
    background = (0.05 * rng.standard_normal(2 * SR)).astype(np.float32)
    entry = {"label": "water", "start": 4000, "n": 12000, "ebr_db": ebr, "seed": 7}
    layer = render_distractors([entry], background, SR)
    span = slice(4000, 16000)
    measured = 20 * np.log10(_rms(layer[span]) / _rms(background[span]))
    assert abs(measured - ebr) < 0.5
    assert not layer[:4000].any() and not layer[16000:].any()  # only over its span
    np.testing.assert_array_equal(layer, render_distractors([entry], background, SR))


def test_off_draws_nothing_and_ranges_are_checked():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert Distractors().draw(rng, SR, SR) == []  # p = 0 is the default
    assert rng.bit_generator.state == state  # no randomness used
    entries = Distractors(p=1.0, max_events=3, duration=(5.0, 5.0)).draw(rng, SR, SR)
    assert 1 <= len(entries) <= 3
    assert all(e["n"] == SR and e["start"] == 0 for e in entries)  # cut to the clip
    assert json.loads(json.dumps(entries)) == entries
    with pytest.raises(ValueError, match="unknown"):
        Distractors(classes=("door_slam",))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Distractors(p=1.5)
    with pytest.raises(ValueError, match="target classes"):
        Distractors(p=0.5, classes=("engine",)).check_targets(["alarm", "engine"])
    Distractors(p=0.0, classes=("engine",)).check_targets(["engine"])  # off: allowed


def test_a_target_class_cannot_be_a_distractor(tmp_path, tiny_bank_dir):
    builder = _builder(tmp_path, tiny_bank_dir, distractors={"p": 1.0, "classes": ["engine"]})
    with pytest.raises(ValueError, match=r"\['engine'\] are target classes"):
        builder.maker("train_strong")


def test_distractors_leave_the_labels_and_re_render_bit_for_bit(tmp_path, tiny_bank_dir):
    plain = OnlineSoundscapes.from_builder(
        _builder(tmp_path, tiny_bank_dir), "train_strong", _encoder()
    )
    with_them = _builder(tmp_path, tiny_bank_dir, distractors=NON_TARGET)
    ds = OnlineSoundscapes.from_builder(with_them, "train_strong", _encoder())
    for i in range(len(ds)):
        before, recipe = plain.recipe(i, epoch=0), ds.recipe(i, epoch=0)
        assert "distractors" not in before  # off: the recipe as before
        recipe = json.loads(json.dumps(recipe))  # as stored
        entries = recipe.pop("distractors")
        assert 1 <= len(entries) <= 2 and {e["label"] for e in entries} <= {"water", "dog_bark"}
        assert recipe == json.loads(json.dumps(before))  # same background and targets
        item, base = ds[i], plain[i]
        np.testing.assert_array_equal(item["strong_labels"], base["strong_labels"])
        assert not np.array_equal(item["audio"], base["audio"])
        audio, _ = (
            _builder(tmp_path, tiny_bank_dir, distractors=NON_TARGET)
            .maker("train_strong")
            .render({**recipe, "distractors": entries})
        )
        np.testing.assert_array_equal(audio, item["audio"])  # bit for bit, from JSON


def test_the_layer_is_added_to_the_clip_and_targets_keep_their_ratio(tmp_path, tiny_bank_dir):
    """Targets are scaled against the background alone, so the clip with distractors is the
    clip without them plus the non-target layer (where no peak limit applies)."""
    quiet = {"ebr_db": [-6.0, 0.0]}  # so that few clips reach the peak limit
    distractors = {**NON_TARGET, "ebr_db": [-6.0, 0.0]}
    maker = _builder(tmp_path, tiny_bank_dir, distractors=distractors, **quiet).maker(
        "train_strong"
    )
    plain = _builder(tmp_path, tiny_bank_dir, **quiet).maker("train_strong")
    checked = 0
    for k in range(6):
        recipe = maker.draw([1, 0, k])
        entries = recipe.pop("distractors")
        without, rows = plain.render(recipe)
        layer = render_distractors(entries, maker.background(recipe), SR)
        if np.max(np.abs(without + layer)) >= 0.99:
            continue  # scaled down as a whole
        mixed, rows_with = maker.render({**recipe, "distractors": entries})
        np.testing.assert_allclose(mixed, without + layer, atol=1e-6)
        assert rows_with == rows
        checked += 1
    assert checked >= 3


def test_off_hashes_as_before_and_a_set_can_switch_it_off():
    assert "distractors" not in config_content(SoundscapeConfig())
    on = SoundscapeConfig(distractors={"p": 0.5})
    assert config_content(on)["distractors"]["p"] == 0.5
    assert isinstance(on.distractors, Distractors)


def test_the_office_recipe_switches_them_on_for_training_only(tmp_path):
    """Composed as a user would: the training sets get them, the fixed evaluation sets of
    the DCASE 2016 protocol spell them off."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from tests.conftest import compose_train, finalize

    cfg = compose_train(
        ["+experiment=dcase2016_office", "data.synthesis.soundscape.distractors.p=0.5"],
        tiny=False,
    )
    builder = instantiate(finalize(cfg, tmp_path / "run", tmp_path / "data").data.synthesis)
    assert builder.settings["soundscape"]["distractors"]["p"] == 0.5  # re-render settings
    configs = {spec.name: spec.config(builder.soundscape) for spec in builder.specs}
    assert configs["train_strong"].distractors.p == 0.5
    assert configs["validation"].distractors.p == 0 and configs["test"].distractors.p == 0
    assert (
        compose_train(["+experiment=dcase2016_office"], tiny=False).data.synthesis.soundscape[
            "distractors"
        ]["p"]
        == 0
    )  # off in the recipe itself
    GlobalHydra.instance().clear()


def test_a_set_spelling_them_off_reuses_its_cached_files(tmp_path, tiny_bank_dir):
    """The office evaluation sets spell ``distractors: {p: 0}``: their cache made before the
    option existed stays valid; switched on, the set is made again with them."""
    from sed_lightning.data.set_spec import SetSpec
    from sed_lightning.data.sources import EventBank
    from sed_lightning.data.synthesis import synthesize_set
    from tests.data.test_synthesis import TINY_CFG

    bank, out = EventBank(tiny_bank_dir), tmp_path / "validation"
    synthesize_set(out, bank, SetSpec("validation", "strong", "validation", 3, 4), TINY_CFG)
    manifest = (out / "manifest.json").read_text()
    off = SetSpec("validation", "strong", "validation", 3, 4, soundscape={"distractors": {"p": 0}})
    synthesize_set(out, bank, off, TINY_CFG)
    assert (out / "manifest.json").read_text() == manifest  # reused, not made again
    on = SetSpec("validation", "strong", "validation", 3, 4, soundscape={"distractors": NON_TARGET})
    synthesize_set(out, bank, on, TINY_CFG)
    recipes = [json.loads(x) for x in (out / "recipes.jsonl").read_text().splitlines()]
    assert all(r.get("distractors") for r in recipes)
