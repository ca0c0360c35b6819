"""Decode and resize every image once into a uint8 array on disk, so later epochs read memory.

One cache per (data folder, size, colour mode): `images.npy` (N, H, W, C) uint8, opened as a
memory map, and `index.json` mapping each file's key (path, byte size, mtime) to its row, or
to the reason it could not be read, so bad files are also validated only once. When files are
added or changed, only those are decoded; the rest are copied from the previous cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from facecnn.data.decode import decode_or_reason
from facecnn.fileio import atomic_write, remove_stale_temps, write_text_atomic
from facecnn.workers import worker_pool

PARALLEL_MIN = 256  # below this many images a worker pool costs more than it saves


def default_cache_dir() -> Path:
    """`$FACECNN_CACHE_DIR`, else `$XDG_CACHE_HOME/facecnn`, else `~/.cache/facecnn`."""
    if os.environ.get("FACECNN_CACHE_DIR"):
        return Path(os.environ["FACECNN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "facecnn"


def file_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _decode_all(jobs: list[tuple[str, int, int]],
                advance: Callable[[int], None]) -> Iterable[np.ndarray | str]:
    if len(jobs) < PARALLEL_MIN or (os.cpu_count() or 1) < 2:
        for job in jobs:
            yield decode_or_reason(job)
            advance(1)
        return
    workers = min(os.cpu_count() or 1, 8)
    with worker_pool(workers) as pool:
        for result in pool.map(decode_or_reason, jobs, chunksize=32):
            yield result
            advance(1)


def load_cached(root: Path, paths: list[Path], size: int, channels: int,
                cache_dir: Path | None = None,
                advance: Callable[[int], None] = lambda n: None
                ) -> tuple[np.ndarray, list[str | None]]:
    """Return (images, reasons): images[i] is paths[i] decoded; reasons[i] is None if it was read,
    else why it was skipped (its row is then zeros and must not be used)."""
    mode = "L" if channels == 1 else "RGB"
    ident = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    folder = (cache_dir or default_cache_dir()) / "images" / f"{ident}_{size}_{mode}"
    index_file, array_file = folder / "index.json", folder / "images.npy"
    keys = [file_key(p) for p in paths]

    old_index: dict[str, int | str] = {}
    old_array = None
    if index_file.exists() and array_file.exists():
        old_index = json.loads(index_file.read_text())
        old_array = np.load(array_file, mmap_mode="r")
        if old_array.shape[1:] != (size, size, channels):
            old_index, old_array = {}, None
    if old_array is not None and _same_order(old_index, keys):
        return old_array, [v if isinstance(v, str) else None for v in (old_index[k] for k in keys)]

    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder)  # a killed run's half-built array may be gigabytes
    reasons: list[str | None] = [None] * len(paths)

    def fill(tmp: Path) -> None:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                          shape=(len(paths), size, size, channels))
        missing = []
        for row, key in enumerate(keys):
            cached = old_index.get(key)
            if isinstance(cached, int):
                array[row] = old_array[cached]
                advance(1)
            elif isinstance(cached, str):
                reasons[row] = cached
                advance(1)
            else:
                missing.append(row)
        jobs = [(str(paths[row]), size, channels) for row in missing]
        for row, result in zip(missing, _decode_all(jobs, advance)):
            if isinstance(result, str):
                reasons[row] = result
            else:
                array[row] = result
        array.flush()

    atomic_write(array_file, fill)
    index = {k: (r if r is not None else row) for row, (k, r) in enumerate(zip(keys, reasons))}
    write_text_atomic(index_file, json.dumps(index))
    write_text_atomic(folder / "source.txt", f"{root.resolve()}\n")
    return np.load(array_file, mmap_mode="r"), reasons


def _same_order(index: dict[str, int | str], keys: list[str]) -> bool:
    """A cache hit needs our files at rows 0..N-1 in our order (its rows are then reused as is)."""
    return len(index) == len(keys) and all(
        isinstance(index.get(k), str) or index.get(k) == row for row, k in enumerate(keys))
