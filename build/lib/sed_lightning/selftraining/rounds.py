"""Self-training rounds: train, pseudo-label the unlabeled set, add it to the weak set, retrain.

Round 0 is the ordinary training. Round ``k >= 1`` pseudo-labels the unlabeled set with
round ``k-1``'s best checkpoint (clip probabilities binarized with per-class thresholds) and
trains on the weak set grown by those clips (W' = W ∪ U; a clip admitted once stays, its
labels refreshed by the newest model). Everything goes under the run dir::

    rounds.json                    per-round test metrics, deltas, weak-set sizes, lineage
    rounds/round_K/                a whole run's outputs (metrics.json, checkpoints/, ...)
    rounds/round_K/pseudo_labels.tsv   (K >= 1) DESED weak format
    rounds/round_K/lineage.json        which checkpoint labelled what, with which thresholds

Starting the same command again in the same run dir (``hydra.run.dir=<run dir>``) skips the
finished rounds and resumes the unfinished one from its ``last.ckpt`` if it has one, with the
pseudo-labels it started with.

Under DDP (``trainer=ddp``, torchrun, SLURM) every process runs the rounds, but only global
rank 0 labels and writes ``pseudo_labels.tsv``, ``lineage.json`` and ``rounds.json``; the
other processes wait for it (a barrier once the process group exists, else until the round's
``lineage.json`` appears) and then read the same files.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from lightning.fabric.utilities.rank_zero import _get_rank
from omegaconf import DictConfig, OmegaConf, open_dict

from sed_lightning.common import HEADLINE_METRICS, plain
from sed_lightning.data.tsv import write_durations_tsv, write_weak_tsv
from sed_lightning.inference import Predictor
from sed_lightning.selftraining.pseudo_labels import (
    class_counts,
    class_thresholds,
    clip_scores,
    pseudo_label_table,
)
from sed_lightning.training.build import build_datamodule

log = logging.getLogger(__name__)

PSEUDO_SET = "pseudo_weak"


class RunResult(Protocol):
    """What one round's run gives back (:class:`sed_lightning.train.RunResult` is one):
    its metrics and its best checkpoint (``""``: none). Declared here, not imported, so that
    ``train`` can import this module without an import circle."""

    metrics: dict[str, float]
    best_checkpoint: str


RunFn = Callable[[DictConfig], RunResult]
# How long a process other than rank 0 waits for rank 0's pseudo-labels without a process group.
WAIT_S = float(os.environ.get("SED_SELFTRAINING_WAIT_S", 3600))


def global_rank() -> int:
    """This process's global rank: the process group's, else the launcher's environment
    (``RANK`` / ``LOCAL_RANK`` / ``SLURM_PROCID``: set before any trainer started), else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _get_rank() or 0


def barrier() -> None:
    """Wait for every process (only when a process group with several processes exists)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def write_json(path: Path, value: Any) -> Path:
    """``value`` as indented JSON, written atomically (a kill or a reader never sees half)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)
    return path


def wait_for_lineage(path: Path, ckpt: str, timeout: float | None = None) -> dict[str, Any]:
    """Poll until rank 0 has written ``path`` for checkpoint ``ckpt`` (not a stale one of an
    earlier attempt); at most ``timeout`` s (default ``WAIT_S``). Returns the record."""
    deadline = time.monotonic() + (WAIT_S if timeout is None else timeout)
    while True:
        if path.exists():
            lineage = json.loads(path.read_text())  # written atomically: never half a file
            if lineage.get("labelled_by") == ckpt:
                return lineage
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank {global_rank()}: rank 0 never wrote {path} for {ckpt}")
        time.sleep(0.2)


def round_dir(run_dir: Path, k: int) -> Path:
    return run_dir / "rounds" / f"round_{k}"


def load_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "rounds.json"
    return json.loads(path.read_text()) if path.exists() else {"rounds": []}


def save_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Write ``rounds.json`` (global rank 0 only; the others keep the summary in memory)."""
    path = run_dir / "rounds.json"
    if global_rank() == 0:
        write_json(path, summary)
    return path


def with_deltas(entry: dict[str, Any], previous: dict[str, Any] | None, first: dict[str, Any]):
    """Add ``delta_prev`` / ``delta_round0`` of the headline test metrics to ``entry``."""
    for name, ref in (("delta_prev", previous), ("delta_round0", first)):
        if ref is None:
            continue
        entry[name] = {
            k: entry["test"][k] - ref["test"][k]
            for k in entry["test"]
            if k in ref["test"] and k.split("/")[-1] in HEADLINE_METRICS
        }
    return entry


def round_config(cfg: DictConfig, k: int, out: Path, extra: dict[str, Any]) -> DictConfig:
    """The config of round ``k``: its own output dir, plus ``extra`` data/init settings."""
    st = cfg.self_training
    rcfg = copy.deepcopy(cfg)
    with open_dict(rcfg):
        rcfg.paths.output_dir = str(out)
        if k >= 1 and st.get("max_epochs"):
            rcfg.trainer.max_epochs = st.max_epochs
        last = out / "checkpoints" / "last.ckpt"
        rcfg.ckpt_path = "last" if last.exists() else None  # resume an interrupted round
        for key, value in extra.items():
            if isinstance(value, dict) and OmegaConf.select(rcfg, key) is None:
                OmegaConf.update(rcfg, key, {}, merge=False)  # merge into typed nodes
            OmegaConf.update(rcfg, key, value, merge=isinstance(value, dict))
    return rcfg


def pseudo_label(cfg: DictConfig, k: int, out: Path, previous: dict[str, Any]) -> dict[str, Any]:
    """The lineage record of round ``k``'s pseudo-labels (``out/lineage.json``).

    Global rank 0 labels the unlabeled set with the previous round's best checkpoint and
    writes the round's files (:func:`write_pseudo_labels`), unless an interrupted attempt of
    this round already did with that checkpoint (the resumed round keeps its data). The other
    processes wait for rank 0 and read its ``lineage.json``.
    """
    ckpt = previous["best_checkpoint"]
    path = out / "lineage.json"
    if global_rank() == 0:
        lineage = json.loads(path.read_text()) if path.exists() else None
        if lineage is not None and lineage.get("labelled_by") == ckpt:
            log.info("round %d: pseudo-labels of an earlier attempt reused (%s)", k, path)
        else:
            lineage = write_pseudo_labels(cfg, k, out, ckpt, previous)
        barrier()
        return lineage
    barrier()  # rank 0 writes meanwhile
    # without a process group yet (this process was started after rank 0 labelled, or by
    # torchrun beside it) the file itself is the signal
    lineage = wait_for_lineage(path, ckpt)
    log.info(
        "round %d: rank %d reads the %d pseudo-labelled clips rank 0 wrote (%s)",
        k,
        global_rank(),
        lineage["n_pseudo_clips"],
        path,
    )
    return lineage


def write_pseudo_labels(
    cfg: DictConfig, k: int, out: Path, ckpt: str, previous: dict[str, Any]
) -> dict[str, Any]:
    """Label the unlabeled set with ``ckpt``; write ``pseudo_labels.tsv``,
    ``pseudo_durations.tsv`` and, last, ``lineage.json``. Returns the lineage record."""
    st = cfg.self_training
    if not ckpt or not Path(ckpt).exists():
        raise FileNotFoundError(
            f"round {k - 1} has no best checkpoint to pseudo-label with ({ckpt!r})"
        )
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu"
    module = Predictor.from_checkpoint(ckpt, device=device).module
    datamodule = build_datamodule(cfg, module)  # the labelling model's frame grid
    datamodule.prepare_data()
    dataset = datamodule.dataset(st.unlabeled_set)
    names, scores = clip_scores(module, dataset, cfg.data.eval_batch_size, device)
    class_names = list(cfg.data.class_names)
    thresholds = class_thresholds(st.thresholds, class_names)
    admitted = previous["pseudo_clips"] if st.accumulate else []
    table = pseudo_label_table(names, scores, class_names, thresholds, admitted, st.drop_empty)
    out.mkdir(parents=True, exist_ok=True)
    labels_path, durations_path = out / "pseudo_labels.tsv", out / "pseudo_durations.tsv"
    write_weak_tsv(table, labels_path)
    write_durations_tsv({f: dataset.durations[f] for f in table["filename"]}, durations_path)
    lineage = {
        "round": k,
        "labelled_by": ckpt,
        "labelled_set": st.unlabeled_set,
        "thresholds": dict(zip(class_names, thresholds, strict=True)),
        "drop_empty": bool(st.drop_empty),
        "accumulate": bool(st.accumulate),
        "n_unlabeled": len(names),
        "n_pseudo_clips": len(table),
        "n_empty_kept": int((table["event_labels"].map(len) == 0).sum()),
        "class_counts": class_counts(table, class_names),
        "pseudo_labels": str(labels_path),
        "clips": list(table["filename"]),
        "audio_dir": datamodule.sources[st.unlabeled_set].audio_dir,
    }
    write_json(out / "lineage.json", lineage)  # last: its presence means the round's files are
    log.info(
        "round %d: %d of %d unlabeled clips pseudo-labelled by %s -> %s",
        k,
        len(table),
        len(names),
        ckpt,
        labels_path,
    )
    return lineage


def pseudo_data(cfg: DictConfig, lineage: dict[str, Any]) -> dict[str, Any]:
    """Config updates adding the pseudo-labelled clips to the training sets as weak clips."""
    sets = OmegaConf.to_container(cfg.data.sets, resolve=True) if cfg.data.sets else {}
    sets[PSEUDO_SET] = {
        "kind": "weak",
        "audio_dir": lineage["audio_dir"],
        "labels": lineage["pseudo_labels"],
        "durations": str(Path(lineage["pseudo_labels"]).with_name("pseudo_durations.tsv")),
    }
    train_sets = [s for s in cfg.data.train_sets if s != PSEUDO_SET] + [PSEUDO_SET]
    return {"data.sets": sets, "data.train_sets": train_sets}


def run_rounds(cfg: DictConfig, run_fn: RunFn) -> dict[str, float]:
    """Round 0 and ``cfg.self_training.rounds`` self-training rounds; returns the last metrics.

    ``run_fn`` trains and tests one round (:func:`sed_lightning.train.run`): its metrics and
    its best checkpoint (from the trainer's checkpoint callbacks) go into ``rounds.json``.
    """
    st = cfg.self_training
    if st.init not in ("continue", "scratch"):
        raise ValueError(f"self_training.init must be 'continue' or 'scratch', got {st.init!r}")
    run_dir = Path(cfg.paths.output_dir)
    summary = load_summary(run_dir)
    summary.update(n_rounds=int(st.rounds), thresholds=plain(st.thresholds))
    done = {entry["round"]: entry for entry in summary["rounds"]}
    metrics: dict[str, float] = {}
    for k in range(int(st.rounds) + 1):
        if k in done:
            log.info("round %d finished earlier (%s): skipped", k, done[k]["output_dir"])
            continue
        out = round_dir(run_dir, k)
        extra: dict[str, Any] = {}
        lineage = None
        if k >= 1:
            previous = done[k - 1]
            lineage = pseudo_label(cfg, k, out, previous)
            extra = pseudo_data(cfg, lineage)
            if st.init == "continue":
                extra["init_from"] = previous["best_checkpoint"]
        log.info("self-training round %d of %d -> %s", k, int(st.rounds), out)
        result = run_fn(round_config(cfg, k, out, extra))
        metrics = result.metrics
        entry = round_entry(k, out, result, lineage, extra.get("init_from"))
        first = done.get(0, entry)
        done[k] = with_deltas(entry, done.get(k - 1), first if k else None)
        summary["rounds"] = [done[i] for i in sorted(done)]
        log.info("round %d done; summary in %s", k, save_summary(run_dir, summary))
    return metrics


def round_entry(
    k: int, out: Path, result: RunResult, lineage: dict | None, init_from: str | None
) -> dict[str, Any]:
    """The ``rounds.json`` record of a finished round."""
    n_weak = count_clips(out, "weak")
    entry: dict[str, Any] = {
        "round": k,
        "output_dir": str(out),
        "best_checkpoint": result.best_checkpoint,
        "n_weak_clips": n_weak,
        "n_strong_clips": count_clips(out, "strong"),
        "n_pseudo_clips": lineage["n_pseudo_clips"] if lineage else 0,
        "pseudo_clips": lineage["clips"] if lineage else [],
        "labelled_by": lineage["labelled_by"] if lineage else None,
        "init_from": init_from,
        "test": {k2: v for k2, v in result.metrics.items() if k2.startswith("test/")},
    }
    return entry


def count_clips(out: Path, kind: str) -> int:
    """Training clips of ``kind`` a finished round used (from its ``data_sets.json``)."""
    path = out / "data_sets.json"
    if not path.exists():
        return 0
    sets = json.loads(path.read_text())
    return sum(s["n_clips"] for s in sets.values() if s["training"] and s["kind"] == kind)
