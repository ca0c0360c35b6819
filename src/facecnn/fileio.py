"""The one way facecnn replaces a file: write a hidden temporary beside it, then rename.

A reader (or a crash, or kill -9) then sees the old file or the new one, never half of
either; the file is fsynced before the rename and its folder after it, so a power cut cannot
leave an empty file under the final name either. Temporaries carry the writer's process id,
so two writers never share one and a later run can tell a dead writer's leftovers
(`remove_stale_temps`) from a live one's.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Callable

_TEMP = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def temp_name(path: Path) -> Path:
    """A writer's hidden temporary beside `path` (remove_stale_temps knows it by its pid)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def atomic_write(path: str | Path, write: Callable[[Path], None],
                 mode: int | None = None) -> os.stat_result:
    """Call `write(tmp)` to fill a temporary file, then rename it over `path`.

    The temporary is created empty with the usual permissions (0o666 less the umask, or
    `mode`), so `write` may open it by name; the file keeps them even if `write` makes it
    anew. Returns the written file's stat (the rename
    keeps it), and removes the temporary if anything fails.
    """
    path = Path(path)
    tmp = temp_name(path)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        wanted = os.stat(tmp).st_mode & 0o7777
        write(tmp)
        if os.stat(tmp).st_mode & 0o7777 != wanted:  # a writer that made the file anew
            os.chmod(tmp, wanted)  # (safetensors makes its files 0600)
        fsync_path(tmp)
        stat = os.stat(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    return stat


def fsync_path(path: Path, flags: int = os.O_RDONLY) -> None:
    """Flush a file's (or, with O_DIRECTORY, a folder's: its names) data to the disk."""
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_csv_atomic(path: str | Path, rows: list[list[object]]) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)

    atomic_write(path, write)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporaries that writers which no longer run left in `folder` (a killed
    run's half-written checkpoint, say); a live writer's are left alone."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        found = _TEMP.match(entry.name)
        if found and entry.is_file() and not _alive(int(found.group(1))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def content_hash(data: bytes) -> str:
    """The identity of a photo's bytes (sha256, hex): the same photo under any name."""
    return hashlib.sha256(data).hexdigest()


def file_hash(path: str | Path) -> str:
    """`content_hash` of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def free_path(folder: Path, name: str) -> Path:
    """folder/name, or name with _2, _3... so nothing the user has is overwritten."""
    target = folder / name
    k = 2
    while target.exists():
        target = folder / f"{Path(name).stem}_{k}{Path(name).suffix}"
        k += 1
    return target
