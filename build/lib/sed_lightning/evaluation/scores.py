"""Frame scores <-> sed_scores_eval score DataFrames (and their on-disk TSV form).

Key convention
--------------
sed_scores_eval identifies clips by *audio id*: the filename without its audio extension
(``"clip_00001.wav"`` -> ``"clip_00001"``). That is what ``sed_scores_eval.io`` produces when it
reads a ground-truth TSV (``filename.rsplit(".", 1)[0]``), a durations TSV, or a scores directory
(one ``<audio_id>.tsv`` per clip). Every mapping handed to sed_scores_eval by this package
(scores, ground truth, durations) is keyed by :func:`audio_id`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sed_scores_eval.base_modules.io import read_sed_scores, write_sed_scores
from sed_scores_eval.base_modules.scores import create_score_dataframe, validate_score_dataframe

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff")


def audio_id(filename: str) -> str:
    """sed_scores_eval key of a clip: basename without its audio extension.

    Only known audio extensions are removed, so ids that contain dots (DESED names such as
    ``Y--4gqARaEJE_0.000_10.000``) are left intact.

    >>> audio_id("clip_00001.wav"), audio_id("clip_00001"), audio_id("Y-x_0.000_10.000.wav")
    ('clip_00001', 'clip_00001', 'Y-x_0.000_10.000')
    """
    name = Path(str(filename)).name
    suffix = Path(name).suffix
    if suffix.lower() in AUDIO_EXTENSIONS:
        return name[: -len(suffix)]
    return name


def scores_to_dataframes(
    scores_by_file: Mapping[str, np.ndarray],
    frame_hop: float,
    class_names: Sequence[str],
) -> dict[str, pd.DataFrame]:
    """Wrap ``(n_frames, n_classes)`` score arrays as sed_scores_eval score DataFrames.

    Frame ``k`` spans ``[k * frame_hop, (k + 1) * frame_hop)``; keys become :func:`audio_id`.

    >>> dfs = scores_to_dataframes({"a.wav": np.array([[0.1, 0.9], [0.2, 0.8]])}, 0.5, ["x", "y"])
    >>> dfs["a"]
       onset  offset    x    y
    0    0.0     0.5  0.1  0.9
    1    0.5     1.0  0.2  0.8
    """
    class_names = [str(c) for c in class_names]
    out: dict[str, pd.DataFrame] = {}
    for filename, scores in scores_by_file.items():
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[1] != len(class_names):
            raise ValueError(
                f"{filename}: scores must have shape (n_frames, {len(class_names)}), "
                f"got {scores.shape}"
            )
        key = audio_id(filename)
        if key in out:
            raise ValueError(f"two inputs map to the same audio id {key!r}")
        timestamps = np.arange(scores.shape[0] + 1) * float(frame_hop)
        out[key] = create_score_dataframe(scores, timestamps, class_names)
    return out


def write_scores(score_dfs: Mapping[str, pd.DataFrame], out_dir: str | Path) -> Path:
    """Write one ``<audio_id>.tsv`` per clip (``sed_scores_eval.io.write_sed_scores``)."""
    out_dir = Path(out_dir)
    write_sed_scores({audio_id(k): v for k, v in score_dfs.items()}, out_dir)
    return out_dir


def read_scores(scores_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read a directory written by :func:`write_scores` (``sed_scores_eval.io.read_sed_scores``)."""
    scores_dir = Path(scores_dir)
    if not scores_dir.is_dir():
        raise NotADirectoryError(str(scores_dir))
    return dict(read_sed_scores(scores_dir))


def class_names_of(score_df: pd.DataFrame) -> list[str]:
    """Event class columns of a score DataFrame (everything after onset/offset)."""
    _, classes = validate_score_dataframe(score_df)
    return list(classes)


def durations_from_scores(score_dfs: Mapping[str, pd.DataFrame]) -> dict[str, float]:
    """Clip durations taken as each score DataFrame's last frame offset (keyed by audio id)."""
    return {audio_id(k): float(df["offset"].iloc[-1]) for k, df in score_dfs.items()}


__all__ = [
    "AUDIO_EXTENSIONS",
    "audio_id",
    "class_names_of",
    "durations_from_scores",
    "read_scores",
    "scores_to_dataframes",
    "write_scores",
]
