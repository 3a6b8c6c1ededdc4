"""Synthetic soundscapes: isolated event sources placed over a background.

A clip is a background (e.g. :func:`~.procedural.generate_background`) plus a few
events drawn from an :class:`~.sources.EventBank` split, each scaled to a random
event-to-background ratio (EBR). Because the placement is known, the clip comes with
exact strong labels; dropping the times gives weak labels, dropping everything gives
unlabeled data.

Layout of one synthesised set (``out_root/<name>/``)::

    audio/<name>_<k:05d>.wav   16-bit PCM mono clips
    durations.tsv              filename, duration (every clip)
    truth.tsv                  full strong labels + source provenance; for analysis and
                               tests only, never read by training
    strong.tsv, weak.tsv       kind "strong": both (weak derived from strong)
    weak.tsv                   kind "weak": labels without times
                               kind "unlabeled": no label file
    recipes.jsonl              every random choice of each clip (re-renders it bit for bit)
    manifest.json              spec, config, bank, classes, hash; written last

TSV filenames are relative to ``audio/``.

The pieces live beside this module: the set spec and mixing config (:mod:`~.set_spec`),
event placement and mixing (:mod:`~.mixing`), clip recipes (:mod:`~.recipes`), the cache's
manifests and hashes (:mod:`~.set_cache`) and its cross-process locks (:mod:`~.set_locks`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from sed_lightning.data.audio import save_audio
from sed_lightning.data.backgrounds import BackgroundBank
from sed_lightning.data.recipes import ClipMaker
from sed_lightning.data.set_cache import clear_set, is_cached, set_manifest
from sed_lightning.data.set_locks import hold_as_reader, sole_reader, writer_lock
from sed_lightning.data.set_spec import (
    PROCEDURAL_BACKGROUNDS,
    BackgroundFn,
    SetSpec,
    SoundscapeConfig,
)
from sed_lightning.data.sources import EventBank, EventSource
from sed_lightning.data.tsv import (
    STRONG_COLUMNS,
    strong_to_weak,
    write_durations_tsv,
    write_strong_tsv,
    write_weak_tsv,
)

__all__ = ["TRUTH_COLUMNS", "synthesize_dataset", "synthesize_set"]

log = logging.getLogger(__name__)

#: truth.tsv columns: strong labels, then where each event came from.
TRUTH_COLUMNS = (*STRONG_COLUMNS, "source", "source_onset", "source_offset", "ebr_db")


def _write_labels(
    out_dir: Path, truth: pd.DataFrame, durations: dict[str, float], kind: str
) -> None:
    """Write durations.tsv, truth.tsv and the label files of ``kind``.

    Clips without events have no rows in truth.tsv / strong.tsv and an empty label
    list in weak.tsv.
    """
    write_durations_tsv(durations, out_dir / "durations.tsv")
    write_strong_tsv(truth, out_dir / "truth.tsv")
    strong = truth[list(STRONG_COLUMNS)]
    if kind == "strong":
        write_strong_tsv(strong, out_dir / "strong.tsv")
    if kind in ("strong", "weak"):
        weak = strong.copy()
        weak.attrs["empty_files"] = sorted(set(durations) - set(strong["filename"]))
        write_weak_tsv(strong_to_weak(weak), out_dir / "weak.tsv")


def synthesize_set(
    out_dir: str | PathLike,
    bank: EventBank,
    spec: SetSpec,
    cfg: SoundscapeConfig,
    background_fn: BackgroundFn | None = None,
    backgrounds: BackgroundBank | None = None,
) -> Path:
    """Synthesise one set into ``out_dir`` (layout in the module docstring).

    Clip ``k`` is drawn from the streams :func:`~.recipes.clip_streams` ``([spec.seed, k])``, so
    the set is deterministic; its recipe goes to ``recipes.jsonl`` (one line per clip).
    Sources come only from ``spec.source_split`` of ``bank``, recorded backgrounds only
    from the same split(s) of ``backgrounds``. ``manifest.json`` is written last; if it
    exists with the same hash and the outputs are complete, nothing is regenerated.
    Several processes may share the cache: one writes a set while the others wait
    (``.<set>.lock``), and a process that uses a set holds a shared lock on it
    (``.<set>.readers``) until it exits, so a run with other settings for that set gets
    :class:`~.set_locks.SetInUseError` instead of rewriting it under a run that reads it.

    Parameters
    ----------
    out_dir
        The set's folder (usually ``out_root / spec.name``).
    bank
        Event sources; its sample rate must equal ``cfg.sample_rate``.
    spec
        Which set to make.
    cfg
        Mixing configuration.
    background_fn
        ``(duration, rng, sample_rate) -> background``, like
        :func:`~.procedural.generate_background`; ``None``: ``cfg.procedural_background``.
    backgrounds
        Recorded backgrounds, used for ``cfg.recorded_share`` of the clips.

    Returns
    -------
    Path
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    cfg = spec.config(cfg)
    if bank.sample_rate != cfg.sample_rate:
        raise ValueError(f"bank sample rate {bank.sample_rate} != config {cfg.sample_rate}")
    sources = spec.sources(bank)
    if not sources:
        raise ValueError(f"set {spec.name!r}: no sources in split(s) {spec.splits} of {bank}")
    background_fn = background_fn or PROCEDURAL_BACKGROUNDS[cfg.procedural_background]
    manifest = set_manifest(bank, spec, cfg, sources, background_fn, backgrounds)
    with writer_lock(out_dir):
        if is_cached(out_dir, manifest, spec.n_clips):
            log.info("reusing %s", out_dir)
        else:
            with sole_reader(out_dir):
                _write_set(out_dir, bank, spec, cfg, sources, background_fn, backgrounds, manifest)
        hold_as_reader(out_dir)
    return out_dir


def _write_set(
    out_dir: Path,
    bank: EventBank,
    spec: SetSpec,
    cfg: SoundscapeConfig,
    sources: list[EventSource],
    background_fn: BackgroundFn,
    backgrounds: BackgroundBank | None,
    manifest: dict,
) -> None:
    """Render every clip of ``spec`` into ``out_dir`` (under the set's lock)."""
    clear_set(out_dir)
    (out_dir / "audio").mkdir(parents=True)

    maker = ClipMaker(sources, bank, cfg, background_fn, backgrounds, spec.splits)
    sr = cfg.sample_rate
    rows, names = [], []
    with (out_dir / "recipes.jsonl").open("w") as recipes:
        for k in tqdm(range(spec.n_clips), desc=f"synth {spec.name}", unit="clip"):
            recipe = maker.draw([spec.seed, k])
            mixture, truth_rows = maker.render(recipe)
            name = f"{spec.name}_{k:05d}.wav"
            save_audio(out_dir / "audio" / name, mixture, sr)
            names.append(name)
            rows.extend((name, *row) for row in truth_rows)
            recipes.write(json.dumps({"filename": name, **recipe}) + "\n")
    truth = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
    _write_labels(out_dir, truth, dict.fromkeys(names, cfg.n_samples / sr), spec.kind)
    _write_json_atomic(out_dir / "manifest.json", manifest)
    log.info("wrote %d %s clips (%d events) to %s", len(names), spec.kind, len(truth), out_dir)


def _write_json_atomic(path: Path, content: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, indent=2, sort_keys=True))
    os.replace(tmp, path)


def synthesize_dataset(
    out_root: str | PathLike,
    bank: EventBank,
    specs: Sequence[SetSpec],
    cfg: SoundscapeConfig,
    background_fn: BackgroundFn | None = None,
    backgrounds: BackgroundBank | None = None,
) -> dict[str, Path]:
    """Synthesise every set of ``specs`` into ``out_root/<spec.name>/``.

    Returns
    -------
    dict[str, Path]
        Set name -> set folder, in ``specs`` order.

    Raises
    ------
    ValueError
        Two specs share a name.
    """
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate set name(s) {duplicates}")
    seeds = [s.seed for s in specs]
    if len(set(seeds)) < len(seeds):
        log.warning("several sets share a seed (%s): their backgrounds will repeat", seeds)
    out_root = Path(out_root)
    paths = {
        spec.name: synthesize_set(out_root / spec.name, bank, spec, cfg, background_fn, backgrounds)
        for spec in specs
    }
    log.info("synthetic dataset in %s: %s", out_root, ", ".join(paths))
    return paths
