"""What a gallery needs from the database its rows live in (store_sqlite.py, store_postgres.py):
one connection that threads take turns on, writes that are one transaction each and queue
behind each other, reads from one snapshot, and the change counter every write bumps.

The SQL is written once, in what SQLite and PostgreSQL share (`?` placeholders, which the
PostgreSQL store hands psycopg as `%s`; ON CONFLICT upserts; CAST), so both stores keep the
same tables by the same rules.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from facecnn.errors import FacecnnError
from facecnn.faces.gallery.meta import DATA_VERSION, REWRITE_VERSION, meta_int

BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's write transaction
BUSY = "the gallery is locked by another process (an enroll?); try again shortly"

# First statement of every write: bumps the counter and, on PostgreSQL, takes its row lock, so
# writers queue there as SQLite's BEGIN IMMEDIATE queues them on the file
_BUMP = ("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
         "SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)")
_MARK_REWRITE = ("INSERT INTO meta (key, value) SELECT ?, value FROM meta WHERE key = ? "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


def statements(script: str) -> list[str]:
    """A script's statements, to run one by one in one transaction (SQLite's executescript
    would commit first)."""
    return [s for s in script.split(";") if s.strip()]


class GalleryUnavailable(FacecnnError):
    """The gallery's database cannot be reached now (down, refused, wrong password): a server
    answers 503 and tries again at the next request.

    The message names the database (user, host, port) and libpq's reason, for whoever runs
    facecnn (the CLI prints it, a server logs it); `public` is what a server answers, which
    tells a client no more than that the database is out of reach.
    """

    public = "cannot reach the gallery database; try again shortly"


class NotInGallery(FacecnnError):
    """No such person, or no such face of theirs (a server answers 404)."""


class GalleryBusy(FacecnnError):
    """Another process held the gallery's write lock past the busy timeout."""


class Cursor(Protocol):
    """What both drivers' cursors give: rows and the count of rows a statement changed."""

    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Closeable(Protocol):
    def close(self) -> None: ...


class Store(ABC):
    """One connection to a gallery's database, shared by threads one at a time (re-entrant,
    so a write inside `write()` and a read of what it wrote can nest)."""

    location: str  # names the gallery in messages: a path, or a URL without its password
    path: Path | None = None  # the SQLite file (None for a database server)
    begin_write: str
    begin_snapshot: str

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # nesting of open write transactions
        self._rewrites = False
        self.in_transaction = False

    @property
    @abstractmethod
    def cache_path(self) -> Path:
        """Where the gallery's search index is cached (faces/index.py)."""

    @property
    @abstractmethod
    def cache_mode(self) -> int:
        """The cache files' permissions: whoever may read the gallery may read them."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence = ()) -> Cursor:
        """One statement, in the open transaction if there is one."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence]) -> int:
        """One statement for each row; returns how many rows they changed."""

    @abstractmethod
    def close(self) -> None: ...

    def announce(self) -> None:
        """Tell other processes about the write being committed (PostgreSQL: NOTIFY)."""

    def watch(self, changed: Callable[[], None]) -> Closeable | None:
        """Call `changed()` whenever another process commits a write, where the database can
        say so (PostgreSQL's LISTEN); None where it cannot (SQLite: poll `version`)."""
        return None

    def read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """One statement is one read transaction, hence one consistent snapshot."""
        with self._lock:
            return self.execute(sql, params).fetchall()

    @contextmanager
    def snapshot(self) -> Iterator[Store]:
        """Several reads from one snapshot (inside a write: the write's own view)."""
        with self._lock:
            if self._depth:
                yield self
                return
            self._begin(self.begin_snapshot)
            try:
                yield self
            finally:
                self._end("COMMIT")

    @property
    def writing(self) -> bool:
        """Whether this thread has a write transaction open (nothing else can write). Another
        thread's open write holds the lock: not this thread's, so False without waiting."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            return self._depth > 0
        finally:
            self._lock.release()

    @contextmanager
    def write(self, *, rewrites: bool = False) -> Iterator[Store]:
        """One transaction that bumps the change counter (nested ones join the outer one).

        `rewrites` (a write that changes or drops existing rows, not only adds some) also
        records the new count as the rewrite version.
        """
        with self._lock:
            if self._depth:
                self._rewrites |= rewrites
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._begin(self.begin_write)
            self._depth, self._rewrites = 1, rewrites
            try:
                self.execute(_BUMP, (DATA_VERSION,))
                yield self
                if self._rewrites:
                    self.execute(_MARK_REWRITE, (REWRITE_VERSION, DATA_VERSION))
                self.announce()
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0
            self._commit()

    def counters(self, *keys: str) -> list[int]:
        """Change counters from meta; 0 where missing (galleries made before they existed)."""
        found = dict(self.read(f"SELECT key, value FROM meta WHERE key IN "
                               f"({', '.join('?' * len(keys))})", keys))
        return [meta_int(key, found.get(key, 0)) for key in keys]

    def _begin(self, sql: str) -> None:
        self.execute(sql)
        self.in_transaction = True

    def _end(self, sql: str) -> None:
        try:
            self.execute(sql)
        finally:
            self.in_transaction = False

    def _commit(self) -> None:
        """End a write transaction."""
        self._end("COMMIT")

    def _rollback(self) -> None:
        with contextlib.suppress(GalleryUnavailable):  # gone: its transaction went with it
            self._end("ROLLBACK")
