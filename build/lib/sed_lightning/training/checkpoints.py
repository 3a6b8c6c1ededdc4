"""Checkpoints: reading one safely (tensors and plain containers only), the layout upgrade
for older checkpoints, initialising a module's weights from a checkpoint (not a resume: no
optimizer state), the validation metrics a checkpoint was saved with, and the run's best
checkpoint."""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import torch
from torch import nn

from sed_lightning.training.preflight import ConfigError

log = logging.getLogger(__name__)

# The validation metrics of the moment a checkpoint was saved (SEDModule.on_save_checkpoint):
# a sweep optimizes the tested (best) checkpoint's metric, not the last epoch's.
VAL_METRICS_KEY = "val_metrics"

# The layout a checkpoint's state dict is in, saved as ``checkpoint[LAYOUT_KEY]``.
# 1 (or absent): up to 0.1.0, front end and Conformer from the end-of-life audio library;
# 2: this package's own LogMelFrontend and ConformerBlock;
# 3: the label constraint's weights under its loss term (``terms.label_constraint.``).
LAYOUT_KEY = "sed_lightning_layout"
LAYOUT = 3
# Layout 2's label-constraint entries (top level of the LabelConstraintModule) -> layout 3's.
_TERM_RENAMES = {
    "clip_projection.": "terms.label_constraint.clip_projection.",
    "label_features": "terms.label_constraint.label_features",
    "kl_lambda": "terms.label_constraint.kl_lambda",
}

# Layout 1's Conformer names inside one block -> ConformerBlock's.
_BLOCK_RENAMES = (
    (r"\.ffn([12])\.sequential\.0\.", r".ffn\1.norm."),
    (r"\.ffn([12])\.sequential\.1\.", r".ffn\1.linear1."),
    (r"\.ffn([12])\.sequential\.4\.", r".ffn\1.linear2."),
    (r"\.self_attn_layer_norm\.", ".attn_norm."),
    (r"\.self_attn\.in_proj_(weight|bias)$", r".attn.in_proj.\1"),
    (r"\.self_attn\.out_proj\.", ".attn.out_proj."),
    (r"\.conv_module\.layer_norm\.", ".conv.norm."),
    (r"\.conv_module\.sequential\.0\.", ".conv.pointwise_in."),
    (r"\.conv_module\.sequential\.2\.", ".conv.depthwise."),
    (r"\.conv_module\.sequential\.3\.", ".conv.batch_norm."),
    (r"\.conv_module\.sequential\.5\.", ".conv.pointwise_out."),
    (r"\.final_layer_norm\.", ".final_norm."),
)
_LEGACY_BLOCK = re.compile(r"\.conformer\.conformer_layers\.(\d+)\.")
# Layout 1's front end saved its window and filterbank; LogMelFrontend derives them.
_LEGACY_DERIVED = {"mel.spectrogram.window": "window", "mel.mel_scale.fb": "filterbank"}
# How torch.load(weights_only=True) refuses a pickled object (a function, a class, an
# instance): it names the GLOBAL (not allowed, or its module blocked) or asks for an allowlist.
_UNSAFE = re.compile(r"GLOBAL (\S+)|allowlisted|reduce for unrecognized function")


def upgrade_state_dict(
    state_dict: Mapping[str, torch.Tensor], module: nn.Module, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """``state_dict`` in the current layout, converted from layout 1 or 2 if needed.

    Layout 2's label-constraint entries move under ``terms.label_constraint.``. Conformer weights are renamed to :class:`~sed_lightning.models.conformer.ConformerBlock`'s
    names (same tensors, same order, so optimizer state still matches). The front end's
    saved window and mel filterbank are dropped after checking that they equal the ones
    ``module``'s front end derives from its settings. A conversion is always logged.

    Raises:
        ValueError: a saved front-end buffer differs from the one this config derives.
    """
    out: dict[str, torch.Tensor] = {}
    renamed, dropped = 0, 0
    for key, value in state_dict.items():
        term_key = next((k for k in _TERM_RENAMES if key.startswith(k)), None)
        if term_key is not None:
            out[_TERM_RENAMES[term_key] + key[len(term_key) :]] = value
            continue
        derived = next((d for d in _LEGACY_DERIVED if key.endswith("frontend." + d)), None)
        if derived is not None:
            current = key[: -len(derived)] + _LEGACY_DERIVED[derived]
            expected = module.get_buffer(current)
            if value.shape != expected.shape or not torch.allclose(
                value.float(), expected.float(), atol=1e-6
            ):
                raise ValueError(
                    f"{source}: its saved {key} differs from the one the config's front end "
                    "computes (other n_fft / n_mels / f_min / f_max?)"
                )
            dropped += 1
            continue
        new = _LEGACY_BLOCK.sub(r".blocks.\1.", key)
        if new != key:
            for pattern, replacement in _BLOCK_RENAMES:
                new = re.sub(pattern, replacement, new)
            renamed += 1
        out[new] = value
    if renamed or dropped:
        log.warning(
            "%s: converted from checkpoint layout 1 (sed-lightning <= 0.1.0): %d Conformer tensors renamed, "
            "%d derived front-end buffers checked and dropped",
            source,
            renamed,
            dropped,
        )
    return out


def upgrade_checkpoint(checkpoint: dict, module: nn.Module, source: str = "checkpoint") -> None:
    """Upgrade a loaded Lightning checkpoint's ``state_dict`` in place (see
    :func:`upgrade_state_dict`) and mark it with the current layout."""
    if checkpoint.get(LAYOUT_KEY, 1) < LAYOUT and "state_dict" in checkpoint:
        checkpoint["state_dict"] = upgrade_state_dict(checkpoint["state_dict"], module, source)
    checkpoint[LAYOUT_KEY] = LAYOUT


def read_checkpoint(path: str | Path, setting: str = "checkpoint") -> dict:
    """A checkpoint file read with ``torch.load(weights_only=True)``: tensors, numbers,
    strings and containers only, never pickled code (a checkpoint from someone else cannot run
    anything when loaded). Every checkpoint this project writes loads this way.

    Raises:
        ConfigError: no such file, not a torch file (damaged, truncated, empty), or a file
            carrying other objects (e.g. a pickled callable); the message is one line naming
            ``setting`` and the file.
    """
    if not Path(path).is_file():
        raise ConfigError(f"{setting}: no checkpoint file {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = _UNSAFE.search(str(err))
        if unsafe is None:  # not a pickle torch writes: damaged or not a checkpoint
            raise ConfigError(
                f"{setting}: {path}: not a readable checkpoint (damaged, or not a torch file)"
            ) from err
        what = f": {unsafe.group(1)}" if unsafe.group(1) else ""
        raise ConfigError(
            f"{setting}: {path}: checkpoint refused as unsafe to load (it holds pickled code, "
            f"not only tensors{what}; loading it could run code)"
        ) from err
    except Exception as err:  # not a torch file, truncated, empty, ...
        why = str(err).split(". ")[0].strip() or type(err).__name__
        raise ConfigError(
            f"{setting}: {path}: not a readable checkpoint (damaged, truncated or not a "
            f"torch file: {' '.join(why.split())})"
        ) from err


def best_checkpoint(trainer: L.Trainer, fallback_last: bool = False) -> str:
    """The run's best checkpoint: that of the first ModelCheckpoint monitoring a metric;
    with ``fallback_last`` and no such checkpoint, the latest one a ModelCheckpoint without
    a metric saved (``last.ckpt``); ``""``: none. The one way the project finds it (``train``
    tests it, self-training labels with it)."""
    saved = [c for c in trainer.checkpoint_callbacks if getattr(c, "best_model_path", "")]
    for callback in saved:
        if getattr(callback, "monitor", None):
            return callback.best_model_path
    unmonitored = [c.best_model_path for c in saved if not getattr(c, "monitor", None)]
    return unmonitored[0] if fallback_last and unmonitored else ""


def val_metrics(path: str | Path) -> dict[str, float]:
    """The validation metrics a checkpoint was saved with (``{}`` for an older checkpoint)."""
    saved = read_checkpoint(path).get(VAL_METRICS_KEY) or {}
    return {str(k): float(v) for k, v in saved.items()}


def load_weights(
    module: nn.Module, path: str | Path, setting: str, skip_prefixes: Sequence[str] = ()
) -> None:
    """Load a checkpoint's weights into ``module`` (strict; tensors only).

    Args:
        module: the module to initialise: a
            :class:`~sed_lightning.training.module.SEDModule` (its ``class_names`` are
            checked; not imported here: that module imports this one).
        path: a Lightning checkpoint written by sed_lightning.
        setting: the config key that named ``path`` (``init_from``, ``label_constraint.ckpt``),
            quoted in every error.
        skip_prefixes: checkpoint entries to leave out (e.g. layers another method adds).

    Raises
    ------
    ConfigError
        Missing or unreadable file, other class names, or weights that do not fit.
    """
    checkpoint = read_checkpoint(path, setting)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{setting}: {path} is not a Lightning checkpoint")
    saved_classes = checkpoint.get("class_names")
    if saved_classes is not None and list(saved_classes) != module.class_names:
        raise ConfigError(
            f"{setting}: {path} was trained on classes {list(saved_classes)}, "
            f"this run has {module.class_names}"
        )
    try:
        upgrade_checkpoint(checkpoint, module, source=f"{setting}: {path}")
    except ValueError as err:
        raise ConfigError(str(err)) from err
    prefixes = tuple(skip_prefixes)
    state = {
        k: v
        for k, v in checkpoint["state_dict"].items()
        if not (prefixes and k.startswith(prefixes))
    }
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"{setting}: {path} does not fit the model: {err}") from err
    log.info("%s: weights initialised from %s", setting, path)
