"""One writer at a time in a cluster output folder: a `facecnn cluster` run and the edits of
edits.py (from the CLI, or from several server processes at once) each hold an exclusive lock
on OUT/.lock (filelock's FileLock: fcntl.flock on Unix, released by the kernel if the holder
dies) around their read-modify-write of cache.npz and clusters.json."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facecnn.errors import FacecnnError

LOCK = ".lock"
WAIT_S = 30.0  # an edit waits this long for a run or another edit, then says so


@contextmanager
def locked(out: Path, wait: float | None = None) -> Iterator[None]:
    """Hold `out`'s lock (the folder must exist); FacecnnError after `wait` seconds (default
    WAIT_S)."""
    from filelock import FileLock, Timeout

    lock = FileLock(out / LOCK, timeout=WAIT_S if wait is None else wait)
    try:
        lock.acquire()
    except Timeout:
        raise FacecnnError(f"{out} is being written by another facecnn (a `facecnn cluster` "
                           "run or an edit of its clusters); try again when it is done") from None
    try:
        yield
    finally:
        lock.release()
