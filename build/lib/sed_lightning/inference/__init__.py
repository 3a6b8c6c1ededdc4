"""Running a trained detector: windows over audio of any length, the predict loop over
archives (streaming, resumable, distributed), and pictures of what it found.

- :mod:`~sed_lightning.inference.windows`: sliding windows, overlap-add, streamed reading.
- :mod:`~sed_lightning.inference.predictor`: :class:`Predictor` (checkpoint -> scores).
- :mod:`~sed_lightning.inference.files`: file listing, fingerprints, the DataLoader dataset.
- :mod:`~sed_lightning.inference.module`: the ``predict_step``.
- :mod:`~sed_lightning.inference.journal` and :mod:`~sed_lightning.inference.writer`:
  per-file output as files finish, resume, ``failed.tsv``.
- :mod:`~sed_lightning.inference.plot`: spectrogram + scores + event roll PNG.
"""

from sed_lightning.inference.files import AudioFile, audio_files
from sed_lightning.inference.predictor import Predictor

__all__ = ["AudioFile", "Predictor", "audio_files"]
