"""A folder of procedural events, laid out like the real event-source folders.

:func:`build_event_bank` writes events of :mod:`~.procedural`'s classes with the same
``metadata.csv`` layout as the real event banks, so one reader
(:class:`~.sources.EventBank`) serves both.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from sed_lightning.data.audio import save_audio
from sed_lightning.data.procedural import DEFAULT_CLASSES, GENERATOR_VERSION, generate_event
from sed_lightning.data.sources import SPLITS

__all__ = ["build_event_bank", "split_counts"]

log = logging.getLogger(__name__)


def build_event_bank(
    out_dir: str | PathLike,
    class_names: Sequence[str] = DEFAULT_CLASSES,
    n_per_class: int = 40,
    seed: int = 0,
    sample_rate: int = 16000,
    split_fractions: Sequence[float] = (0.7, 0.15, 0.15),
) -> Path:
    """Write a folder of procedural events readable by :class:`~.sources.EventBank`.

    Layout: ``out_dir/<label>/<label>_<k:03d>.wav`` (16-bit PCM) and
    ``out_dir/metadata.csv`` with columns ``filename`` (relative to ``out_dir``),
    ``event_label``, ``duration``, ``split``. As in the real source folders, per class
    the first files are ``train``, the next ``validation``, the last ``test``.
    Event ``k`` of a class depends only on ``(seed, label, k)``.

    The folder is reused when ``metadata.csv`` exists and ``bank.json`` (written last)
    records the same arguments and generator version.

    Returns
    -------
    Path
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    params = {
        "class_names": list(class_names),
        "n_per_class": int(n_per_class),
        "seed": int(seed),
        "sample_rate": int(sample_rate),
        "split_fractions": [float(f) for f in split_fractions],
        "generator_version": GENERATOR_VERSION,
    }
    marker, metadata_path = out_dir / "bank.json", out_dir / "metadata.csv"
    if metadata_path.is_file() and marker.is_file():
        if json.loads(marker.read_text()) == params:
            log.info("reusing procedural event bank %s", out_dir)
            return out_dir
    marker.unlink(missing_ok=True)
    counts = split_counts(n_per_class, split_fractions)
    splits = np.repeat(SPLITS, counts)
    rows = []
    jobs = [(label, k) for label in class_names for k in range(n_per_class)]
    for label, k in tqdm(jobs, desc=f"event bank {out_dir.name}", unit="event"):
        rng = np.random.default_rng([seed, zlib.crc32(label.encode()), k])
        audio = generate_event(label, rng, sample_rate)
        filename = f"{label}/{label}_{k:03d}.wav"
        save_audio(out_dir / filename, audio, sample_rate)
        rows.append((filename, label, round(len(audio) / sample_rate, 4), splits[k]))
    table = pd.DataFrame(rows, columns=["filename", "event_label", "duration", "split"])
    table.to_csv(metadata_path, index=False)
    marker.write_text(json.dumps(params, indent=2))
    log.info("wrote %d procedural events to %s", len(rows), out_dir)
    return out_dir


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` items into train/validation/test counts following ``fractions``.

    Largest-remainder rounding; every split with a positive fraction gets at least one
    item when ``n`` allows it.

    Examples
    --------
    >>> split_counts(40, (0.7, 0.15, 0.15))
    [28, 6, 6]
    >>> split_counts(3, (0.7, 0.15, 0.15))
    [1, 1, 1]
    """
    shares = np.asarray(fractions, dtype=float)
    if shares.shape != (len(SPLITS),) or (shares < 0).any() or shares.sum() <= 0:
        raise ValueError(f"need {len(SPLITS)} non-negative split fractions, got {fractions}")
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    remainder_order = np.argsort(-(exact - counts), kind="stable")
    counts[remainder_order[: n - counts.sum()]] += 1
    for i in np.flatnonzero((shares > 0) & (counts == 0)):
        donor = int(np.argmax(counts))
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[i] += 1
    return counts.tolist()
