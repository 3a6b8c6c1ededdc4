"""Detect events in audio files or whole archives.

    python -m sed_lightning.predict ckpt=PATH audio=FILE_OR_DIR out=FILE.tsv \\
        [scores=DIR] [plot=DIR] [trainer=gpu trainer.devices=4 trainer.strategy=ddp]
    python -m sed_lightning.predict 'ckpt=[A.ckpt,B.ckpt,C.ckpt]' \\
        postprocess_file=ENSEMBLE_DIR/postprocess_tuned.yaml audio=... out=...

Several checkpoints: their ensemble (the mean of their frame probabilities, see
:mod:`sed_lightning.inference.ensemble`), decoded by ``postprocess_file`` (a decoder
tuned on the ensemble's validation scores by ``sed-tools ensemble``); without
it, the first checkpoint's decoder. ``postprocess.*`` overrides win over both.

Any length, any sample rate (resampled), mono or multichannel (downmixed). Files are read
by DataLoader workers and scored by ``trainer.predict`` in overlapping windows; each file's
events are recorded as soon as it is done, so running the same command again after a stop
skips the files already done (same name, size and modification time) and finishes the rest.

Cost (``cost`` config group, as in training; ``cost=none``: off): ``<out stem>.cost.json``
beside ``out`` (``predictions.tsv`` -> ``predictions.cost.json``) and a ``cost:`` log line:
the job's wall time and energy (kWh, CodeCarbon's offline tracker, with the method that gave
it), the hours of audio scored and the energy per hour of audio, MACs per 10 s clip and the
parameters (:mod:`sed_lightning.training.cost`). Only the files scored by this job count.

Exit status: 0 when every file was scored; 3 when some could not be read (each is listed
with its reason in ``failed.tsv`` beside ``out``; every other file still has its events);
1 on a usage or checkpoint error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from sed_lightning.common import exit_error
from sed_lightning.config import register_resolvers
from sed_lightning.inference import journal
from sed_lightning.inference.files import AudioFileDataset, audio_files, collate_files
from sed_lightning.inference.module import PredictionModule
from sed_lightning.inference.predictor import Predictor
from sed_lightning.inference.writer import ArchiveWriter, write_outputs
from sed_lightning.postprocessing import decoder_settings
from sed_lightning.training.cost import RunCost

log = logging.getLogger(__name__)
EXIT_SOME_FAILED = 3
register_resolvers()  # the trainer presets use ${cpu_precision:}


def checkpoint_paths(ckpt: Any) -> list[Path]:
    """``ckpt``: one path, or a list of them (an ensemble); each must exist."""
    paths = [Path(ckpt)] if isinstance(ckpt, (str, Path)) else [Path(p) for p in ckpt]
    if not paths:
        raise ValueError("ckpt: an empty list")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
    return paths


def _one_or_list(values: list, one: bool) -> Any:
    return values[0] if one else values


def decoder_overrides(cfg: DictConfig) -> dict[str, Any]:
    """The decoder settings that replace the checkpoint's: ``postprocess_file`` (a YAML
    such as a tuning's ``postprocess_tuned.yaml``), then each ``postprocess.*`` not null."""
    post: dict[str, Any] = {}
    if cfg.get("postprocess_file"):
        path = Path(cfg.postprocess_file)
        if not path.is_file():
            raise FileNotFoundError(f"postprocess_file: {path}: no such file")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"postprocess_file: {path}: not a mapping of decoder settings")
        post.update(decoder_settings(loaded))
    overrides = OmegaConf.to_container(cfg.postprocess)
    post.update({k: v for k, v in overrides.items() if v is not None})
    return post


def predict(cfg: DictConfig) -> int:
    """Run the whole prediction; returns the number of files that failed."""
    ckpts = checkpoint_paths(cfg.ckpt)
    post = decoder_overrides(cfg)
    predictor = Predictor.from_checkpoint(
        ckpts if len(ckpts) > 1 else ckpts[0],
        postprocess=post,
        hop=cfg.hop,
        pad=cfg.pad,
        batch_size=cfg.window_batch,
    )
    files = audio_files(cfg.audio)
    out = Path(cfg.out)
    folder = journal.journal_dir(out)
    stats = [p.stat() for p in ckpts]
    one = len(ckpts) == 1  # one checkpoint: the journal keeps the settings it always had
    journal.prepare(
        folder,
        {
            "ckpt": _one_or_list([str(p.resolve()) for p in ckpts], one),
            "ckpt_size": _one_or_list([st.st_size for st in stats], one),
            "ckpt_mtime_ns": _one_or_list([st.st_mtime_ns for st in stats], one),
            "threshold": predictor.postprocessor.threshold,  # resolved per class
            "median_window": predictor.postprocessor.median_window,
            "min_duration": predictor.postprocessor.min_duration,
            "hop_frames": predictor.hop_frames,
            "pad": predictor.pad,
            "scores": cfg.scores,
        },
    )
    done = journal.read(folder)
    todo = [f for f in files if f.key not in done]
    if len(todo) < len(files):
        log.info("%d of %d file(s) done earlier: skipped", len(files) - len(todo), len(files))
    log.info("predicting %d file(s) with %s", len(todo), ", ".join(map(str, ckpts)))
    if todo:
        dataset = AudioFileDataset(
            todo, predictor.sample_rate, predictor.plan, predictor.pad, cfg.preload_seconds
        )
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            collate_fn=collate_files,
            shuffle=False,
        )
        writer = ArchiveWriter(predictor, folder, len(todo), cfg.scores, cfg.plot, cfg.plot_max)
        trainer = instantiate(cfg.trainer, callbacks=[writer])
        cost = RunCost(cfg.get("cost"), trainer.is_global_zero, out.parent)
        cost.count_network(predictor.module, predictor.sample_rate)
        with cost.phase("predict"):
            trainer.predict(PredictionModule(predictor), loader, return_predictions=False)
        trainer.strategy.barrier()
        if not trainer.is_global_zero:
            return 0
        write_cost(cost, out, journal.read(folder), todo)
    events, failed = journal.assemble(journal.read(folder), files)
    failed_path = write_outputs(out, events, failed)
    log.info("%d events from %d file(s) written to %s", len(events), len(files) - len(failed), out)
    if cfg.scores:
        log.info("frame scores in %s", cfg.scores)
    if cfg.plot:
        log.info("plots in %s", cfg.plot)
    if failed:
        log.warning("%d file(s) could not be scored: listed in %s", len(failed), failed_path)
    return len(failed)


def write_cost(cost: RunCost, out: Path, records: dict, todo: list) -> None:
    """``<out stem>.cost.json``: :class:`RunCost` with the hours of audio this job scored
    (its files' journal records) and the energy per hour of audio; and a ``cost:`` log line."""
    if not cost.enabled:
        return
    seconds = sum(float(records[f.key].get("duration") or 0.0) for f in todo if f.key in records)
    phase = cost.phases.get("predict", {})
    kwh = phase.get("energy_kwh")
    cost.extra = {
        "files": len(todo),
        "audio_hours": seconds / 3600,
        "kwh_per_audio_hour": kwh / (seconds / 3600) if kwh is not None and seconds else None,
        "realtime_factor": seconds / phase["wall_s"] if phase.get("wall_s") else None,
    }
    path = cost.write(out.with_suffix(".cost.json"))
    per_hour = cost.extra["kwh_per_audio_hour"]
    log.info(
        "%s; %.3g h of audio, %s kWh per hour of audio -> %s",
        cost.summary(),
        cost.extra["audio_hours"],
        f"{per_hour:.3g}" if per_hour is not None else "n/a",
        path,
    )


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        n_failed = predict(cfg)
    except (FileNotFoundError, ValueError) as err:  # bad paths or checkpoint: no traceback
        raise exit_error("predict", err) from None
    if n_failed:
        raise SystemExit(EXIT_SOME_FAILED)


if __name__ == "__main__":
    main()
