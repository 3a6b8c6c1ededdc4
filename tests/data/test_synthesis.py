"""Tests for sed_lightning.data.synthesis: whole sets, their cache and locks (and the
EventBank they read). One clip's mixing is tested in test_mixing.py."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from filelock import FileLock

from sed_lightning.data.audio import load_audio
from sed_lightning.data.procedural import generate_background
from sed_lightning.data.set_locks import SetInUseError
from sed_lightning.data.set_spec import SetSpec, SoundscapeConfig
from sed_lightning.data.sources import EventBank, EventBankError
from sed_lightning.data.synthesis import synthesize_dataset, synthesize_set
from sed_lightning.data.tsv import (
    read_durations_tsv,
    read_strong_tsv,
    read_weak_tsv,
    strong_to_weak,
)
from sed_lightning.data.variation import EventVariation

FRAME = 320  # 20 ms at 16 kHz


def _frame_energy(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME * FRAME
    return np.mean(x[:n].astype(np.float64).reshape(-1, FRAME) ** 2, axis=1)


# ----------------------------------------------------------- acceptance: labels match audio


def test_synthesized_labels_match_the_audio(tmp_path: Path, tiny_bank_dir: Path) -> None:
    """Inside each labelled event the frame energy is above the background level;
    outside every event the mixture is the background (up to the clip's anti-clip gain)."""
    backgrounds: list[np.ndarray] = []

    def recording_background(duration: float, rng: np.random.Generator, sr: int) -> np.ndarray:
        backgrounds.append(generate_background(duration, rng, sr))
        return backgrounds[-1]

    cfg = SoundscapeConfig(clip_duration=4.0, max_events=3, max_event_duration=1.0)
    spec = SetSpec("train_strong", "strong", "train", n_clips=4, seed=3)
    out = synthesize_set(
        tmp_path / "set", EventBank(tiny_bank_dir), spec, cfg, recording_background
    )
    truth = read_strong_tsv(out / "truth.tsv")
    assert len(backgrounds) == 4 and len(truth) >= 4

    for k, background in enumerate(backgrounds):
        name = f"train_strong_{k:05d}.wav"
        mixture = load_audio(out / "audio" / name)
        events = truth[truth["filename"] == name]
        assert len(events) >= 1
        sample_in_event = np.zeros(len(mixture), dtype=bool)
        for onset, offset in zip(events["onset"], events["offset"], strict=True):
            sample_in_event[round(onset * 16000) : round(offset * 16000)] = True

        # Outside events: the mixture is exactly the background times one gain g <= 1.
        out_mix, out_bg = mixture[~sample_in_event], background[~sample_in_event]
        gain = float(out_mix @ out_bg / (out_bg @ out_bg))
        assert 0.5 < gain <= 1.0 + 1e-3
        np.testing.assert_allclose(out_mix, gain * out_bg, atol=2e-4)
        frame_outside = ~_frame_energy(sample_in_event.astype(float)).astype(bool)
        mix_energy, bg_energy = _frame_energy(mixture), gain**2 * _frame_energy(background)
        np.testing.assert_allclose(mix_energy[frame_outside], bg_energy[frame_outside], rtol=0.02)

        # Inside each event: clearly louder than the background alone (EBR >= 6 dB).
        for onset, offset in zip(events["onset"], events["offset"], strict=True):
            first, last = int(np.ceil(onset * 16000 / FRAME)), int(offset * 16000 // FRAME)
            assert last > first
            assert mix_energy[first:last].mean() > 3 * bg_energy[first:last].mean()


# ------------------------------------------------------------------------- set level

TINY_CFG = SoundscapeConfig(clip_duration=2.0, min_events=0, max_events=2, max_event_duration=1.0)


def _weak_from_truth(out: Path) -> pd.DataFrame:
    truth = read_strong_tsv(out / "truth.tsv")
    truth.attrs["empty_files"] = sorted(set(read_durations_tsv(out / "durations.tsv")))
    return strong_to_weak(truth)


def test_strong_set_exposes_strong_and_derived_weak(tmp_path: Path, tiny_bank_dir: Path) -> None:
    spec = SetSpec("train_strong", "strong", "train", n_clips=5, seed=0)
    out = synthesize_set(tmp_path / "s", EventBank(tiny_bank_dir), spec, TINY_CFG)

    truth = read_strong_tsv(out / "truth.tsv")
    strong = read_strong_tsv(out / "strong.tsv", ["alarm", "engine", "knock"])
    pd.testing.assert_frame_equal(strong, truth[list(strong.columns)])
    assert read_weak_tsv(out / "weak.tsv").equals(_weak_from_truth(out))
    durations = read_durations_tsv(out / "durations.tsv")
    assert durations == {f"train_strong_{k:05d}.wav": 2.0 for k in range(5)}
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(durations)


def test_weak_set_has_only_weak_labels_matching_truth(tmp_path: Path, tiny_bank_dir: Path) -> None:
    spec = SetSpec("train_weak", "weak", "train", n_clips=8, seed=1)
    out = synthesize_set(tmp_path / "w", EventBank(tiny_bank_dir), spec, TINY_CFG)

    assert not (out / "strong.tsv").exists()
    weak = read_weak_tsv(out / "weak.tsv")
    assert weak.equals(_weak_from_truth(out))
    assert weak["filename"].tolist() == sorted(read_durations_tsv(out / "durations.tsv"))
    assert [] in weak["event_labels"].tolist()  # min_events=0: empty clips are listed
    assert len(weak) == 8


def test_unlabeled_set_has_no_label_file(tmp_path: Path, tiny_bank_dir: Path) -> None:
    spec = SetSpec("unlabeled", "unlabeled", "train", n_clips=3, seed=2)
    out = synthesize_set(tmp_path / "u", EventBank(tiny_bank_dir), spec, TINY_CFG)

    assert not (out / "strong.tsv").exists() and not (out / "weak.tsv").exists()
    assert len(read_durations_tsv(out / "durations.tsv")) == 3
    assert len(list((out / "audio").glob("*.wav"))) == 3


def test_sources_come_only_from_the_requested_split(tmp_path: Path, tiny_bank_dir: Path) -> None:
    bank = EventBank(tiny_bank_dir)
    cfg = SoundscapeConfig(clip_duration=2.0, min_events=2, max_events=3, max_event_duration=1.0)
    specs = [
        SetSpec("train", "strong", "train", n_clips=6, seed=0),
        SetSpec("validation", "strong", ["validation"], n_clips=4, seed=1),
        SetSpec("test", "strong", "test", n_clips=4, seed=2),
    ]
    paths = synthesize_dataset(tmp_path, bank, specs, cfg)

    assert paths == {s.name: tmp_path / s.name for s in specs}
    for spec in specs:
        allowed = {str(s.path.relative_to(bank.root)) for s in bank.sources(spec.source_split)}
        used = set(read_strong_tsv(paths[spec.name] / "truth.tsv")["source"])
        assert used and used <= allowed
    test_files = {s.path.name for s in bank.sources("test")}
    train_truth = read_strong_tsv(paths["train"] / "truth.tsv")
    assert not {Path(s).name for s in train_truth["source"]} & test_files


def test_test_sources_cannot_be_mixed_with_other_splits() -> None:
    with pytest.raises(ValueError, match="test sources cannot be mixed"):
        SetSpec("leaky", "strong", ["train", "test"], n_clips=1, seed=0)


def test_synthesize_set_is_cached(
    tmp_path: Path, tiny_bank_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bank = EventBank(tiny_bank_dir)
    spec = SetSpec("cached", "weak", "train", n_clips=2, seed=0)
    out = synthesize_set(tmp_path / "c", bank, spec, TINY_CFG)
    wav = out / "audio" / "cached_00000.wav"
    wav.write_bytes(b"marker")  # survives only if nothing is regenerated

    with caplog.at_level(logging.INFO, logger="sed_lightning.data.synthesis"):
        synthesize_set(tmp_path / "c", bank, spec, TINY_CFG)
    assert wav.read_bytes() == b"marker"
    assert f"reusing {out}" in caplog.text

    (out / "manifest.json").unlink()  # as after an interrupted run
    synthesize_set(tmp_path / "c", bank, spec, TINY_CFG)
    assert wav.read_bytes() != b"marker"

    wav.write_bytes(b"marker")
    synthesize_set(tmp_path / "c", bank, SetSpec("cached", "weak", "train", 2, seed=1), TINY_CFG)
    assert wav.read_bytes() != b"marker"


def test_a_set_is_not_made_again_for_settings_it_does_not_use(
    tmp_path: Path, tiny_bank_dir: Path
) -> None:
    # A fixed evaluation set (one EBR of a list per clip, every variation off) inherits the
    # training sets' EBR range and variation ranges: changing those re-keyed it before.
    bank = EventBank(tiny_bank_dir)
    spec = SetSpec("validation", "strong", "validation", n_clips=3, seed=4)
    evaluation = dataclasses.replace(TINY_CFG, ebr_levels=(-6.0, 0.0, 6.0))
    out = synthesize_set(tmp_path / "v", bank, spec, evaluation)
    wav = out / "audio" / "validation_00000.wav"
    audio = wav.read_bytes()
    wav.write_bytes(b"marker")  # survives only if nothing is regenerated

    training_changed = dataclasses.replace(
        evaluation,
        ebr_db=(-9.0, 9.0),
        variation=EventVariation(pitch_semitones=(-4.0, 4.0), eq_db=(-9.0, 9.0)),
    )
    synthesize_set(tmp_path / "v", bank, spec, training_changed)
    assert wav.read_bytes() == b"marker"  # reused
    # made anew elsewhere with those settings: the same audio, so reusing it was right
    fresh = synthesize_set(tmp_path / "fresh", bank, spec, training_changed)
    assert (fresh / "audio" / wav.name).read_bytes() == audio

    # a part the set uses, or the EBR range of a set that draws from it, does re-key it
    synthesize_set(
        tmp_path / "v",
        bank,
        spec,
        dataclasses.replace(
            training_changed, variation=EventVariation(pitch_p=0.5, pitch_semitones=(-4.0, 4.0))
        ),
    )
    assert wav.read_bytes() != b"marker"
    drawn = synthesize_set(tmp_path / "r", bank, spec, TINY_CFG) / "audio" / wav.name
    drawn.write_bytes(b"marker")
    synthesize_set(tmp_path / "r", bank, spec, dataclasses.replace(TINY_CFG, ebr_db=(-9.0, 9.0)))
    assert drawn.read_bytes() != b"marker"


def test_runs_started_together_write_a_set_once(
    tmp_path: Path, tiny_bank_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two runs of a sweep started at once share the data cache: one writes, one reuses.
    bank = EventBank(tiny_bank_dir)
    spec = SetSpec("shared", "strong", "train", n_clips=3, seed=2)
    start = threading.Barrier(2)

    def run() -> Path:
        start.wait()
        return synthesize_set(tmp_path / "s", bank, spec, TINY_CFG)

    with caplog.at_level(logging.INFO, logger="sed_lightning.data.synthesis"):
        with ThreadPoolExecutor(2) as pool:
            outs = [f.result() for f in [pool.submit(run), pool.submit(run)]]
    assert outs[0] == outs[1]
    assert caplog.text.count("wrote 3 strong clips") == 1
    assert sorted(p.name for p in (outs[0] / "audio").glob("*.wav")) == [
        f"shared_{k:05d}.wav" for k in range(3)
    ]
    assert len(read_strong_tsv(outs[0] / "truth.tsv")) > 0


def test_a_set_being_written_elsewhere_is_waited_for(
    tmp_path: Path, tiny_bank_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bank = EventBank(tiny_bank_dir)
    spec = SetSpec("busy", "weak", "train", n_clips=2, seed=3)
    other = FileLock(tmp_path / ".busy.lock")  # another process writing the set
    other.acquire()
    with caplog.at_level(logging.INFO, logger="sed_lightning.data.set_locks"):
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(synthesize_set, tmp_path / "busy", bank, spec, TINY_CFG)
            time.sleep(0.5)
            assert not job.done()
            assert not (tmp_path / "busy" / "manifest.json").exists()
            other.release()
            out = job.result(timeout=60)
    assert "waiting for another process synthesizing" in caplog.text
    assert (out / "manifest.json").is_file()


READER = """
import sys
from sed_lightning.data.sources import EventBank
from sed_lightning.data.set_spec import SetSpec, SoundscapeConfig
from sed_lightning.data.synthesis import synthesize_set
cfg = SoundscapeConfig(clip_duration=1.0, max_events=1)
synthesize_set(sys.argv[1], EventBank(sys.argv[2]), SetSpec("read", "weak", "train", 2, 0), cfg)
print("reading", flush=True)
sys.stdin.read()  # a run still going: holds the set until its input closes
"""


@pytest.mark.skipif(os.name != "posix", reason="the guard uses POSIX file locks")
def test_a_set_another_run_reads_is_not_rewritten_under_it(
    tmp_path: Path, tiny_bank_dir: Path
) -> None:
    bank = EventBank(tiny_bank_dir)
    spec = SetSpec("read", "weak", "train", 2, 0)
    same = SoundscapeConfig(clip_duration=1.0, max_events=1)
    other = SoundscapeConfig(clip_duration=1.0, max_events=1, ebr_db=(0.0, 3.0))
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(tmp_path / "read"), str(tiny_bank_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert reader.stdout.readline().strip() == "reading"
        before = (tmp_path / "read" / "audio" / "read_00000.wav").read_bytes()
        synthesize_set(tmp_path / "read", bank, spec, same)  # same settings: reused
        with pytest.raises(SetInUseError, match=r"read: this run's settings .* \(paths\.data_dir"):
            synthesize_set(tmp_path / "read", bank, spec, other)
        after = (tmp_path / "read" / "audio" / "read_00000.wav").read_bytes()
        assert after == before  # the reader's files untouched
        reader.stdin.close()
        assert reader.wait(timeout=60) == 0
    finally:
        reader.kill()
    synthesize_set(tmp_path / "read", bank, spec, other)  # nobody else reads it now
    assert (tmp_path / "read" / "audio" / "read_00000.wav").read_bytes() != before
    # this process reads it now, and may still rewrite it itself (e.g. a sweep's next job)
    synthesize_set(tmp_path / "read", bank, spec, same)
    assert (tmp_path / "read" / "audio" / "read_00000.wav").read_bytes() == before


def test_synthesis_is_deterministic(tmp_path: Path, tiny_bank_dir: Path) -> None:
    bank = EventBank(tiny_bank_dir)
    spec = SetSpec("det", "strong", "train", n_clips=2, seed=5)
    first = synthesize_set(tmp_path / "one", bank, spec, TINY_CFG)
    second = synthesize_set(tmp_path / "two", bank, spec, TINY_CFG)
    for name in ("truth.tsv", "audio/det_00000.wav", "audio/det_00001.wav"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_truth_records_consistent_source_spans(tmp_path: Path, tiny_bank_dir: Path) -> None:
    spec = SetSpec("prov", "strong", "train", n_clips=3, seed=4)
    out = synthesize_set(tmp_path / "p", EventBank(tiny_bank_dir), spec, TINY_CFG)
    truth = read_strong_tsv(out / "truth.tsv")
    span = truth["offset"] - truth["onset"]
    source_span = truth["source_offset"].astype(float) - truth["source_onset"].astype(float)
    np.testing.assert_allclose(span, source_span, atol=1e-9)
    ebr = truth["ebr_db"].astype(float)
    assert ((ebr >= 6.0) & (ebr <= 15.0)).all()


# ------------------------------------------------------------------------- event bank


def test_event_bank_lists_all_bad_metadata_rows(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "metadata.csv").write_text(
        "filename,event_label,duration,split\n"
        "a.wav,dog,1.0,train\n"
        "missing.wav,dog,1.0,train\n"
        "a.wav,dog,-2,training\n"
    )
    with pytest.raises(EventBankError) as info:
        EventBank(tmp_path)
    message = str(info.value)
    assert "metadata.csv" in message
    assert re.search(r"line 3: audio file .*missing\.wav not found", message)
    assert "line 4: duplicate filename 'a.wav'" in message
    assert "line 4: duration '-2' is not a positive number" in message
    assert "line 4: split 'training'" in message
    assert "line 2" not in message


def test_event_bank_reads_the_real_dcase2016_events(real_events_dir: Path) -> None:
    bank = EventBank(real_events_dir)

    assert len(bank.class_names) == 11 and len(bank) == 220
    for label in bank.class_names:
        counts = [
            sum(s.label == label for s in bank.sources(split))
            for split in ("train", "validation", "test")
        ]
        assert counts == [14, 3, 3], label
    source = bank.sources("validation")[0]
    audio = bank.load(source)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / 16000 == pytest.approx(source.duration, abs=2e-3)
    assert bank.load(source) is audio  # cached
