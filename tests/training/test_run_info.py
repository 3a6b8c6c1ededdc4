"""``run_info.json``'s package versions (sed_lightning.training.run_info)."""

from importlib import metadata

import pytest

from sed_lightning.training import run_info
from sed_lightning.training.run_info import package_versions


def test_a_module_installed_by_another_distribution_names_that_distribution(monkeypatch):
    # a module ("fancy_mod") whose distribution has another name ("fancy-mod-np2")
    def version(name):
        if name == "fancy-mod-np2":
            return "1.2.3"
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(run_info.metadata, "version", version)
    monkeypatch.setattr(
        run_info.metadata, "packages_distributions", lambda: {"fancy_mod": ["fancy-mod-np2"]}
    )
    versions = package_versions(("fancy_mod", "absent-package"))
    assert versions["fancy_mod"] == "1.2.3 (fancy-mod-np2)"
    assert versions["absent-package"] == "not installed"


def test_sed_scores_eval_is_reported_as_installed():
    pytest.importorskip("sed_scores_eval")
    assert package_versions(("sed_scores_eval",))["sed_scores_eval"] != "not installed"
