"""A training run's saved outputs, read back: the scores, reference and durations of its
validation (``val_scores/``, ...) or test (``scores/``, ...) split
(:data:`~sed_lightning.run_files.SPLIT_FILES`), the decoder settings it used, and its
scores decoded by any settings. No model is loaded; what the tools of ``sed-tools`` start
from (:mod:`sed_lightning.postprocessing.tuning` and the studies beside it).

- :func:`load_split` -> :class:`SavedSplit` (:meth:`SavedSplit.subset`: some of its clips);
- :func:`run_postprocess` (the run's decoder), :func:`read_postprocess` (a saved one);
- :func:`decode`: a split's event table under given settings.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sed_lightning.config import PostprocessConfig
from sed_lightning.data.tsv import read_durations_tsv, read_strong_tsv
from sed_lightning.evaluation.scores import (
    audio_id,
    class_names_of,
    durations_from_scores,
    read_scores,
)
from sed_lightning.postprocessing.events import PostProcessor, decoder_settings
from sed_lightning.run_files import POSTPROCESS_FILE, SPLIT_FILES

DEFAULT_POSTPROCESS = decoder_settings(asdict(PostprocessConfig()))  # the schema's defaults


@dataclass
class SavedSplit:
    """One split of a run as saved: score DataFrames, reference and durations, all keyed by
    audio id (sed_scores_eval's key)."""

    score_dfs: dict[str, pd.DataFrame]
    reference: pd.DataFrame
    durations: dict[str, float]

    @cached_property
    def classes(self) -> list[str]:
        return class_names_of(next(iter(self.score_dfs.values())))

    @property
    def files(self) -> list[str]:
        return sorted(self.score_dfs)

    def subset(self, files: Sequence[str]) -> SavedSplit:
        """The clips ``files`` of this split (scores, reference rows, empty files,
        durations)."""
        keep = set(files)
        reference = self.reference[self.reference["filename"].isin(keep)].reset_index(drop=True)
        reference.attrs["empty_files"] = [
            f for f in self.reference.attrs.get("empty_files", []) if f in keep
        ]
        return SavedSplit(
            {k: self.score_dfs[k] for k in files},
            reference,
            {k: v for k, v in self.durations.items() if k in keep},
        )

    @cached_property
    def frame_hop(self) -> float:
        return frame_hop_of(self.score_dfs)

    def frames(self) -> dict[str, np.ndarray]:
        """``(n_frames, n_classes)`` score arrays by audio id."""
        return {k: df[self.classes].to_numpy(dtype=np.float64) for k, df in self.score_dfs.items()}


def frame_hop_of(score_dfs: Mapping[str, pd.DataFrame]) -> float:
    """The frame hop (seconds) of score DataFrames, from their onset/offset timestamps."""
    hops = np.concatenate([(df["offset"] - df["onset"]).to_numpy() for df in score_dfs.values()])
    if hops.size == 0 or not np.allclose(hops, hops[0], rtol=1e-4, atol=1e-6):
        raise ValueError("scores are not on a regular frame grid (onset/offset steps differ)")
    return float(hops[0])


def load_split(run_dir: str | Path, split: str) -> SavedSplit:
    """Read ``val`` (``val_scores/``, ...) or ``test`` (``scores/``, ...) of a run."""
    scores_dir, ref_name, dur_name = SPLIT_FILES[split]
    run_dir = Path(run_dir)
    if not (run_dir / scores_dir).is_dir():
        raise FileNotFoundError(
            f"{run_dir / scores_dir}: no such folder (SEDEvaluation writes it with the test "
            "outputs; for an older run, test its checkpoint again: train=false init_from=CKPT)"
        )
    score_dfs = read_scores(run_dir / scores_dir)
    if not score_dfs:
        raise FileNotFoundError(f"no score files in {run_dir / scores_dir}")
    reference = read_strong_tsv(run_dir / ref_name)
    empty = [audio_id(f) for f in reference.attrs.get("empty_files", [])]
    reference = reference.assign(filename=reference["filename"].map(audio_id))
    reference.attrs["empty_files"] = empty
    dur_path = run_dir / dur_name
    durations = (
        {audio_id(k): v for k, v in read_durations_tsv(dur_path).items()}
        if dur_path.is_file()
        else durations_from_scores(score_dfs)
    )
    return SavedSplit(score_dfs, reference, durations)


def read_postprocess(path: Path) -> dict[str, Any]:
    """Decoder settings from a post-processing YAML a run or a tuning wrote (the schema's
    defaults for what it leaves out)."""
    return decoder_settings({**DEFAULT_POSTPROCESS, **(yaml.safe_load(path.read_text()) or {})})


def run_postprocess(run_dir: str | Path) -> dict[str, Any]:
    """The post-processing a run used: ``postprocess.yaml`` (written with its test outputs),
    else the ``postprocess`` node of ``.hydra/config.yaml``, else the defaults (decoder
    settings only: a ``tune`` key is left out)."""
    run_dir = Path(run_dir)
    saved = run_dir / POSTPROCESS_FILE
    if saved.is_file():
        return read_postprocess(saved)
    hydra_config = run_dir / ".hydra" / "config.yaml"
    if hydra_config.is_file():
        node = (yaml.safe_load(hydra_config.read_text()) or {}).get("postprocess")
        if node:
            return decoder_settings({**DEFAULT_POSTPROCESS, **node})
    warnings.warn(f"{run_dir}: no postprocess.yaml or .hydra/config.yaml: defaults", stacklevel=2)
    return dict(DEFAULT_POSTPROCESS)


def decode(split: SavedSplit, postprocess: Mapping[str, Any]) -> pd.DataFrame:
    """Event table of a split under ``postprocess`` (median window in seconds)."""
    pp = PostProcessor(split.classes, split.frame_hop, **postprocess)
    return pp(split.frames(), split.durations)
