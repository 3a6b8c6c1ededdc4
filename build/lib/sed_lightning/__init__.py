"""sed-lightning: sound event detection with PyTorch Lightning and Hydra."""

import warnings

__version__ = "0.1.0"

# dcase_util (under sed_eval, which sed_scores_eval imports) imports pkg_resources, whose
# deprecation warning is two lines on stderr of every command and nothing its user can act on
# (setuptools<81 is pinned for it). Only that warning, only when dcase_util triggers it.
warnings.filterwarnings(
    "ignore", message="pkg_resources is deprecated", category=UserWarning, module=r"dcase_util\."
)
