"""A picture of what the detector did on one file: log-mel spectrogram, frame scores per
class with their thresholds, and the detected events as bars (an event roll, as sed_vis
draws it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from sed_lightning.inference.windows import AudioReader  # noqa: E402


def plot_file(
    predictor,
    path: str | Path,
    scores: np.ndarray,
    events: pd.DataFrame,
    out: str | Path,
    max_seconds: float = 60.0,
) -> Path:
    """Write a PNG for ``path`` (its first ``max_seconds`` for a longer file).

    Args:
        predictor: the :class:`~sed_lightning.inference.predictor.Predictor` that scored
            it (front end, classes, frame hop, thresholds).
        path: the audio file.
        scores: its frame scores ``(n_frames, n_classes)``.
        events: its events (``onset``, ``offset``, ``event_label``).
        out: the PNG to write (folders are created).
    """
    sr = predictor.sample_rate
    reader = AudioReader(path, sr)
    try:
        audio = reader.read(int(max_seconds * sr))
    finally:
        reader.close()
    seconds = len(audio) / sr
    frontend = predictor.module.frontend
    with torch.no_grad():
        device = next(frontend.buffers()).device
        wave = torch.from_numpy(np.ascontiguousarray(audio))[None].to(device)
        log_mel = frontend.image(wave)[0].float().cpu().numpy()
    classes = predictor.encoder.class_names
    hop = predictor.encoder.frame_hop
    shown = scores[: int(np.ceil(seconds / hop))]
    times = (np.arange(len(shown)) + 0.5) * hop

    fig, (ax_mel, ax_scores, ax_roll) = plt.subplots(
        3, 1, figsize=(12, 7.5), sharex=True, gridspec_kw={"height_ratios": [2.2, 1.6, 1.2]}
    )
    ax_mel.imshow(
        log_mel,
        origin="lower",
        aspect="auto",
        extent=(0, seconds, 0, log_mel.shape[0]),
        cmap="magma",
    )
    ax_mel.set_ylabel(frontend.image_label)
    title = Path(path).name + (f" (first {max_seconds:g} s)" if seconds >= max_seconds else "")
    ax_mel.set_title(title)
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, cls in enumerate(classes):
        ax_scores.plot(times, shown[:, k], color=colours(k % colours.N), lw=1.2, label=cls)
    thresholds = set(predictor.postprocessor.threshold.values())
    for t in thresholds:
        ax_scores.axhline(t, color="grey", lw=0.8, ls="--")
    ax_scores.set_ylim(-0.02, 1.02)
    ax_scores.set_ylabel("frame score")
    ax_scores.legend(loc="upper right", fontsize=7, ncol=min(len(classes), 6), framealpha=0.8)
    for k, cls in enumerate(classes):
        rows = events[(events["event_label"] == cls) & (events["onset"] < seconds)]
        spans = [
            (on, min(off, seconds) - on)
            for on, off in zip(rows["onset"], rows["offset"], strict=True)
        ]
        ax_roll.broken_barh(spans, (k - 0.4, 0.8), color=colours(k % colours.N))
    ax_roll.set_yticks(range(len(classes)), classes, fontsize=8)
    ax_roll.set_ylim(-0.6, len(classes) - 0.4)
    ax_roll.set_xlabel("time (s)")
    ax_roll.set_xlim(0, seconds)
    ax_roll.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
