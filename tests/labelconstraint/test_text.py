import json

import pytest
import torch

from sed_lightning.labelconstraint.text import (
    UNK,
    WordTokenizer,
    class_features,
    label_texts,
    load_label_features,
    save_label_features,
    text_label_features,
    train_text_classifier,
)

CLASSES = ["door_slam", "keys_drop", "knock", "speech", "phone"]
TEMPLATES = ["the sound of {label}", "a recording of {label}", "{label}", "a {label} sound"]


@pytest.fixture(scope="module")
def trained():
    return text_label_features(CLASSES, TEMPLATES, seed=3, epochs=60)


def test_texts_come_from_every_template_with_the_class_words():
    texts = label_texts(CLASSES, TEMPLATES)
    assert list(texts) == CLASSES
    assert texts["door_slam"] == [
        "the sound of door slam",
        "a recording of door slam",
        "door slam",
        "a door slam sound",
    ]


@pytest.mark.parametrize(
    ("names", "templates"),
    [(["a", "b"], ["the sound of"]), (["door_slam", "door-slam"], ["{label}"])],
)
def test_templates_without_placeholder_or_equal_phrases_are_rejected(names, templates):
    with pytest.raises(ValueError):
        label_texts(names, templates)


def test_tokenizer_pads_and_maps_unknown_words():
    tok = WordTokenizer(["the sound of knock", "door slam"])
    ids, mask = tok.encode(["Door SLAM!", "the sound of a knock"])
    assert ids.shape == (2, 5) and mask.sum(1).tolist() == [2, 5]
    assert ids[0, 2:].tolist() == [0, 0, 0]
    assert ids[1, 3].item() == UNK  # "a" is not in the vocabulary
    assert ids[0, 0].item() == tok.vocab["door"]


def test_classifier_learns_every_template_text_and_gives_one_feature_per_class(trained):
    assert trained.accuracy == 1.0
    assert trained.features.shape == (len(CLASSES), 32)
    assert trained.texts == label_texts(CLASSES, TEMPLATES)
    assert torch.cdist(trained.features, trained.features).fill_diagonal_(1.0).min() > 0.1


def test_each_text_is_nearest_to_its_own_label_feature():
    texts = label_texts(CLASSES, TEMPLATES)
    model, tok = train_text_classifier(texts, epochs=60, seed=3)
    features = class_features(model, tok, texts)
    for i, class_texts in enumerate(texts.values()):
        with torch.no_grad():
            text_features = model.features(*tok.encode(class_texts))
        assert (torch.cdist(text_features, features).argmin(dim=1) == i).all()


def test_same_seed_same_features_and_global_rng_untouched(trained):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = text_label_features(CLASSES, TEMPLATES, seed=3, epochs=60)
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(again.features, trained.features)
    other = text_label_features(CLASSES, TEMPLATES, seed=4, epochs=60)
    assert not torch.allclose(other.features, trained.features)


def test_saved_features_load_back_in_the_run_class_order(tmp_path, trained):
    save_label_features(tmp_path, trained, CLASSES)
    saved = json.loads((tmp_path / "label_texts.json").read_text())
    assert saved["texts"]["knock"][0] == "the sound of knock" and saved["accuracy"] == 1.0
    reordered = CLASSES[::-1]
    loaded = load_label_features(tmp_path / "label_features.pt", reordered)
    assert torch.equal(loaded.features, trained.features.flip(0))


def test_a_bare_tensor_file_is_used_as_is_and_a_wrong_one_is_rejected(tmp_path):
    features = torch.arange(10.0).view(5, 2)
    torch.save(features, tmp_path / "f.pt")
    assert torch.equal(load_label_features(tmp_path / "f.pt", CLASSES).features, features)
    with pytest.raises(ValueError, match=r"n_classes=4"):
        load_label_features(tmp_path / "f.pt", CLASSES[:4])
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        load_label_features(tmp_path / "nothere.pt", CLASSES)
