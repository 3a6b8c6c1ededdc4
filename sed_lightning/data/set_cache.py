"""The on-disk cache of synthesised sets: what a set's content depends on, and whether the
set already in a folder is that content.

A set's ``manifest.json`` (:func:`set_manifest`) holds everything that determines its clips
(spec, config, event bank, backgrounds, generator) and a hash of them; a folder whose
manifest has the same hash and whose outputs are complete is reused (:func:`is_cached`).
Settings that shape nothing are hashed as if unset (:func:`config_content`), so sets made
before an option existed, or unaffected by a change, are not made again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from sed_lightning.data.backgrounds import BackgroundBank
from sed_lightning.data.set_spec import BackgroundFn, SetSpec, SoundscapeConfig
from sed_lightning.data.sources import EventBank, EventSource

__all__ = [
    "LABEL_FILES",
    "SYNTHESIS_VERSION",
    "clear_set",
    "config_content",
    "is_cached",
    "set_manifest",
]

LABEL_FILES = {"strong": ("strong.tsv", "weak.tsv"), "weak": ("weak.tsv",), "unlabeled": ()}
#: Bump when the synthesis changes, so cached sets are regenerated.
SYNTHESIS_VERSION = 3


def _fingerprint(sources: Sequence[EventSource], root: Path) -> str:
    listing = [(str(s.path.relative_to(root)), s.label, s.duration, s.split) for s in sources]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def set_manifest(
    bank: EventBank,
    spec: SetSpec,
    cfg: SoundscapeConfig,
    sources: Sequence[EventSource],
    background_fn: BackgroundFn,
    backgrounds: BackgroundBank | None = None,
) -> dict:
    """Everything that determines the set's content, plus its hash."""
    spec_content = dataclasses.asdict(spec)
    if spec.soundscape and "distractors" in spec.soundscape and not cfg.distractors.active:
        # a set that spells distractors off hashes as before the option existed
        rest = {k: v for k, v in spec.soundscape.items() if k != "distractors"}
        spec_content["soundscape"] = rest or None
    if spec.sources_per_class is None:
        # a set of every source hashes as before the subset option existed
        del spec_content["sources_per_class"], spec_content["sources_seed"]
    content = {
        "synthesis_version": SYNTHESIS_VERSION,
        "spec": spec_content,
        "config": config_content(cfg),
        "bank_root": str(bank.root),
        "class_names": list(bank.class_names),
        "source_splits": spec.splits,
        "n_sources": len(sources),
        "sources_sha256": _fingerprint(sources, bank.root),
        "background_fn": _callable_name(background_fn),
        "label_files": list(LABEL_FILES[spec.kind]),
    }
    if backgrounds is not None and cfg.recorded_share > 0:
        content["backgrounds_root"] = str(backgrounds.root)
        content["backgrounds_sha256"] = backgrounds.fingerprint()
        content["background_files"] = backgrounds.files(spec.splits)
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return {**content, "hash": digest}


def config_content(cfg: SoundscapeConfig) -> dict:
    """The config as hashed: ``background_variation`` and ``distractors`` only when on, so
    a config that does not switch them on hashes as it did before the options existed (no
    set is synthesized again for them). Settings that shape nothing are hashed at their
    defaults: ``ebr_db`` when ``ebr_levels`` sets the EBRs, and the ranges of a variation
    part whose probability is 0 (:meth:`~.variation.EventVariation.content`), so a fixed
    evaluation set is not made again when only the training sets' ranges change."""
    content = dataclasses.asdict(cfg)
    content["variation"] = cfg.variation.content()
    if cfg.ebr_levels is not None:
        content["ebr_db"] = SoundscapeConfig.__dataclass_fields__["ebr_db"].default
    if not cfg.background_variation.active:
        del content["background_variation"]
    if not cfg.distractors.active:
        del content["distractors"]
    return content


def _callable_name(fn: Callable) -> str:
    """Stable description of a callable: ``module.qualname``, partials with their args."""
    if isinstance(fn, functools.partial):
        return (
            f"partial({_callable_name(fn.func)}, *{fn.args!r}, **{sorted(fn.keywords.items())!r})"
        )
    if hasattr(fn, "__qualname__"):
        return f"{fn.__module__}.{fn.__qualname__}"
    return repr(fn)


def is_cached(out_dir: Path, manifest: dict, n_clips: int) -> bool:
    """True if a complete set with the same hash is already in ``out_dir``."""
    path = out_dir / "manifest.json"
    if not path.is_file():
        return False
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError:
        return False
    expected = ["durations.tsv", "truth.tsv", *manifest["label_files"]]
    audio_dir = out_dir / "audio"
    n_audio = len(list(audio_dir.glob("*.wav"))) if audio_dir.is_dir() else 0
    return (
        stored.get("hash") == manifest["hash"]
        and all((out_dir / f).is_file() for f in expected)
        and n_audio == n_clips
    )


def clear_set(out_dir: Path) -> None:
    """Remove outputs of a previous (different or interrupted) run, manifest first."""
    (out_dir / "manifest.json").unlink(missing_ok=True)
    if (out_dir / "audio").is_dir():
        shutil.rmtree(out_dir / "audio")
    for name in ("durations.tsv", "truth.tsv", "strong.tsv", "weak.tsv", "recipes.jsonl"):
        (out_dir / name).unlink(missing_ok=True)
