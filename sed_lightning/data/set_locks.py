"""Cross-process guards of a cached set, so that runs can share one data cache.

Two locks beside each set folder ``<set>/``:

* ``.<set>.lock`` (:func:`writer_lock`): one process writes or checks the set at a time;
  runs started together wait for the first, then reuse what it wrote.
* ``.<set>.readers`` (POSIX only): a process that uses a set holds a shared lock on it
  until it exits (:func:`hold_as_reader`); rewriting the set needs that lock exclusively
  (:func:`sole_reader`), so a run with other settings for the set gets
  :class:`SetInUseError` instead of rewriting it under a run that reads it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

try:  # POSIX: shared "reading" locks guard a set in use against being rewritten
    import fcntl
except ImportError:  # pragma: no cover - Windows: no guard
    fcntl = None

__all__ = ["SetInUseError", "hold_as_reader", "sole_reader", "writer_lock"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def writer_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s writer lock (``.<set>.lock``), waiting for another process that
    holds it. Runs started together (two sweeps, a parallel launcher) share the data cache:
    the first to take the set's lock writes it, the others wait and then reuse it."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out_dir.parent / f".{out_dir.name}.lock")
    try:
        lock.acquire(blocking=False)
    except Timeout:
        log.info("waiting for another process synthesizing %s", out_dir)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class SetInUseError(RuntimeError):
    """A set must be rewritten (other settings) while another process reads it."""


#: The sets this process reads -> the open ``.<set>.readers`` file on which it holds a shared
#: lock until it exits (DataLoader workers inherit it), so that no other run rewrites them.
_READING: dict[Path, object] = {}


def _readers_file(out_dir: Path):
    return (out_dir.parent / f".{out_dir.name}.readers").open("a")


def hold_as_reader(out_dir: Path) -> None:
    """Mark ``out_dir`` as read by this process (a shared lock, held until exit)."""
    key = out_dir.resolve()
    if fcntl is None or key in _READING:
        return
    handle = _readers_file(out_dir)
    fcntl.flock(handle, fcntl.LOCK_SH)
    _READING[key] = handle


@contextlib.contextmanager
def sole_reader(out_dir: Path) -> Iterator[None]:
    """Exclusive hold of ``out_dir``'s readers lock while the set is (re)written, or
    :class:`SetInUseError` when another process reads the set: rewriting it in place would
    pull its files from under that run (it would crash on "audio file not found", or score
    other clips than it started with). This process's own hold is given up first."""
    own = _READING.pop(out_dir.resolve(), None)
    if own is not None:
        own.close()
    if fcntl is None:
        yield
        return
    with _readers_file(out_dir) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SetInUseError(
                f"{out_dir}: this run's settings for the set differ from those it was made "
                "with, and another run that is still going reads it; rewriting it would pull "
                "its files from under that run. Wait for that run to end, or give this one "
                "its own cache (paths.data_dir=...)."
            ) from None
        yield  # closing the file releases the lock
