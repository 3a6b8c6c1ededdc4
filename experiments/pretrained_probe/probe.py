"""Probe: a frozen pretrained CNN (aisfx 0.1.2) + a small BiGRU head on the office recipe's
training soundscapes, scored on the office validation set by background kind.

Not part of the package: aisfx is not in the lock (its wheel pins numpy 1.23 and librosa
0.9). Get its wheel and unpack it (it holds the 25 MB checkpoint, MIT licence)::

    .venv/bin/python -m pip download --no-deps aisfx==0.1.2 -d /tmp/aisfx
    (cd /tmp/aisfx && unzip -oq aisfx-0.1.2-py2.py3-none-any.whl)
    .venv/bin/python experiments/pretrained_probe/probe.py --aisfx /tmp/aisfx \\
        --run experiments/recipe/runs/<the reference run> --out /tmp/probe

``--run`` is a finished run of ``+experiment=ablation/recipe`` (synthesis.online): its
``recipes/builder.json`` renders the training clips (train_strong, epochs 0..E-1) and its
``val_reference.tsv`` scores the validation predictions. The validation audio is the cached
set in ``data_cache/dcase2016_office/validation``. Decoding: threshold 0.5, no filter.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn as nn

from sed_lightning.data.builders import SoundscapeBuilder
from sed_lightning.evaluate import evaluate_files

SR, HOP, POOL = 44100, 1024, 8  # the aisfx front end; 3 time poolings of 2
FRAME = POOL * HOP / SR  # 0.186 s per output frame
LOG_MAX = 9.457798957824707  # aisfx's "original" spectrogram normalization


def load_cnn(aisfx_dir: Path) -> nn.Module:
    sys.path.insert(0, str(aisfx_dir))
    from aisfx.models.cnn2d import EmbeddingNet

    # The checkpoint is a pickled (state_dict, dataset dict with numpy scalars): loaded with
    # weights_only=True once those numpy types are allowed (the saved name is numpy 1's).
    numpy_types = [
        (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        np.dtypes.Int64DType,
        np.dtypes.Float64DType,
        np.dtypes.Float32DType,
    ]
    with torch.serialization.safe_globals(numpy_types):
        state, _ = torch.load(
            aisfx_dir / "aisfx/models/checkpoint.pth", map_location="cpu", weights_only=True
        )
    net = EmbeddingNet("max", 3, 1, 64)
    prefix = "embedding_net."
    net.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return net.eval()


def features(net: nn.Module, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Frame features of the last conv block, mean over frequency. Shape: ``(frames, 512)``."""
    y = soxr.resample(audio.astype(np.float64), sample_rate, SR)
    y = y / max(np.abs(y).max(), 1e-9)
    mel = librosa.feature.melspectrogram(
        y=y, sr=SR, n_mels=96, norm=1.0, fmin=0, fmax=SR / 2, htk=True, power=2.0,
        hop_length=HOP, win_length=2048,
    )  # fmt: skip
    x = torch.tensor((np.log10(mel * 10000.0 + 1) / LOG_MAX).T[None, None], dtype=torch.float32)
    with torch.no_grad():
        for block in (net.conv_block1, net.conv_block2, net.conv_block3):
            x = block(x, pool_size=(2, 2), pool_type="max")
        x = net.conv_block4(x, pool_size=(1, 1), pool_type="max")
    return x.mean(dim=3)[0].T.numpy().astype(np.float16)


def frame_targets(n: int, events: list[tuple], classes: list[str]) -> np.ndarray:
    """1 where an event covers half the frame (or half the event, if shorter)."""
    y = np.zeros((n, len(classes)), np.float32)
    for onset, offset, label in events:
        for k in range(n):
            start, end = k * FRAME - HOP / SR / 2, (k + 1) * FRAME - HOP / SR / 2
            overlap = min(end, offset) - max(start, onset)
            if overlap > 0 and overlap >= 0.5 * min(FRAME, offset - onset):
                y[k, classes.index(label)] = 1
    return y


class Head(nn.Module):
    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.3)
        self.gru = nn.GRU(512, 128, 2, batch_first=True, bidirectional=True, dropout=0.2)
        self.out = nn.Linear(256, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.gru(self.drop(x))[0])


def events_tsv(names, probs, classes) -> str:
    rows = ["filename\tonset\toffset\tevent_label"]
    for name, p in zip(names, probs, strict=True):
        for c, label in enumerate(classes):
            active, onset = list(p[:, c] > 0.5) + [False], None
            for k, on in enumerate(active):
                if on and onset is None:
                    onset = k
                if not on and onset is not None:
                    start = max(0.0, onset * FRAME - HOP / SR / 2)
                    rows.append(f"{name}\t{start:.3f}\t{k * FRAME - HOP / SR / 2:.3f}\t{label}")
                    onset = None
    return "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--aisfx", type=Path, required=True, help="unpacked aisfx 0.1.2 wheel")
    p.add_argument("--run", type=Path, required=True, help="a finished recipe run folder")
    p.add_argument("--val", type=Path, default=Path("data_cache/dcase2016_office/validation"))
    p.add_argument("--epochs", type=int, default=3, help="epochs of 400 training clips")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    net = load_cnn(a.aisfx)
    settings = json.loads((a.run / "recipes/builder.json").read_text())
    builder, classes = SoundscapeBuilder(**settings), list(settings["class_names"])
    rate = builder.soundscape.sample_rate
    cache = a.out / f"train_{a.epochs}.npz"
    if not cache.exists():
        maker, spec = builder.maker("train_strong"), builder.spec("train_strong")
        xs, ys, t0 = [], [], time.time()
        for epoch in range(a.epochs):
            for i in range(spec.n_clips):
                audio, rows = maker.render(maker.draw([spec.seed, epoch, i]))
                f = features(net, np.asarray(audio), rate)
                xs.append(f)
                ys.append(frame_targets(len(f), [tuple(r[:3]) for r in rows], classes))
                if len(xs) % 100 == 0:
                    print(f"training clips: {len(xs)} ({time.time() - t0:.0f} s)", flush=True)
        np.savez(cache, X=np.stack(xs), Y=np.stack(ys))
    val_cache = a.out / "val.npz"
    if not val_cache.exists():
        names = sorted(f.name for f in (a.val / "audio").glob("*.wav"))
        feats = [features(net, *sf.read(a.val / "audio" / n, dtype="float32")) for n in names]
        np.savez(val_cache, X=np.stack(feats), names=np.array(names))
    train, val = np.load(cache), np.load(val_cache)
    x, y = torch.tensor(train["X"]).float(), torch.tensor(train["Y"])
    xv, names = torch.tensor(val["X"]).float(), [str(n) for n in val["names"]]
    mean, std = x.mean((0, 1)), x.std((0, 1)) + 1e-5
    x, xv = (x - mean) / std, (xv - mean) / std
    results = {}
    for seed in a.seeds:
        torch.manual_seed(seed)
        head = Head(len(classes))
        opt = torch.optim.Adam(head.parameters(), 1e-3)
        for _ in range(40):
            head.train()
            order = torch.randperm(len(x))
            for j in range(0, len(x), 32):
                b = order[j : j + 32]
                loss = nn.functional.binary_cross_entropy_with_logits(head(x[b]), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        head.eval()
        with torch.no_grad():
            probs = torch.sigmoid(head(xv)).numpy()
        est = a.out / f"val_predictions_seed{seed}.tsv"
        est.write_text(events_tsv(names, probs, classes))
        r = evaluate_files(
            a.run / "val_reference.tsv", est, classes=classes, conditions=a.val / "recipes.jsonl"
        )
        kinds = r["by_condition"]["background_kind"]
        results[seed] = {
            "event_f1": r["event_f1"],
            "segment_f1": r["segment_f1"],
            "onset_f1": r["dcase2016/onset_f1"],
            **{f"{k}_{m}": kinds[k][m] for k in kinds for m in ("event_f1", "segment_f1")},
        }
        print(seed, {k: round(v, 3) for k, v in results[seed].items()}, flush=True)
    (a.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"results in {a.out / 'results.json'}")


if __name__ == "__main__":
    main()
