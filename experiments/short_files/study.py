"""How to score a file shorter than the training clip: a measurement on VALIDATION data.

    .venv/bin/python experiments/short_files/study.py --ckpt CKPT --split DATA/validation \\
        [--n 600] [--out experiments/short_files/results.md]

Cuts excerpts of 0.2-3.3 s around the reference events of a validation split (each excerpt
holds one event, a little before and after it, and whatever else overlaps it), scores each
with ``predict``'s padding modes — ``reflect`` (mirrored audio up to a window), ``zeros``
(digital silence: what predict did before) and ``none`` (the excerpt at its own length) —
and reports, per mode: the share of excerpts whose event class is detected, wrong classes
detected per excerpt, and event-based / segment-based F1 (sed_eval, DESED settings) on the
excerpts. Validation only: the choice of default is made here, never on test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from sed_lightning.data.audio import load_audio
from sed_lightning.data.tsv import read_strong_tsv
from sed_lightning.evaluation.metrics import sed_eval_metrics
from sed_lightning.inference import Predictor
from sed_lightning.postprocessing.events import EVENT_COLUMNS

MODES = ("reflect", "zeros", "none")


def excerpts(split: Path, n: int, sample_rate: int, seed: int = 0):
    """``(name, audio, reference rows, target class)`` for up to ``n`` events of ``split``."""
    rng = np.random.default_rng(seed)
    reference = read_strong_tsv(split / "strong.tsv")
    rows = reference.sample(frac=1.0, random_state=seed).head(n)
    cache: dict[str, np.ndarray] = {}
    for i, (_, row) in enumerate(rows.iterrows()):
        if row.filename not in cache:
            cache[row.filename] = load_audio(split / "audio" / row.filename, sample_rate)
        audio = cache[row.filename]
        duration = len(audio) / sample_rate
        start = max(0.0, row.onset - rng.uniform(0, 0.3))
        stop = min(duration, row.offset + rng.uniform(0, 0.3), start + 3.3)
        stop = max(stop, min(duration, start + 0.2))
        name = f"x{i:04d}.wav"
        inside = reference[
            (reference.filename == row.filename)
            & (reference.onset < stop)
            & (reference.offset > start)
        ]
        ref = [
            (name, max(r.onset, start) - start, min(r.offset, stop) - start, r.event_label)
            for r in inside.itertuples()
        ]
        cut = audio[int(start * sample_rate) : int(stop * sample_rate)]
        yield name, cut, ref, row.event_label


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--split", required=True, help="a split folder: audio/ and strong.tsv")
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    predictors = {m: Predictor.from_checkpoint(args.ckpt, pad=m) for m in MODES}
    sr = predictors["reflect"].sample_rate
    classes = predictors["reflect"].encoder.class_names
    items = list(excerpts(Path(args.split), args.n, sr))
    reference = pd.DataFrame([r for _, _, ref, _ in items for r in ref], columns=EVENT_COLUMNS)
    lengths = [len(a) / sr for _, a, _, _ in items]
    lines = [
        f"Checkpoint `{args.ckpt}`; {len(items)} excerpts of {min(lengths):.1f}-"
        f"{max(lengths):.1f} s (median {np.median(lengths):.1f} s) from `{args.split}`.",
        "",
        "| pad | event class detected | wrong classes per excerpt | event-F1 | segment-F1 |",
        "|---|---|---|---|---|",
    ]
    for mode, predictor in predictors.items():
        found, wrong, tables = 0, 0, []
        for name, audio, ref, target in items:
            events = predictor.events(
                {name: predictor.frame_scores(audio)}, {name: len(audio) / sr}
            )
            detected = set(events.event_label)
            found += target in detected
            wrong += len(detected - {r[3] for r in ref})
            tables.append(events)
        estimated = pd.concat(tables, ignore_index=True)
        f1 = sed_eval_metrics(reference, estimated, classes, [n for n, *_ in items])
        lines.append(
            f"| {mode} | {found / len(items):.1%} | {wrong / len(items):.2f} | "
            f"{f1['event_f1']:.3f} | {f1['segment_f1']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return text


if __name__ == "__main__":
    main()
