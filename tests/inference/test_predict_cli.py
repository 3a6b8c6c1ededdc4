"""``python -m sed_lightning.predict`` over folders: bad files listed not fatal, relative
names, resuming after kill -9, two processes (DDP on CPU), plots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.conftest import ROOT

CKPT = ROOT / "tests" / "fixtures" / "torchaudio_era" / "tiny.ckpt"  # 3 s clips, 6 classes


def make_folder(folder: Path, n: int, seconds: float = 3.0, seed: int = 0) -> list[str]:
    """``n`` clips of beeps in noise, every third one in a subfolder with a repeated name."""
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        t = np.arange(int(seconds * 16000)) / 16000
        freq = rng.uniform(300, 3000)
        on = rng.uniform(0, seconds - 0.5)
        beep = 0.4 * np.sin(2 * np.pi * freq * t) * ((t > on) & (t < on + 0.4))
        audio = (beep + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
        name = f"sub{i % 2}/take{i // 2}.wav" if i % 3 == 0 else f"clip{i:03d}.wav"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / name, audio, 16000)
        names.append(name)
    return sorted(names)


def predict_overrides(audio: Path, out: Path, *overrides: str) -> list[str]:
    """The Hydra overrides of one prediction, shared by the CLI and the in-process run."""
    return [
        f"ckpt={CKPT}",
        f"audio={audio}",
        f"out={out}",
        "postprocess.threshold=0.3",
        *overrides,
    ]


def predict_cmd(audio: Path, out: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sed_lightning.predict",
        *predict_overrides(audio, out, *overrides),
    ]


def predict_here(audio: Path, out: Path, *overrides: str) -> int:
    """The same prediction in this process (one thread, as the subprocesses run): the
    uninterrupted reference the CLI runs are compared with, without another interpreter
    start (torch + lightning imports take 10-30 s on 2 CPU cores)."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from sed_lightning.config import register_resolvers
    from sed_lightning.predict import predict

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "sed_lightning" / "conf"), version_base="1.3"):
        cfg = compose(config_name="predict", overrides=predict_overrides(audio, out, *overrides))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return predict(cfg)
    finally:
        torch.set_num_threads(threads)
        GlobalHydra.instance().clear()


def run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_bad_files_are_listed_and_every_good_file_gets_its_events(tmp_path):
    audio = tmp_path / "audio"
    good = make_folder(audio, 5)
    (audio / "corrupt.wav").write_bytes(b"RIFF0000WAVEnot really")
    sf.write(audio / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    nan = np.zeros(16000, dtype=np.float32)
    nan[100] = np.nan
    sf.write(audio / "sub1" / "nan.wav", nan, 16000, subtype="FLOAT")
    out = tmp_path / "out" / "events.tsv"
    proc = run(predict_cmd(audio, out, "batch_size=3", "scores=" + str(tmp_path / "scores")))
    assert proc.returncode == 3, proc.stderr[-3000:]  # documented: some files failed
    failed = pd.read_csv(out.parent / "failed.tsv", sep="\t")
    assert sorted(failed["filename"]) == ["corrupt.wav", "empty.wav", "sub1/nan.wav"]
    assert failed["reason"].str.len().min() > 10
    for name in failed["filename"]:
        assert f"failed: {name}" in proc.stderr + proc.stdout  # one log line per bad file
    events = pd.read_csv(out, sep="\t")
    assert set(events["filename"]) <= set(good)
    assert {"sub0/take0.wav", "sub1/take1.wav"} <= set(good)  # same base name, both kept
    for name in good:  # every good file was scored whole
        scores = pd.read_csv(tmp_path / "scores" / name.replace(".wav", ".tsv"), sep="\t")
        assert scores["offset"].iloc[-1] == pytest.approx(3.0)


def _journal_lines(out: Path) -> int:
    folder = out.with_name(out.name + ".progress")
    return sum(len(p.read_text().splitlines()) for p in folder.glob("rank*.jsonl"))


def test_kill_9_and_start_again_gives_the_uninterrupted_output(tmp_path):
    audio = tmp_path / "audio"
    names = make_folder(audio, 40)
    reference = tmp_path / "full" / "events.tsv"
    assert predict_here(audio, reference, "batch_size=1", "num_workers=0") == 0

    out = tmp_path / "killed" / "events.tsv"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        predict_cmd(audio, out, "batch_size=1", "num_workers=0"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _journal_lines(out) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _journal_lines(out)
    assert 5 <= done_before < len(names), "the kill did not land in the middle of the run"
    assert not out.exists()

    again = run(predict_cmd(audio, out, "batch_size=1", "num_workers=0"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{done_before} of {len(names)} file(s) done earlier: skipped" in again.stdout
    assert out.read_bytes() == reference.read_bytes()
    assert len(pd.read_csv(out, sep="\t")) > 0  # the comparison is not of two empty tables


def test_two_processes_score_each_file_exactly_once(tmp_path):
    audio = tmp_path / "audio"
    names = make_folder(audio, 7)  # odd: a padding sampler would score one file twice
    out = tmp_path / "ddp" / "events.tsv"
    proc = run(predict_cmd(audio, out, "trainer=ddp", "trainer.devices=2", "batch_size=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = out.with_name(out.name + ".progress")
    per_rank = {
        p.name: [json.loads(line)["file"] for line in p.read_text().splitlines()]
        for p in folder.glob("rank*.jsonl")
    }
    assert sorted(per_rank) == ["rank0.jsonl", "rank1.jsonl"]
    assert all(per_rank.values())  # both processes worked
    scored = [f for files in per_rank.values() for f in files]
    assert sorted(scored) == names  # each file exactly once
    single = tmp_path / "single" / "events.tsv"
    assert predict_here(audio, single, "batch_size=2") == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(out, sep="\t"), pd.read_csv(single, sep="\t"), atol=1e-6
    )


def test_plot_is_written_per_file(tmp_path):
    audio = tmp_path / "audio"
    make_folder(audio, 3)
    plots = tmp_path / "plots"
    proc = run(predict_cmd(audio, tmp_path / "e.tsv", f"plot={plots}", "plot_max=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    pngs = sorted(plots.rglob("*.png"))
    assert len(pngs) == 2
    import matplotlib.image

    image = matplotlib.image.imread(pngs[0])
    assert image.shape[0] > 400 and image.shape[1] > 800
    assert image[..., :3].std() > 0.05  # not a blank canvas
