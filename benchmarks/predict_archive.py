"""Predicting over an archive: wall time, files/s, real-time factor and peak memory.

    python -m benchmarks.predict_archive --ckpt PATH [--clips 200] [--long-minutes 60]
        [--old-python PY --old-src DIR]   # also time another checkout's predict

Builds a folder of ``--clips`` ten-second clips (beeps and babble in noise, generated), two
corrupt files and one ``--long-minutes`` file, runs ``python -m sed_lightning.predict`` over
it in a subprocess and samples the resident memory of the whole process tree (workers
included) every 0.2 s. Writes ``benchmarks/results/<name>.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def make_archive(folder: Path, clips: int, long_minutes: float, seed: int = 0) -> dict:
    """Write the test archive; returns its description."""
    rng = np.random.default_rng(seed)
    sr = 16000
    t = np.arange(10 * sr) / sr
    for i in range(clips):
        audio = 0.02 * rng.standard_normal(t.size)
        for _ in range(rng.integers(1, 4)):
            on, freq = rng.uniform(0, 9), rng.uniform(400, 3000)
            audio += (
                0.3 * np.sin(2 * np.pi * freq * t) * ((t > on) & (t < on + rng.uniform(0.2, 1)))
            )
        path = folder / f"site{i % 4}" / f"clip{i:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio.astype(np.float32), sr, subtype="PCM_16")
    (folder / "corrupt1.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (folder / "corrupt2.flac").write_bytes(os.urandom(4096))
    long_path = folder / "long" / "recording.wav"
    long_path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(long_path, "w", sr, 1, "PCM_16") as out:  # written a minute at a time
        minute = np.arange(60 * sr) / sr
        for _ in range(int(long_minutes)):
            audio = 0.02 * rng.standard_normal(minute.size)
            for on in rng.uniform(0, 59, size=6):
                audio += (
                    0.3 * np.sin(2 * np.pi * 1000 * minute) * ((minute > on) & (minute < on + 0.5))
                )
            out.write(audio.astype(np.float32))
    return {"clips": clips, "long_minutes": long_minutes, "corrupt": 2}


def tree_rss_mb(pid: int) -> float:
    """Memory of ``pid`` and all its descendants (MiB), from /proc: the sum of their
    proportional set sizes (PSS), so pages a DataLoader worker shares with its parent
    after fork are counted once (plain RSS would count them in both)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += int(
                next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:"))
            )
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, StopIteration, PermissionError):
            continue
    return total / 1024


def timed_run(cmd: list[str], cwd: Path) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(proc.pid))
        time.sleep(0.2)
    output = proc.stdout.read()
    return {
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": peak,
        "rc": proc.returncode,
        "log": output[-3000:],
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--long-minutes", type=float, default=60)
    p.add_argument("--work", default="/tmp/sed_predict_archive")
    p.add_argument("--name", default="predict_archive")
    p.add_argument("--old-python", help="python of another checkout to compare with")
    p.add_argument("--old-src", help="that checkout (its predict: ckpt= audio= out=)")
    p.add_argument("--old-ckpt", help="checkpoint for the other checkout (default --ckpt)")
    args, overrides = p.parse_known_args(argv)
    work = Path(args.work)
    archive = work / "archive"
    if not archive.is_dir():
        archive.mkdir(parents=True)
        make_archive(archive, args.clips, args.long_minutes)
    audio_seconds = args.clips * 10 + args.long_minutes * 60
    out = work / "new" / "events.tsv"
    for stale in (work / "new").glob("**/*"):
        if stale.is_file():
            stale.unlink()
    new = timed_run(
        [
            sys.executable,
            "-m",
            "sed_lightning.predict",
            f"ckpt={args.ckpt}",
            f"audio={archive}",
            f"out={out}",
            *overrides,
        ],
        ROOT,
    )
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "archive": {
            "clips": args.clips,
            "long_minutes": args.long_minutes,
            "corrupt": 2,
            "audio_s": audio_seconds,
        },
        "new": {k: v for k, v in new.items() if k != "log"},
    }
    failed = (
        (out.parent / "failed.tsv").read_text().splitlines()[1:]
        if (out.parent / "failed.tsv").is_file()
        else []
    )
    results["new"]["failed_files"] = [line.split("\t")[0] for line in failed]
    if args.old_python:
        old_audio = work / "archive_good"  # the old predict stops at the first corrupt file
        if not old_audio.is_dir():
            old_audio.mkdir()
            for f in archive.rglob("*"):
                if f.is_file() and "corrupt" not in f.name:
                    dest = old_audio / f.relative_to(archive)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.link(f, dest)
        old = timed_run(
            [
                args.old_python,
                "-m",
                "sed_lightning.predict",
                f"ckpt={args.old_ckpt or args.ckpt}",
                f"audio={old_audio}",
                f"out={work / 'old.tsv'}",
            ],
            Path(args.old_src),
        )
        results["old"] = {k: v for k, v in old.items() if k != "log"}
    for key in ("new", "old"):
        if key in results:
            r = results[key]
            n_files = args.clips + 1
            r["files_per_s"] = n_files / r["wall_s"]
            r["realtime_factor"] = audio_seconds / r["wall_s"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2))
    lines = [
        f"# Predicting over an archive (`{args.name}`)",
        "",
        f"Machine: {results['machine']}. Archive: {args.clips} ten-second clips in 4 subfolders, "
        f"one {args.long_minutes:g}-minute file, 2 corrupt files ({audio_seconds / 3600:.2f} h of audio). "
        "Wall time includes start-up and loading the checkpoint; peak memory is the whole process tree (sum of PSS, workers included).",
        "",
        "| predict | wall (s) | files/s | real-time factor | peak memory (MiB) | exit | failed files |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in (
        ("old", "before (loop, no corrupt files)"),
        ("new", "now (trainer.predict)"),
    ):
        if key in results:
            r = results[key]
            lines.append(
                f"| {label} | {r['wall_s']:.1f} | {r['files_per_s']:.2f} | {r['realtime_factor']:.0f}x | "
                f"{r['peak_rss_mb']:.0f} | {r['rc']} | {', '.join(r.get('failed_files', [])) or '-'} |"
            )
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    main()
