"""A per-class subset of the train sources (learning curves over the number of recordings a
class has): the draw, and the sets and online soundscapes that use it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sed_lightning.data.builders import SoundscapeBuilder
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.data.online import OnlineSoundscapes
from sed_lightning.data.procedural_bank import build_event_bank
from sed_lightning.data.set_spec import SetSpec
from sed_lightning.data.sources import EventBank, EventSource, per_class_subset
from sed_lightning.data.synthesis import synthesize_set
from sed_lightning.data.tsv import read_strong_tsv
from tests.data.conftest import TINY_CLASSES
from tests.data.test_synthesis import TINY_CFG


def _sources(per_class: dict[str, int], split: str = "train") -> list[EventSource]:
    return [
        EventSource(Path(f"{label}_{i}.wav"), label, 1.0, split)
        for label, n in per_class.items()
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 10 sources: 7 train, 1-2 validation, 1-2 test each."""
    return build_event_bank(
        tmp_path_factory.mktemp("bank10"), class_names=TINY_CLASSES, n_per_class=10, seed=0
    )


def test_subset_keeps_n_of_each_class_and_every_other_split() -> None:
    sources = _sources({"a": 6, "b": 4}) + _sources({"a": 2, "b": 2}, split="validation")
    kept = per_class_subset(sources, 3, seed=0)
    assert Counter((s.label, s.split) for s in kept) == {
        ("a", "train"): 3,
        ("b", "train"): 3,
        ("a", "validation"): 2,
        ("b", "validation"): 2,
    }
    assert kept == [s for s in sources if s in kept]  # metadata order kept
    assert per_class_subset(sources, 3, seed=0) == kept  # deterministic
    assert len(per_class_subset(sources, 4, seed=0)) == 12  # all of b's 4


def test_subset_seed_draws_another_subset_and_a_class_draw_ignores_the_others() -> None:
    sources = _sources({"a": 14, "b": 14})
    draws = {tuple(s.path.name for s in per_class_subset(sources, 7, seed=k)) for k in range(5)}
    assert len(draws) > 1  # 5 seeds, C(14, 7)^2 possible subsets
    alone = per_class_subset(_sources({"a": 14}), 7, seed=3)
    together = [s for s in per_class_subset(sources, 7, seed=3) if s.label == "a"]
    assert together == alone  # adding class b changes nothing of a's draw


def test_classes_sharing_a_name_prefix_draw_independently() -> None:
    # a key on the first bytes of the name alone gave car_horn and car_alarm one pattern
    sources = _sources({"car_horn": 20, "car_alarm": 20})

    def picks(label: str, seed: int) -> tuple[int, ...]:
        kept = per_class_subset(sources, 7, seed=seed)
        return tuple(int(s.path.stem.rsplit("_", 1)[1]) for s in kept if s.label == label)

    assert any(picks("car_horn", k) != picks("car_alarm", k) for k in range(3))


def test_subset_refuses_more_than_a_class_has_and_naming_it(bank_dir: Path) -> None:
    with pytest.raises(ValueError, match="class 'b' has 2 train source"):
        per_class_subset(_sources({"a": 5, "b": 2}), 3)
    with pytest.raises(ValueError, match=">= 1"):
        per_class_subset(_sources({"a": 5}), 0)
    with pytest.raises(ValueError, match="set 'big': class 'alarm' has 7 train source"):
        SetSpec("big", "strong", "train", 1, 0, sources_per_class=8).sources(EventBank(bank_dir))
    with pytest.raises(ValueError, match="set 'none': sources_per_class must be >= 1"):
        SetSpec("none", "strong", "train", 1, 0, sources_per_class=0)


def test_a_subset_set_draws_its_events_only_from_the_subset(tmp_path: Path, bank_dir: Path) -> None:
    bank = EventBank(bank_dir)
    spec = SetSpec("train", "strong", "train", n_clips=12, seed=0, sources_per_class=2)
    allowed = {str(s.path.relative_to(bank.root)) for s in spec.sources(bank)}
    assert len(allowed) == 2 * len(TINY_CLASSES)
    out = synthesize_set(tmp_path / "sub", bank, spec, TINY_CFG)
    used = set(read_strong_tsv(out / "truth.tsv")["source"])
    assert used and used <= allowed
    full = synthesize_set(
        tmp_path / "full", bank, SetSpec("train", "strong", "train", 12, 0), TINY_CFG
    )
    assert set(read_strong_tsv(full / "truth.tsv")["source"]) - allowed  # the rest is used too

    hashes = {json.loads((d / "manifest.json").read_text())["hash"] for d in (out, full)}
    other = SetSpec("train", "strong", "train", 12, 0, sources_per_class=2, sources_seed=1)
    hashes.add(
        json.loads(
            (synthesize_set(tmp_path / "o", bank, other, TINY_CFG) / "manifest.json").read_text()
        )["hash"]
    )
    assert len(hashes) == 3  # a subset, the full set and another draw are cached apart
    # a set of every source hashes as before the option existed: cached sets stay valid
    assert "sources_per_class" not in json.loads((full / "manifest.json").read_text())["spec"]


def test_builder_subsets_the_training_sets_never_validation_and_online_clips_follow(
    tmp_path: Path, bank_dir: Path
) -> None:
    sets = {
        "train_strong": {"kind": "strong", "source_split": "train", "n_clips": 8, "seed": 1},
        "validation": {"kind": "strong", "source_split": "validation", "n_clips": 2, "seed": 2},
        "own": {
            "kind": "weak",
            "source_split": "train",
            "n_clips": 2,
            "seed": 3,
            "sources_per_class": 5,
        },
    }
    builder = SoundscapeBuilder(
        str(tmp_path / "sets"),
        TINY_CLASSES,
        sets,
        {"clip_duration": 2.0, "max_events": 3},
        events_dir=str(bank_dir),
        online=True,
        sources_per_class=1,
        sources_seed=4,
    )
    bank = builder.bank()
    count = {s.name: Counter(x.label for x in s.sources(bank)) for s in builder.specs}
    assert count["train_strong"] == dict.fromkeys(TINY_CLASSES, 1)
    assert count["own"] == dict.fromkeys(TINY_CLASSES, 5)  # a set's own value wins
    assert count["validation"] == Counter(s.label for s in bank.sources("validation"))
    # the re-render settings carry the subset, so a worker rebuilds the same clips
    assert SoundscapeBuilder(**builder.settings).spec("train_strong") == builder.spec(
        "train_strong"
    )

    allowed = {s.path.name for s in builder.spec("train_strong").sources(bank)}
    encoder = LabelEncoder(list(TINY_CLASSES), frame_hop=0.04, n_frames=50)
    rec = tmp_path / "recipes"
    ds = OnlineSoundscapes.from_builder(builder, "train_strong", encoder, recipe_dir=str(rec))
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            ds[i]
    used = {
        Path(event["source"]).name
        for path in rec.rglob("*.jsonl")
        for line in path.read_text().splitlines()
        for event in json.loads(line)["events"]
    }
    assert used and used <= allowed
