"""Average the frame scores of several detectors: the ensemble of their saved outputs.

Detectors trained with different seeds make different mistakes; the mean of their frame
probabilities is the usual way DCASE systems combine them (the probabilities, not the
events: the decoder then runs once, on the averaged scores, and is tuned for them). The
members must have scored the same clips on the same frame grid with the same classes.

No library does this on sed_scores_eval score DataFrames (sed_scores_eval scores and
reads them, it does not combine systems), hence the few lines here.

>>> import numpy as np
>>> from sed_lightning.evaluation.scores import scores_to_dataframes
>>> a = scores_to_dataframes({"c": np.array([[0.2, 1.0], [0.4, 0.0]])}, 0.5, ["x", "y"])
>>> b = scores_to_dataframes({"c": np.array([[0.6, 0.0], [0.0, 0.0]])}, 0.5, ["x", "y"])
>>> average_scores([a, b])["c"]
   onset  offset    x    y
0    0.0     0.5  0.4  0.5
1    0.5     1.0  0.2  0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from sed_lightning.evaluation.scores import class_names_of


class EnsembleError(ValueError):
    """The members' scores cannot be averaged (other clips, classes or frame grid)."""


def average_scores(
    members: Sequence[Mapping[str, pd.DataFrame]],
    weights: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """The (weighted) mean of each clip's frame scores over ``members``.

    Args:
        members: per member, sed_scores_eval score DataFrames by audio id.
        weights: one non-negative weight per member (normalized); ``None``: equal.
        names: how errors name the members (e.g. their run folders); default ``#i``.

    Returns:
        Score DataFrames by audio id, the first member's onsets, offsets and class order.

    Raises:
        EnsembleError: fewer than one member, weights that do not fit, or a member whose
            clips, classes or frame timestamps differ from the first member's (the error
            names the member and the clip).
    """
    if not members:
        raise EnsembleError("an ensemble needs at least one member")
    names = list(names) if names is not None else [f"#{i}" for i in range(len(members))]
    w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(members),) or (w < 0).any() or w.sum() <= 0:
        raise EnsembleError(
            f"weights must be {len(members)} non-negative numbers, not all 0; got {weights}"
        )
    w = w / w.sum()
    first = members[0]
    clips = set(first)
    for name, member in zip(names[1:], members[1:], strict=True):
        if set(member) != clips:
            missing, extra = sorted(clips - set(member)), sorted(set(member) - clips)
            raise EnsembleError(
                f"{name}: not the clips of {names[0]} (missing {missing[:3]}, extra {extra[:3]})"
            )
    out: dict[str, pd.DataFrame] = {}
    for clip, df in first.items():
        classes = class_names_of(df)
        times = df[["onset", "offset"]].to_numpy(dtype=np.float64)
        total = np.zeros((len(df), len(classes)))
        for name, member, weight in zip(names, members, w, strict=True):
            other = member[clip]
            if class_names_of(other) != classes:
                raise EnsembleError(
                    f"{name}: clip {clip}: classes {class_names_of(other)} differ from "
                    f"{names[0]}'s {classes}"
                )
            other_times = other[["onset", "offset"]].to_numpy(dtype=np.float64)
            if other_times.shape != times.shape or not np.allclose(other_times, times, atol=1e-6):
                raise EnsembleError(
                    f"{name}: clip {clip}: {len(other)} frames on another grid than "
                    f"{names[0]}'s {len(df)} (a different front end or frame hop)"
                )
            total += weight * other[classes].to_numpy(dtype=np.float64)
        averaged = df[["onset", "offset"]].copy()
        averaged[classes] = total
        out[clip] = averaged
    return out


__all__ = ["EnsembleError", "average_scores"]
