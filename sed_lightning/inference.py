"""Inference from a checkpoint on audio of any length, rate and channel count."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from sed_lightning.data.audio import load_audio
from sed_lightning.data.datasets import AUDIO_SUFFIXES
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.postprocessing import PostProcessor
from sed_lightning.training.build import build_module, label_encoder
from sed_lightning.training.checkpoints import upgrade_checkpoint
from sed_lightning.training.module import SEDModule

log = logging.getLogger(__name__)


def audio_files(path: str | Path) -> list[Path]:
    """``path`` itself, or the audio files under a folder (recursively, sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"audio path {path} does not exist")
    return [path]


class Predictor:
    """A trained model with its front end, frame grid and post-processing.

    Audio is resampled to the training rate and downmixed; any length is cut into
    chunks of exactly ``n_frames * frame_hop`` seconds (so frames stay on one grid across
    chunks), the last chunk zero-padded, and the frame scores trimmed to the audio length.
    """

    def __init__(
        self,
        module: SEDModule,
        encoder: LabelEncoder,
        sample_rate: int,
        postprocess: Mapping[str, Any],
    ) -> None:
        self.module = module.eval()
        self.encoder = encoder
        self.sample_rate = sample_rate
        self.postprocessor = PostProcessor(
            encoder.class_names, encoder.frame_hop, **dict(postprocess)
        )
        self.chunk_samples = int(round(encoder.n_frames * encoder.frame_hop * sample_rate))

    @classmethod
    def from_checkpoint(
        cls,
        ckpt_path: str | Path,
        postprocess: Mapping[str, Any] | None = None,
        device: str = "cpu",
    ) -> Predictor:
        # weights_only: tensors and plain containers only, never pickled code.
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if "sed_config" not in ckpt:
            raise ValueError(f"{ckpt_path} is not a sed_lightning checkpoint (no sed_config)")
        cfg = OmegaConf.create(ckpt["sed_config"])
        module = build_module(cfg)
        upgrade_checkpoint(ckpt, module, source=str(ckpt_path))
        module.load_state_dict(ckpt["state_dict"])
        module.to(device)
        post = OmegaConf.to_container(cfg.postprocess)
        post.update({k: v for k, v in dict(postprocess or {}).items() if v is not None})
        return cls(module, label_encoder(cfg, module), cfg.data.sample_rate, post)

    @torch.no_grad()
    def frame_scores(self, audio: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Frame probabilities ``(n_frames, n_classes)`` for a mono waveform at ``sample_rate``."""
        n_chunks = max(1, int(np.ceil(len(audio) / self.chunk_samples)))
        padded = np.zeros(n_chunks * self.chunk_samples, dtype=np.float32)
        padded[: len(audio)] = audio
        chunks = torch.from_numpy(padded).view(n_chunks, self.chunk_samples)
        device = next(self.module.parameters()).device
        outs = [
            self.module(chunks[i : i + batch_size].to(device)).strong.float().cpu()
            for i in range(0, n_chunks, batch_size)
        ]
        scores = torch.cat(outs).permute(0, 2, 1).reshape(-1, self.encoder.n_classes).numpy()
        n_frames = int(np.ceil(len(audio) / self.sample_rate / self.encoder.frame_hop))
        return scores[: max(1, n_frames)]

    def scores_for_files(
        self, files: Iterable[Path]
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Frame scores and durations (seconds) by file name for each audio file."""
        scores, durations = {}, {}
        for path in files:
            audio = load_audio(path, sample_rate=self.sample_rate)
            scores[path.name] = self.frame_scores(audio)
            durations[path.name] = len(audio) / self.sample_rate
        return scores, durations

    def events(
        self, scores_by_file: Mapping[str, np.ndarray], durations: Mapping[str, float]
    ) -> pd.DataFrame:
        """Post-processed event table (DESED strong format), offsets within each file."""
        return self.postprocessor(scores_by_file, durations)
