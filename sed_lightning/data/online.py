"""Soundscapes made on the fly: training clips rendered anew every epoch.

Clip ``index`` of epoch ``epoch`` is drawn from the streams of ``[seed, epoch, index]``
(:func:`~.recipes.clip_streams`), so a run is deterministic however many DataLoader
workers render it, and any training clip can be rendered again from its recipe
(:func:`rerender`)::

    sed-tools rerender RUN_DIR SET EPOCH INDEX OUT.wav

Each rendered clip's recipe (sources, onsets, EBRs, background file and offset,
variations) is appended to ``<run dir>/recipes/<set>/epoch<E>.<pid>.jsonl``.
Validation and test sets stay fixed files (:func:`~.synthesis.synthesize_set`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from sed_lightning.data.audio import save_audio
from sed_lightning.data.batch import clip_item
from sed_lightning.data.builders import SoundscapeBuilder
from sed_lightning.data.labels import LabelEncoder
from sed_lightning.data.recipes import ClipMaker

__all__ = ["BUILDER_FILE", "OnlineSoundscapes", "rerender"]

#: ``<run dir>/recipes/<this>``: the builder's settings, to make any clip again.
BUILDER_FILE = "builder.json"


class OnlineSoundscapes(Dataset):
    """``n_clips`` training soundscapes of one kind, new ones every epoch.

    The epoch lives in shared memory, so persistent DataLoader workers see
    :meth:`set_epoch` (called by the batch sampler when an epoch's iteration starts).
    Items are the same dicts as :class:`~sed_lightning.data.datasets.SEDDataset`'s.

    Args:
        maker: draws and renders the clips (its sources are the set's split only).
        kind: ``strong``, ``weak`` or ``unlabeled``: which labels the items carry.
        n_clips: clips per epoch.
        seed: the set's seed.
        encoder: label encoder (frame grid).
        name: the set's name (clip names ``<name>_e<epoch>_<index>.wav``).
        recipe_dir: where recipes are appended (``None``: not recorded).
    """

    def __init__(
        self,
        maker: ClipMaker,
        kind: str,
        n_clips: int,
        seed: int,
        encoder: LabelEncoder,
        name: str,
        recipe_dir: str | os.PathLike | None = None,
    ) -> None:
        self.maker, self.kind, self.n_clips, self.seed = maker, kind, int(n_clips), int(seed)
        self.encoder, self.name = encoder, name
        self.recipe_dir = Path(recipe_dir) / name if recipe_dir is not None else None
        self._epoch = multiprocessing.Value("q", 0, lock=False)

    @classmethod
    def from_builder(
        cls,
        builder: SoundscapeBuilder,
        name: str,
        encoder: LabelEncoder,
        recipe_dir: str | os.PathLike | None = None,
    ) -> OnlineSoundscapes:
        """Set ``name`` of ``builder`` (its clip maker, kind, size and seed), made online."""
        spec = builder.spec(name)
        return cls(
            builder.maker(name), spec.kind, spec.n_clips, spec.seed, encoder, name, recipe_dir
        )

    def __len__(self) -> int:
        return self.n_clips

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.value = int(epoch)

    def recipe(self, index: int, epoch: int | None = None) -> dict:
        """The recipe of clip ``index`` in ``epoch`` (default: the current epoch)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if not 0 <= index < self.n_clips:
            raise IndexError(f"{self.name}: clip {index} out of range ({self.n_clips} clips)")
        return self.maker.draw([self.seed, epoch, index])

    def render(self, index: int, epoch: int | None = None) -> tuple[np.ndarray, list[tuple]]:
        """Mixture and truth rows of clip ``index`` in ``epoch``."""
        return self.maker.render(self.recipe(index, epoch))

    def clip_name(self, index: int, epoch: int) -> str:
        return f"{self.name}_e{epoch:03d}_{index:05d}.wav"

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch = self.epoch
        recipe = self.recipe(index, epoch)
        audio, rows = self.maker.render(recipe)
        filename = self.clip_name(index, epoch)
        if self.recipe_dir is not None:
            self._record(filename, recipe, epoch)
        events = [(onset, offset, label) for onset, offset, label, *_ in rows]
        labels = sorted({label for _, _, label in events})
        return clip_item(audio, filename, self.kind, self.encoder, events, labels)

    def _record(self, filename: str, recipe: dict, epoch: int) -> None:
        self.recipe_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"filename": filename, "epoch": epoch, **recipe})
        with (self.recipe_dir / f"epoch{epoch:03d}.{os.getpid()}.jsonl").open("a") as f:
            f.write(line + "\n")


def rerender(run_dir: str | os.PathLike, name: str, epoch: int, index: int, out: Path) -> Path:
    """Render clip ``index`` of epoch ``epoch`` of set ``name`` of a run again, from the
    run's ``recipes/builder.json``: the audio to ``out``, its recipe and truth rows to
    ``out`` with suffix ``.json`` (returned). Raises :class:`FileNotFoundError` for a run
    made without ``synthesis.online=true`` and :class:`ValueError` for a set not made online.
    """
    settings = Path(run_dir) / "recipes" / BUILDER_FILE
    if not settings.is_file():
        raise FileNotFoundError(f"no {settings}: not a run with synthesis.online=true")
    builder = SoundscapeBuilder(**json.loads(settings.read_text()))
    if not builder.is_online(name):
        raise ValueError(f"set {name!r} of {run_dir} is not made online")
    maker, spec = builder.maker(name), builder.spec(name)
    recipe = maker.draw([spec.seed, int(epoch), int(index)])
    audio, rows = maker.render(recipe)
    out = Path(out)
    save_audio(out, audio, builder.soundscape.sample_rate)
    recipe_path = out.with_suffix(".json")
    recipe_path.write_text(json.dumps({**recipe, "truth": rows}, indent=1))
    return recipe_path
