"""Detect events in audio files: ``python -m sed_lightning.predict ckpt=PATH audio=FILE_OR_DIR out=FILE.tsv``.

Any length, any sample rate (resampled), mono or multichannel (downmixed).
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from sed_lightning.data.tsv import write_strong_tsv
from sed_lightning.evaluation.scores import scores_to_dataframes, write_scores
from sed_lightning.inference import Predictor, audio_files

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    predictor = Predictor.from_checkpoint(cfg.ckpt, postprocess=cfg.postprocess, device=cfg.device)
    files = audio_files(cfg.audio)
    log.info("predicting %d file(s) with %s", len(files), cfg.ckpt)
    scores, durations = predictor.scores_for_files(files)
    events = predictor.events(scores, durations)
    write_strong_tsv(events, cfg.out)
    log.info("%d events written to %s", len(events), cfg.out)
    if cfg.scores:
        enc = predictor.encoder
        write_scores(scores_to_dataframes(scores, enc.frame_hop, enc.class_names), cfg.scores)
        log.info("frame scores written to %s", cfg.scores)


if __name__ == "__main__":
    main()
