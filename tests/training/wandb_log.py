"""Readers for an offline W&B run's transaction log (``run-*.wandb``), shared by tests."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def wandb_records(path: Path):
    """The records of a W&B transaction log (``run-*.wandb``: LevelDB-style log blocks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a FULL record, or the LAST chunk of one
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def logged(path: Path, kind: str) -> dict[str, object]:
    """The last value of every key of the run's ``history`` (per-step metrics) or
    ``summary`` records. W&B 0.31 offline writes no ``wandb-summary.json``: the summary is
    in the transaction log until ``wandb sync``."""
    values = {}
    for record in wandb_records(path):
        if record.WhichOneof("record_type") == kind:
            items = record.history.item if kind == "history" else record.summary.update
            for item in items:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values
