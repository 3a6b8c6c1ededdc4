"""The names of the files in a run folder, in one place.

A training run writes them (:mod:`sed_lightning.training.outputs`,
:mod:`sed_lightning.training.run_info`, :mod:`sed_lightning.training.cost`); the tools of
``sed-tools`` (:mod:`sed_lightning.tools`) read them and write the tuned ones beside them.
Plain names, no imports: every module may use them.

>>> SPLIT_FILES["val"]
('val_scores', 'val_reference.tsv', 'val_durations.tsv')
>>> METHOD_FILES["median"]
('postprocess_tuned.yaml', 'metrics_tuned.json')
"""

from __future__ import annotations

#: the test metrics and the package versions
METRICS_FILE = "metrics.json"
#: the validation metrics of the tested weights
VAL_METRICS_FILE = "metrics_val.json"
#: the decoder settings that made ``predictions.tsv`` and the metrics
POSTPROCESS_FILE = "postprocess.yaml"
#: the test events (DESED format)
PREDICTIONS_FILE = "predictions.tsv"
#: the clips each process scored (multi-process runs)
EVAL_SHARDS_FILE = "eval_shards.json"
#: how the run was made: versions, overrides, choices, start time
RUN_INFO = "run_info.json"
#: what the run cost: parameters, MACs, energy and time per phase
COST_FILE = "cost.json"
#: an ensemble folder's members and weights (``sed-tools ensemble``)
ENSEMBLE_FILE = "ensemble.json"

#: split -> (its scores folder, its reference, its durations)
SPLIT_FILES = {
    "val": ("val_scores", "val_reference.tsv", "val_durations.tsv"),
    "test": ("scores", "test_reference.tsv", "test_durations.tsv"),
}

#: tuning method (``sed-tools tune --method``, ``postprocess.tune``) -> (the tuned decoder
#: settings, the test metrics with it)
METHOD_FILES = {
    "median": ("postprocess_tuned.yaml", "metrics_tuned.json"),
    "sebbs": ("postprocess_sebbs.yaml", "metrics_sebbs.json"),
}
#: the median tuning's settings again, as a Hydra option of the run's own config search
#: path: ``hydra.searchpath=[file://RUN_DIR/conf] postprocess=tuned``
TUNED_HYDRA_CONFIG = "conf/postprocess/tuned.yaml"
