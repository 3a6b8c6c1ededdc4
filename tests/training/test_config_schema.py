"""Every config group rejects a misspelt key, in an override or in a YAML file, naming the key:
the dataclass groups when the config is composed, the ``_target_`` groups when they are built,
before any data is prepared or step trained."""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException

from sed_lightning.train import train
from sed_lightning.training.preflight import ConfigError
from tests.conftest import compose_train, finalize

# group -> (YAML with a misspelt key, that key, extra overrides)
SCHEMA_GROUPS = {
    "paths": ("paths: {data_dri: /tmp}", "data_dri", []),
    "data": ("data: {eval_batch_siz: 3}", "eval_batch_siz", []),
    "loss": ("loss: {terms: {consistancy: {weight: 1.0}}}", "consistancy", []),
    "loss term": ("loss: {terms: {strong: {wieght: 2.0}}}", "wieght", []),
    "postprocess": ("postprocess: {treshold: 0.3}", "treshold", []),
    "self_training": ("self_training: {round: 2}", "round", []),
    "cost": ("cost: {country_iso: DEU}", "country_iso", []),
    "label_constraint": (
        "label_constraint: {lamda: 1.0}",
        "lamda",
        ["+label_constraint=default"],
    ),
    "label_constraint text encoder": (
        "label_constraint: {text_encoder: {d_modle: 8}}",
        "d_modle",
        ["+label_constraint=default"],
    ),
}
BUILT_GROUPS = {
    "features": ("features: {n_mel: 32}", "n_mel", []),
    "features pcen": ("features: {time_constnt: 0.4}", "time_constnt", ["features=pcen"]),
    "model": ("model: {encoder: {n_layer: 3}}", "n_layer", []),
    "model pooling": (
        "model: {pooling: {treshold: 0.3}}",
        "treshold",
        ["model/pooling=threshold"],
    ),
    "augment": ("augment: {shift: {max_shfit: 2.0}}", "max_shfit", ["augment=all"]),
    "optimizer": ("optimizer: {learning_rate: 0.1}", "learning_rate", []),
    "scheduler": ("scheduler: {total_iter: 3}", "total_iter", []),
    "trainer": ("trainer: {max_epoch: 3}", "max_epoch", []),
    "callbacks": ("callbacks: {model_checkpoint: {monitr: val/loss}}", "monitr", []),
    "logger": ("logger: {csv: {save_dri: /tmp}}", "save_dri", []),
}


def experiment(tmp_path, body: str) -> list[str]:
    (tmp_path / "experiment").mkdir(exist_ok=True)
    (tmp_path / "experiment" / "typo.yaml").write_text(f"# @package _global_\n{body}\n")
    return [f"hydra.searchpath=[file://{tmp_path}]", "+experiment=typo"]


def override(body: str) -> str:
    """The same misspelt key as a command-line override: ``group.a.key=value``."""
    path, value = [], body
    while "{" in value:
        key, value = value.split(":", 1)
        path.append(key.strip(" {"))
        value = value.strip()
    return ".".join(path) + "=" + value.strip(" }")


@pytest.mark.parametrize("group", list(SCHEMA_GROUPS))
def test_schema_group_rejects_a_misspelt_key_when_composed(group, tmp_path):
    body, key, extra = SCHEMA_GROUPS[group]
    for overrides in (experiment(tmp_path, body), [override(body)]):
        with pytest.raises(ConfigCompositionException) as err:
            compose_train([*extra, *overrides])
        assert key in str(err.value) + str(err.value.__cause__), overrides
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("group", list(BUILT_GROUPS))
def test_built_group_rejects_a_misspelt_key_before_anything_runs(group, tmp_path):
    body, key, extra = BUILT_GROUPS[group]
    with pytest.raises(ConfigCompositionException, match=key):  # an override: at once
        compose_train([*extra, override(body)])
    cfg = finalize(
        compose_train([*extra, *experiment(tmp_path, body)]), tmp_path / "run", tmp_path / "data"
    )
    with pytest.raises(ConfigError, match=rf"^{group.split()[0]}[.:].*{key}"):
        train(cfg)
    assert not (tmp_path / "data").exists() and not (tmp_path / "run" / "checkpoints").exists()
    GlobalHydra.instance().clear()


def test_the_override_helper_writes_dotted_keys():
    assert override("loss: {terms: {strong: {wieght: 2.0}}}") == "loss.terms.strong.wieght=2.0"
