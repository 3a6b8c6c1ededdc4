"""The prediction step for ``trainer.predict``: batches of files in, frame scores out."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np

from sed_lightning.data.audio import AudioError
from sed_lightning.inference.files import AudioFile, FileItem
from sed_lightning.inference.predictor import Predictor
from sed_lightning.inference.windows import AudioReader, OverlapAdd


@dataclass
class FileResult:
    """One file's frame scores ``(n_frames, n_classes)`` and duration, or its error."""

    file: AudioFile
    duration: float
    scores: np.ndarray | None = None
    error: str | None = None


class PredictionModule(L.LightningModule):
    """Wraps a :class:`Predictor` so Lightning places, distributes and loops it.

    ``predict_step`` gets a list of :class:`FileItem`: the windows of every file read by
    the workers are scored together (batching across files), longer files are streamed
    from disk window batch by window batch, and frame scores are merged per file.
    A file that fails to read returns its error instead of stopping the run.
    """

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.predictor = predictor
        self.net = predictor.module  # a submodule: Lightning moves it to the device

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # numpy windows: the predictor moves each window batch itself

    def predict_step(self, batch: list[FileItem], batch_idx: int) -> list[FileResult]:
        sr = self.predictor.sample_rate
        loaded = [it for it in batch if it.error is None and it.windows is not None]
        scores = iter(self.predictor.run_windows([w for it in loaded for w in it.windows]))
        merged: dict[int, np.ndarray] = {}
        for it in loaded:
            plan = self.predictor.plan(it.n_samples)
            total = OverlapAdd(plan.n_frames, self.predictor.encoder.n_classes)
            for start in it.starts:
                total.add(start, next(scores))
            merged[id(it)] = total.result()
        results = []
        for it in batch:
            if it.error is not None:
                results.append(FileResult(it.file, 0.0, error=it.error))
            elif id(it) in merged:
                results.append(FileResult(it.file, it.n_samples / sr, merged[id(it)]))
            else:
                results.append(self._stream(it))
        return results

    def _stream(self, item: FileItem) -> FileResult:
        """Score a long file read forward from disk (memory bounded by the windows)."""
        reader = None
        try:
            reader = AudioReader(item.file.path, self.predictor.sample_rate)
            scores = self.predictor.scores_from_reader(reader, item.n_samples)
            return FileResult(item.file, item.n_samples / self.predictor.sample_rate, scores)
        except (AudioError, RuntimeError, ValueError) as err:
            message = str(err).replace(str(item.file.path), item.file.name)
            return FileResult(item.file, 0.0, error=message)
        finally:
            if reader is not None:
                reader.close()
