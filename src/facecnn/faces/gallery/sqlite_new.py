"""A new gallery file appears whole, or not at all.

The new gallery lives in memory until its first commit (or until it is closed unwritten: an
empty gallery asked for), and only then lands under its name, complete: a first `enroll`
killed before its commit leaves no file behind. It is written beside its place under a
temporary name and hard-linked there, which never replaces a file that appeared meanwhile;
a kill in those milliseconds leaves at most the hidden temporary.

Processes creating galleries in one folder take turns on a lock of the folder (flock: the
kernel releases it when its holder dies), so two racing to make the same gallery end up with
one: the second waits for the first's commit, then opens what it made.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from facecnn.errors import FacecnnError
from facecnn.faces.gallery.store import BUSY, GalleryBusy
from facecnn.fileio import fsync_path, temp_name

_POLL_S = 0.05
_MODE = 0o644  # what SQLite gives the files it makes (less the umask)


class Claim:
    """The right to create the file at `path`: its folder's lock, held until the file is in
    place or the creation is given up."""

    def __init__(self, path: Path, folder: int) -> None:
        self.path, self._folder = path, folder

    @classmethod
    def take(cls, path: Path, wait: float) -> Claim | None:
        """The claim on `path`, once no other creator in its folder holds one (GalleryBusy
        after `wait` seconds); None where the file exists (made meanwhile, maybe)."""
        if path.exists():
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        deadline = time.monotonic() + wait
        try:
            while True:
                try:
                    fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise GalleryBusy(BUSY) from None
                    time.sleep(_POLL_S)
        except BaseException:
            os.close(folder)
            raise
        claim = cls(path, folder)
        if path.exists():
            claim.release()
            return None
        return claim

    def place(self, db: sqlite3.Connection) -> None:
        """Write the database `db` holds to the claimed path, in WAL mode as every gallery is,
        unless a file is there already."""
        tmp = temp_name(self.path)
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _MODE))
        try:
            with closing(sqlite3.connect(tmp, isolation_level=None)) as disk:
                db.backup(disk)
                disk.execute("PRAGMA journal_mode=WAL")
            fsync_path(tmp)
            try:
                os.link(tmp, self.path)  # never over a file: EEXIST instead
            except FileExistsError:
                raise self._taken() from None
            except OSError:  # no hard links on this file system (FAT): we hold the folder
                if self.path.exists():
                    raise self._taken() from None
                os.rename(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        os.fsync(self._folder)

    def _taken(self) -> FacecnnError:
        return FacecnnError(f"gallery already exists: {self.path} (made by another program "
                            f"meanwhile)")

    def release(self) -> None:
        """Let the folder's next creator go."""
        fcntl.flock(self._folder, fcntl.LOCK_UN)  # for forked children sharing it too
        os.close(self._folder)
