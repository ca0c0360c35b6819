"""Worker pools whose processes die with the process that made them.

A pool's workers block on their job queue, and a parent killed with SIGKILL never tells them
to stop, so they would wait for work forever, each holding its models' memory. On Linux
the kernel kills a worker when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere a daemon
thread in the worker watches the parent.

The kernel sends that signal when the *thread* that started the worker ends, so a pool must be
used up by the thread that made it: every facecnn pool lives inside one `with` block.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

from threadpoolctl import threadpool_limits

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 1.0
# The platforms' defaults up to Python 3.13, pinned: a forked or spawned worker's parent is
# the pool's maker, which the checks below rely on (3.14's forkserver would be its parent).
START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


class _Pool(ProcessPoolExecutor):
    """Left by an exception (Ctrl-C, a closed generator), it drops the jobs not started
    instead of waiting for all of them."""

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> bool:
        self.shutdown(wait=True, cancel_futures=kind is not None)
        return False


def worker_pool(workers: int, initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor whose workers exit as soon as this process dies, however it dies,
    and leave Ctrl-C to it (no traceback from each worker)."""
    return _Pool(workers, mp_context=multiprocessing.get_context(START_METHOD),
                 initializer=_start_worker, initargs=(os.getpid(), initializer, initargs))


def _start_worker(parent: int, initializer: Callable[..., None] | None,
                  initargs: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    # the pool keeps every core busy: a worker's BLAS and OpenMP pools (numpy's OpenBLAS,
    # PyTorch's) each with a thread per core would only fight it (1.5x slower with MTCNN)
    threadpool_limits(1)
    if initializer is not None:
        initializer(*initargs)


def die_with_parent(parent: int) -> None:
    """Make this process end when process `parent` (its parent) does."""
    if _kernel_kills_orphans():
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        return
    threading.Thread(target=_watch, args=(parent,), name="die-with-parent", daemon=True).start()


def _kernel_kills_orphans() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    """Exit once the parent is gone: POSIX re-parents an orphan (os.getppid() changes); on
    Windows, which does not, the spawned worker's handle on its parent says so."""
    maker = multiprocessing.parent_process()
    while os.getppid() == parent and (maker is None or maker.is_alive()):
        time.sleep(POLL_SECONDS)
    os._exit(1)
