"""Checkpoint weights: the layout upgrade for older checkpoints, and initialising a
module's weights from a checkpoint (not a resume: no optimizer state)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from sed_lightning.training.preflight import ConfigError

if TYPE_CHECKING:
    from sed_lightning.training.module import SEDModule

log = logging.getLogger(__name__)

# The layout a checkpoint's state dict is in, saved as ``checkpoint[LAYOUT_KEY]``.
# 1 (or absent): up to 0.1.0, front end and Conformer from the end-of-life audio library;
# 2: this package's own LogMelFrontend and ConformerBlock.
LAYOUT_KEY = "sed_lightning_layout"
LAYOUT = 2

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


def upgrade_state_dict(
    state_dict: Mapping[str, torch.Tensor], module: nn.Module, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """``state_dict`` in the current layout, converted from layout 1 if needed.

    Conformer weights are renamed to :class:`~sed_lightning.models.conformer.ConformerBlock`'s
    names (same tensors, same order, so optimizer state still matches). The front end's
    saved window and mel filterbank are dropped after checking that they equal the ones
    ``module``'s front end derives from its settings. A conversion is always logged.

    Raises:
        ValueError: a saved front-end buffer differs from the one this config derives.
    """
    out: dict[str, torch.Tensor] = {}
    renamed, dropped = 0, 0
    for key, value in state_dict.items():
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


def load_weights(
    module: SEDModule, path: str | Path, setting: str, skip_prefixes: Sequence[str] = ()
) -> None:
    """Load a checkpoint's weights into ``module`` (strict; tensors only).

    Args:
        module: the module to initialise.
        path: a Lightning checkpoint written by sed_lightning.
        setting: the config key that named ``path`` (``init_from``, ``label_constraint.ckpt``),
            quoted in every error.
        skip_prefixes: checkpoint entries to leave out (e.g. layers another method adds).

    Raises
    ------
    ConfigError
        Missing or unreadable file, other class names, or weights that do not fit.
    """
    if not Path(path).is_file():
        raise ConfigError(f"{setting}: no checkpoint file {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, or objects beyond tensors and containers
        raise ConfigError(f"{setting}: cannot read {path}: {err}") from err
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
