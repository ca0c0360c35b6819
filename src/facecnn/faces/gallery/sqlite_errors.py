"""What a failure of a gallery file means, in one line that names its cause: the disk full, the
file damaged, read-only, locked by another process. A failed write changes nothing (SQLite
rolls it back, a new file lands whole or not at all), so a line can say so. Any other failure
is a bug and stays an exception.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facecnn.errors import FacecnnError
from facecnn.faces.gallery.store import BUSY, GalleryBusy

_FULL = (errno.ENOSPC, errno.EDQUOT)
_ROOM = 1 << 20  # less free space than this, and a disk I/O error is the disk being full


def unwritable(path: Path) -> str | None:
    """Why the file at `path` cannot be written, as the system says it (None: it can). Asks
    the kernel, not the permission bits, so it holds for root too."""
    if os.access(path, os.W_OK):
        return None
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        return "it is on a read-only file system"
    try:
        os.close(os.open(path, os.O_WRONLY))  # fails: access() said so; the errno says why
    except OSError as e:
        if e.errno == errno.EPERM:
            return "the file is immutable or append-only (see lsattr)"
        return f"{e.strerror.lower()} to write it"
    return None


def read_only(path: Path, reason: str | None) -> FacecnnError:
    return FacecnnError(f"{path} is read-only: {reason or 'the database refuses writes'}; the "
                        f"gallery can be read, not changed")


def _full(path: Path) -> FacecnnError:
    return FacecnnError(f"no space left on the disk of {path}; nothing was written to the "
                        f"gallery")


def _no_room(path: Path) -> bool:
    try:
        found = os.statvfs(path if path.exists() else path.parent)
    except OSError:
        return False
    return found.f_bavail * found.f_frsize < _ROOM


def failure(path: Path, exc: BaseException) -> FacecnnError | None:
    """The one-line error for a failure of SQLite or of the system on the gallery file at
    `path`; None for anything else (a bug)."""
    if isinstance(exc, OSError):
        if exc.errno in _FULL:
            return _full(path)
        return FacecnnError(f"cannot write {path}: {(exc.strerror or str(exc)).lower()}; "
                            f"nothing was written to the gallery")
    if not isinstance(exc, sqlite3.Error):
        return None
    said = str(exc)  # SQLite's own words for each kind of failure, the same in every version
    if "locked" in said:  # "database is locked", "database table is locked"
        return GalleryBusy(BUSY)
    if "database or disk is full" in said or ("disk I/O error" in said and _no_room(path)):
        return _full(path)
    if "malformed" in said:  # "database disk image is malformed", "malformed database schema"
        return FacecnnError(f"the gallery file {path} is damaged ({said}); restore it from a "
                            f"backup")
    if "readonly database" in said:
        return read_only(path, unwritable(path) if path.exists() else None)
    if "disk I/O error" in said:
        return FacecnnError(f"cannot read or write {path}: disk I/O error (a failing disk?)")
    if "file is not a database" in said:
        return FacecnnError(f"not a facecnn gallery: {path} ({said})")
    if "unable to open database file" in said:
        return FacecnnError(f"cannot open {path} ({said})")
    return None


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Failures of the gallery file at `path` as their one-line errors."""
    try:
        yield
    except (sqlite3.Error, OSError) as e:
        error = failure(path, e)
        if error is None:
            raise
        raise error from None
