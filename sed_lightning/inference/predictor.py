"""A trained detector from a checkpoint: front end, network, frame grid, post-processing."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from sed_lightning.data.audio import resampled_length
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.inference.ensemble import MeanOfModules
from sed_lightning.inference.windows import (
    PAD_MODES,
    ArrayReader,
    AudioReader,
    OverlapAdd,
    WindowPlan,
    iter_windows,
)
from sed_lightning.postprocessing import PostProcessor, decoder_settings
from sed_lightning.training.build import build_module, label_encoder
from sed_lightning.training.checkpoints import read_checkpoint, upgrade_checkpoint
from sed_lightning.training.module import SEDModule

log = logging.getLogger(__name__)


class Predictor:
    """A trained model with its front end, frame grid, windowing and post-processing.

    Audio (resampled to the training rate and downmixed) of any length is scored in
    windows of the training clip's length that start every ``hop`` seconds (rounded to
    whole frames; default half a window); frame scores are averaged where windows overlap
    (:mod:`sed_lightning.inference.windows`). A file shorter than a window, and the last
    window of a longer one, are padded as ``pad`` says: ``reflect`` (mirrored audio),
    ``zeros``, or ``none`` (scored at its own length).

    Args:
        module: the trained module (put in eval mode).
        encoder: the model's frame grid for one training clip.
        sample_rate: the training sample rate.
        postprocess: :class:`~sed_lightning.postprocessing.PostProcessor` settings (a
            ``tune`` key, as in a run's ``postprocess`` node, is ignored).
        hop: seconds between window starts; ``None``: half a window.
        pad: ``reflect`` | ``zeros`` | ``none``.
        batch_size: windows per forward pass.
    """

    def __init__(
        self,
        module: SEDModule | MeanOfModules,
        encoder: LabelEncoder,
        sample_rate: int,
        postprocess: Mapping[str, Any],
        hop: float | None = None,
        pad: str = "reflect",
        batch_size: int = 16,
    ) -> None:
        if pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
        self.module = module.eval()
        self.encoder = encoder
        self.sample_rate = sample_rate
        self.postprocessor = PostProcessor(
            encoder.class_names, encoder.frame_hop, **decoder_settings(postprocess)
        )
        self.frame_samples = int(round(encoder.frame_hop * sample_rate))
        hop_frames = encoder.n_frames // 2 if hop is None else round(hop / encoder.frame_hop)
        self.hop_frames = min(max(1, hop_frames), encoder.n_frames)
        self.pad = pad
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(
        cls,
        ckpt_path: str | Path | Sequence[str | Path],
        postprocess: Mapping[str, Any] | None = None,
        device: str = "cpu",
        **options: Any,
    ) -> Predictor:
        """Rebuild the run's pipeline from a checkpoint; ``postprocess`` entries that are not
        ``None`` override the run's; ``options`` go to the constructor (hop, pad, batch_size).

        Several checkpoints (a list): their ensemble, the mean of their frame probabilities
        (:class:`~sed_lightning.inference.ensemble.MeanOfModules`); they must share the
        sample rate, clip length, frame grid and classes. The post-processing is the first
        one's unless ``postprocess`` says otherwise (pass the decoder tuned on the
        ensemble's validation scores: ``sed-tools ensemble``)."""
        paths = [ckpt_path] if isinstance(ckpt_path, (str, Path)) else list(ckpt_path)
        if not paths:
            raise ValueError("no checkpoint given")
        loaded = [_load_checkpoint(p) for p in paths]
        cfg, module = loaded[0]
        encoder = label_encoder(cfg, module)
        for path, (other_cfg, other) in zip(paths[1:], loaded[1:], strict=True):
            other_encoder = label_encoder(other_cfg, other)
            same = (
                other_cfg.data.sample_rate == cfg.data.sample_rate
                and other_encoder.class_names == encoder.class_names
                and other_encoder.n_frames == encoder.n_frames
                and abs(other_encoder.frame_hop - encoder.frame_hop) < 1e-9
            )
            if not same:
                raise ValueError(
                    f"{path}: another sample rate, clip, frame grid or class list than "
                    f"{paths[0]} (ensemble members must come from the same experiment)"
                )
        net = module if len(loaded) == 1 else MeanOfModules([m for _, m in loaded])
        net.to(device)
        post = OmegaConf.to_container(cfg.postprocess)
        post.update({k: v for k, v in dict(postprocess or {}).items() if v is not None})
        return cls(net, encoder, cfg.data.sample_rate, post, **options)

    def plan(self, n_samples: int) -> WindowPlan:
        """The windows of a file of ``n_samples`` samples (at ``sample_rate``)."""
        return WindowPlan(n_samples, self.frame_samples, self.encoder.n_frames, self.hop_frames)

    @torch.no_grad()
    def run_windows(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        """Frame scores ``(n_frames, n_classes)`` of each window (same-length windows are
        batched)."""
        device = next(self.module.parameters()).device
        out: list[np.ndarray] = []
        for i in range(0, len(windows), self.batch_size):
            chunk = windows[i : i + self.batch_size]
            if all(len(w) == len(chunk[0]) for w in chunk):
                audio = torch.from_numpy(np.stack(chunk)).to(device)
                strong = self.module(audio).strong.float().transpose(1, 2).cpu().numpy()
                out.extend(strong)
            else:
                out.extend(self.run_windows([w])[0] for w in chunk)
        return out

    def scores_from_reader(self, reader: ArrayReader | AudioReader, n_samples: int) -> np.ndarray:
        """Frame scores ``(n_frames, n_classes)`` of audio read forward from ``reader``,
        ``batch_size`` windows at a time (memory bounded by the windows, not the file)."""
        plan = self.plan(n_samples)
        merged = OverlapAdd(plan.n_frames, self.encoder.n_classes)
        pending: list[tuple[int, np.ndarray]] = []

        def flush() -> None:
            scores = self.run_windows([w for _, w in pending])
            for (start, _), window_scores in zip(pending, scores, strict=True):
                merged.add(start, window_scores)
            pending.clear()

        for item in iter_windows(reader, plan, self.pad):
            pending.append(item)
            if len(pending) == self.batch_size:
                flush()
        flush()
        return merged.result()

    def frame_scores(self, audio: np.ndarray) -> np.ndarray:
        """Frame probabilities ``(n_frames, n_classes)`` for a mono waveform at ``sample_rate``."""
        return self.scores_from_reader(ArrayReader(audio), len(audio))

    def file_scores(self, path: str | Path) -> tuple[np.ndarray, float]:
        """Frame scores and duration (seconds) of an audio file, streamed from disk."""
        reader = AudioReader(path, self.sample_rate)
        try:
            n_samples = resampled_length(reader.file.frames, reader.file_rate, self.sample_rate)
            scores = self.scores_from_reader(reader, n_samples)
        finally:
            reader.close()
        return scores, n_samples / self.sample_rate

    def scores_for_files(
        self, files: Iterable[Path]
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Frame scores and durations (seconds) by file name for each audio file."""
        scores, durations = {}, {}
        for path in files:
            scores[path.name], durations[path.name] = self.file_scores(path)
        return scores, durations

    def events(
        self, scores_by_file: Mapping[str, np.ndarray], durations: Mapping[str, float]
    ) -> pd.DataFrame:
        """Post-processed event table (DESED strong format), offsets within each file."""
        return self.postprocessor(scores_by_file, durations)


def _load_checkpoint(ckpt_path: str | Path) -> tuple[Any, SEDModule]:
    """A run's config and module, rebuilt from its checkpoint."""
    # tensors and plain containers only, never pickled code (a ConfigError naming the file)
    ckpt = read_checkpoint(ckpt_path, "ckpt")
    if not isinstance(ckpt, dict) or "sed_config" not in ckpt:
        raise ValueError(f"{ckpt_path} is not a sed_lightning checkpoint (no sed_config)")
    cfg = OmegaConf.create(ckpt["sed_config"])
    module = build_module(cfg)
    upgrade_checkpoint(ckpt, module, source=str(ckpt_path))
    module.load_state_dict(ckpt["state_dict"])
    return cfg, module
