"""Pretrained weights: where the file comes from (a local path, or a URL fetched once into a
cache folder), its sha256, and strict loading with one-line errors.

The download is torch.hub's helper (``download_url_to_file``: progress bar, a temporary
file moved into place only when complete); it reads ``file://`` URLs too, which the tests
use. pooch was the other candidate; it has no ``file://`` downloader.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

log = logging.getLogger(__name__)

URL_SCHEMES = ("http", "https", "ftp", "file")


class WeightsError(ValueError):
    """A pretrained weights file that is missing, unreadable, of another checksum or that
    does not fit the network; the message is one line naming the file."""


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$SED_LIGHTNING_CACHE`` or ``~/.cache/sed_lightning``: where fetched weights go."""
    env = os.environ.get("SED_LIGHTNING_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "sed_lightning"


def resolve_weights(
    source: str | Path, sha256: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """The local file of ``source``: a path as it is, or a URL fetched once into
    ``cache_dir/<file name>`` (a cached copy with the right checksum is reused). With
    ``sha256`` the file must have it, fetched or not.

    Raises:
        WeightsError: no such file, a failed download, or another sha256.
    """
    source = str(source)
    if urlparse(source).scheme in URL_SCHEMES:
        name = Path(urlparse(source).path).name or "weights.pt"
        path = Path(cache_dir or default_cache_dir()) / name
        if not (path.is_file() and (sha256 is None or sha256_of(path) == sha256)):
            path.parent.mkdir(parents=True, exist_ok=True)
            log.info("fetching %s -> %s", source, path)
            try:
                torch.hub.download_url_to_file(source, str(path), progress=True)
            except Exception as err:  # any network / URL error: one line
                raise WeightsError(f"{source}: download failed ({err})") from None
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise WeightsError(f"{path}: no such pretrained weights file")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            raise WeightsError(
                f"{path}: sha256 {actual} differs from the config's {sha256} "
                "(another or a damaged file)"
            )
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict read tensors-only (``weights_only=True``).

    Raises:
        WeightsError: not a torch file (e.g. truncated), or not a dict of tensors.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"{path}: not a readable weights file ({reason})") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    return dict(state)


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state)`` with every tensor present and of the same shape;
    the first that does not fit is named in one line.

    >>> net = nn.Linear(2, 3)
    >>> load_strict(net, {"weight": torch.zeros(3, 2), "bias": torch.zeros(3)}, "w.pt")
    >>> load_strict(net, {"weight": torch.zeros(3, 3), "bias": torch.zeros(3)}, "w.pt")
    Traceback (most recent call last):
    ...
    sed_lightning.models.weights.WeightsError: w.pt: tensor weight has shape (3, 3), the network's is (3, 2)
    """
    expected = module.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise WeightsError(f"{source}: tensor {key} is missing (truncated or another network?)")
        if tuple(state[key].shape) != tuple(value.shape):
            raise WeightsError(
                f"{source}: tensor {key} has shape {tuple(state[key].shape)}, "
                f"the network's is {tuple(value.shape)}"
            )
    extra = [key for key in state if key not in expected]
    if extra:
        raise WeightsError(f"{source}: tensor {extra[0]} is not in the network (another network?)")
    module.load_state_dict(state, strict=True)
